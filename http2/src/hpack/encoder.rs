//! Encoding header blocks (RFC 7541 sections 6 and 4.2). Strings are never Huffman-coded (see
//! the module doc of `hpack`).
//!
//! For each field the encoder looks for, in order: the field in the static table, the field in
//! the dynamic table (both give an indexed field, one byte for the first 127 entries), its name
//! in the static table, its name in the dynamic table (a literal with an indexed name), and
//! otherwise writes the name too. A `Never` field is never indexed whole, even when a table holds
//! it, so that the never-indexed representation reaches the peer (and whoever it passes the field
//! on to).
//!
//! The dynamic table is searched through two hash maps, one keyed on the hash of name and value,
//! one on the hash of the name, holding the absolute number of the newest entry with that key
//! (see `dynamic_table`): no scan per field, and an eviction removes its keys and renumbers
//! nothing. A hit is confirmed against the entry's bytes, so a hash collision only costs an index
//! not used. The hash is FxHash's (a rotate, an xor and a multiply per 8 bytes), written here
//! rather than taken as a dependency.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use bytes::{Bytes, BytesMut};

use super::dynamic_table::{DynamicTable, Entry, entry_size};
use super::integer;
use super::static_table::{self, Match};

/// The dynamic table's size until the peer's SETTINGS_HEADER_TABLE_SIZE says otherwise, and the
/// most this encoder uses whatever the peer allows.
const DEFAULT_TABLE_SIZE: usize = 4_096;

/// How a literal field is sent (RFC 7541 sections 6.2.1 to 6.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indexing {
    /// Added to the dynamic table: later blocks send it as one byte.
    Incremental,
    /// Not added: for values that change with nearly every message.
    Without,
    /// Not added, and no intermediary may add it: for secrets (section 7.1.3).
    Never,
}

/// The indexing weft's sidecars use by default for a field: `Never` for credentials and cookies,
/// `Without` for fields whose value changes with nearly every message (adding them would only
/// evict fields that do repeat) and for values over 256 bytes, `Incremental` otherwise.
pub fn default_indexing(name: &[u8], value: &[u8]) -> Indexing {
    match name {
        b"authorization" | b"proxy-authorization" | b"cookie" | b"set-cookie" => Indexing::Never,
        b":path" | b"content-length" | b"traceparent" | b"tracestate" | b"b3" | b"x-b3-traceid"
        | b"x-b3-spanid" | b"x-b3-parentspanid" | b"x-request-id" | b"date" | b"etag"
        | b"last-modified" | b"if-none-match" | b"if-modified-since" | b"grpc-timeout" => {
            Indexing::Without
        }
        _ if value.len() > 256 => Indexing::Without,
        _ => Indexing::Incremental,
    }
}

/// The encoding side of one connection: its dynamic table and the indexes into it.
#[derive(Debug)]
pub struct Encoder {
    table: DynamicTable,
    /// Hash of name and value to the newest entry's absolute number.
    fields: HashMap<u64, u64, BuildHasherDefault<Prehashed>>,
    /// Hash of the name to the newest entry's absolute number.
    names: HashMap<u64, u64, BuildHasherDefault<Prehashed>>,
    /// A size change not yet sent: the smallest size since the last block, and the last.
    pending_size: Option<(usize, usize)>,
}

impl Default for Encoder {
    fn default() -> Encoder {
        Encoder::new()
    }
}

impl Encoder {
    /// An encoder with a dynamic table of 4,096 bytes (the HTTP/2 default).
    pub fn new() -> Encoder {
        Encoder {
            table: DynamicTable::new(DEFAULT_TABLE_SIZE),
            fields: HashMap::default(),
            names: HashMap::default(),
            pending_size: None,
        }
    }

    /// The peer's SETTINGS_HEADER_TABLE_SIZE: the encoder uses at most 4,096 bytes of it, and
    /// sends the size update at the start of the next block. If the size went down and up again
    /// between two blocks, that block starts with two updates, the smallest then the last
    /// (RFC 7541 section 4.2), so that the peer evicts what it must.
    pub fn set_max_table_size(&mut self, size: usize) {
        let size = size.min(DEFAULT_TABLE_SIZE);
        let smallest = self
            .pending_size
            .map_or(size, |(smallest, _)| smallest.min(size));
        self.pending_size = Some((smallest, size));
    }

    /// Starts a header block in `dst`: writes the pending size update, if any.
    pub fn begin_block(&mut self, dst: &mut BytesMut) {
        let Some((smallest, last)) = self.pending_size.take() else {
            return;
        };
        if smallest < last {
            self.resize(smallest, dst);
            self.resize(last, dst);
        } else if last != self.table.max_size() {
            self.resize(last, dst);
        }
    }

    fn resize(&mut self, size: usize, dst: &mut BytesMut) {
        integer::encode(dst, 0x20, 5, size);
        let (fields, names) = (&mut self.fields, &mut self.names);
        self.table
            .set_max_size(size, |number, entry| forget(fields, names, number, entry));
    }

    /// Appends one field (see the module doc for the representation chosen).
    pub fn field(&mut self, name: &[u8], value: &[u8], indexing: Indexing, dst: &mut BytesMut) {
        let never = indexing == Indexing::Never;
        let mut name_index = match static_table::find(name, value) {
            Some(Match::Field(index)) if !never => return integer::encode(dst, 0x80, 7, index),
            Some(Match::Field(index) | Match::Name(index)) => index,
            None => 0,
        };
        let name_hash = fx(0, name);
        let field_hash = fx(name_hash, value);
        if !never && let Some(number) = self.find(&self.fields, field_hash, name, Some(value)) {
            let index = static_table::LEN + self.table.index_of(number);
            return integer::encode(dst, 0x80, 7, index);
        }
        if name_index == 0
            && let Some(number) = self.find(&self.names, name_hash, name, None)
        {
            name_index = static_table::LEN + self.table.index_of(number);
        }
        let (flags, prefix_bits) = match indexing {
            Indexing::Incremental => (0x40, 6),
            Indexing::Without => (0x00, 4),
            Indexing::Never => (0x10, 4),
        };
        integer::encode(dst, flags, prefix_bits, name_index);
        if name_index == 0 {
            string(dst, name);
        }
        string(dst, value);
        if indexing == Indexing::Incremental {
            self.insert(name, value, name_hash, field_hash);
        }
    }

    /// The absolute number of the entry `map` holds for `hash`, if it is still in the table and
    /// has this name (and value).
    fn find(
        &self,
        map: &HashMap<u64, u64, BuildHasherDefault<Prehashed>>,
        hash: u64,
        name: &[u8],
        value: Option<&[u8]>,
    ) -> Option<u64> {
        let number = *map.get(&hash)?;
        let entry = self.table.by_number(number)?;
        (entry.name == name && value.is_none_or(|v| entry.value == v)).then_some(number)
    }

    fn insert(&mut self, name: &[u8], value: &[u8], name_hash: u64, field_hash: u64) {
        let fits = entry_size(name, value) <= self.table.max_size();
        let number = self.table.next_number();
        // One allocation for both strings.
        let mut both = BytesMut::with_capacity(name.len() + value.len());
        both.extend_from_slice(name);
        both.extend_from_slice(value);
        let mut entry_name: Bytes = both.freeze();
        let entry_value = entry_name.split_off(name.len());
        let entry = Entry {
            name: entry_name,
            value: entry_value,
        };
        let (fields, names) = (&mut self.fields, &mut self.names);
        self.table
            .insert(entry, |number, entry| forget(fields, names, number, entry));
        if fits {
            self.fields.insert(field_hash, number);
            self.names.insert(name_hash, number);
        }
    }

    /// How many keys the two hash maps hold (for tests: never more than the table's entries).
    #[cfg(test)]
    pub(super) fn index_sizes(&self) -> (usize, usize) {
        (self.fields.len(), self.names.len())
    }

    /// The dynamic table's entries, newest first, and its size (for tests).
    #[cfg(test)]
    pub(super) fn table(&self) -> (Vec<(Bytes, Bytes)>, usize) {
        self.table.snapshot()
    }
}

/// Removes an evicted entry's keys from the maps, unless they point at a newer entry.
fn forget(
    fields: &mut HashMap<u64, u64, BuildHasherDefault<Prehashed>>,
    names: &mut HashMap<u64, u64, BuildHasherDefault<Prehashed>>,
    number: u64,
    entry: &Entry,
) {
    let name_hash = fx(0, &entry.name);
    for (map, hash) in [(fields, fx(name_hash, &entry.value)), (names, name_hash)] {
        if map.get(&hash) == Some(&number) {
            map.remove(&hash);
        }
    }
}

/// A string literal, not Huffman-coded (section 5.2).
fn string(dst: &mut BytesMut, bytes: &[u8]) {
    integer::encode(dst, 0x00, 7, bytes.len());
    dst.extend_from_slice(bytes);
}

/// FxHash over `bytes`, continuing from `hash`, with the length mixed in last (so that name and
/// value hashed in turn do not collide with another split of the same bytes).
fn fx(mut hash: u64, bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mix = |hash: u64, word: u64| (hash.rotate_left(5) ^ word).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        hash = mix(
            hash,
            u64::from_le_bytes(chunk.try_into().expect("chunks_exact(8)")),
        );
    }
    let rest = chunks.remainder();
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    mix(mix(hash, u64::from_le_bytes(last)), bytes.len() as u64)
}

/// The maps' keys are hashes already: the hasher passes them through.
#[derive(Debug, Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = fx(self.0, bytes);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

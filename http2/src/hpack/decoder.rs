//! Decoding a header block (RFC 7541 sections 3, 6 and 4.2).
//!
//! Literal strings that are not Huffman-coded are handed out as slices of the block (no copy);
//! static-table strings as `Bytes::from_static`; dynamic-table entries as clones (a reference
//! count). The only allocations are a Huffman-decoded string and a new dynamic-table entry.
//!
//! A new dynamic-table entry is copied into its own allocation (one for name and value when both
//! were literals), not kept as a slice of the block: a slice keeps the whole block alive, and a
//! table of 4,096 bytes whose entries came from a hundred blocks would hold a hundred blocks
//! (some of them 16 KiB) for the life of the connection. Insertions are few once a connection is
//! warm (repeated fields are indexed), so the copy costs little; memory is what a sidecar counts.
//!
//! A hostile peer is bounded: integers (see `integer`), string lengths by the bytes left in the
//! block, Huffman output by its input, indexes by the tables, size updates by what this side
//! advertised and to the start of a block. The list's size (SETTINGS_MAX_HEADER_LIST_SIZE, name
//! plus value plus 32 per field) is counted before a field is handed out, so an "HPACK bomb" (one
//! large entry referenced thousands of times) hands out nothing past the limit: the rest of the
//! block is read only to keep the table in step.

use std::fmt;

use bytes::{Bytes, BytesMut};

use super::dynamic_table::{DynamicTable, ENTRY_OVERHEAD, Entry};
use super::{huffman, integer, static_table};

/// One header field as decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: Bytes,
    pub value: Bytes,
    /// Sent as "never indexed" (RFC 7541 section 6.2.3): a proxy passing the field on must send
    /// it the same way.
    pub never_index: bool,
}

/// Why a header block could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The fields exceed the list size allowed: a stream error, the decoder stays usable.
    ListTooLarge,
    /// The block ends inside a representation.
    Truncated,
    /// An integer above 2^32 - 1, or with more than five continuation bytes.
    IntegerOverflow,
    /// Index 0, or an index beyond the static and dynamic tables.
    InvalidIndex,
    /// A dynamic table size update above the size this side advertised.
    TableSizeUpdateTooLarge,
    /// A dynamic table size update after a field (RFC 7541 section 4.2).
    TableSizeUpdateNotAtStart,
    /// A Huffman-coded string with the EOS symbol, or padding longer than 7 bits or not all ones.
    InvalidHuffman,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecodeError::ListTooLarge => {
                "the header list is larger than the SETTINGS_MAX_HEADER_LIST_SIZE this side allows"
            }
            DecodeError::Truncated => "the header block ends in the middle of a field",
            DecodeError::IntegerOverflow => {
                "the header block has an integer above 2^32 or longer than five continuation bytes"
            }
            DecodeError::InvalidIndex => {
                "the header block refers to index 0 or to an index beyond the HPACK tables"
            }
            DecodeError::TableSizeUpdateTooLarge => {
                "the header block sets the dynamic table larger than SETTINGS_HEADER_TABLE_SIZE"
            }
            DecodeError::TableSizeUpdateNotAtStart => {
                "the header block has a dynamic table size update after a field"
            }
            DecodeError::InvalidHuffman => {
                "the header block has a Huffman-coded string with EOS or with wrong padding"
            }
        })
    }
}

impl std::error::Error for DecodeError {}

/// The decoding side of one connection: its dynamic table.
#[derive(Debug)]
pub struct Decoder {
    table: DynamicTable,
    max_table_size: usize,
}

/// A string read from a block, and whether it is a slice of the block (to be copied before it
/// goes into the table).
struct Str {
    bytes: Bytes,
    in_block: bool,
}

impl Decoder {
    /// `max_table_size`: the SETTINGS_HEADER_TABLE_SIZE this side advertised: the largest
    /// dynamic-table size update the peer may send. The table starts at this size: advertise
    /// the default (4,096) or more, or a peer that encodes before it reads this side's SETTINGS
    /// would use a larger table than the decoder keeps.
    pub fn new(max_table_size: usize) -> Decoder {
        Decoder {
            table: DynamicTable::new(max_table_size),
            max_table_size,
        }
    }

    /// Decodes one complete header block (HEADERS + CONTINUATION fragments joined), calling
    /// `field` for each field in order.
    ///
    /// `max_list_size`: SETTINGS_MAX_HEADER_LIST_SIZE (name length + value length + 32 per
    /// field). Once the list would exceed it, `field` is not called again, the rest of the block
    /// is decoded only to keep the dynamic table in step with the peer, and the result is
    /// [`DecodeError::ListTooLarge`]: the decoder stays usable. Every other error is a connection
    /// error (COMPRESSION_ERROR), after which the decoder is in no defined state.
    pub fn decode(
        &mut self,
        block: &Bytes,
        max_list_size: usize,
        mut field: impl FnMut(Field),
    ) -> Result<(), DecodeError> {
        let buf = &block[..];
        let mut pos = 0;
        let mut list_size = 0usize;
        let mut too_large = false;
        let mut at_start = true;
        // Counts a field against the limit; true if it may be handed out.
        let mut admit = |size: usize| {
            list_size = list_size.saturating_add(size);
            too_large |= list_size > max_list_size;
            !too_large
        };
        while let Some(&first) = buf.get(pos) {
            if first & 0x80 != 0 {
                // Indexed field (section 6.1).
                let index = integer::decode(buf, &mut pos, 7)?;
                // The size first: past the limit (a bomb) nothing is cloned.
                let entry = self.entry(index)?;
                if admit(entry.size()) {
                    let (name, value) = entry.field();
                    field(Field {
                        name,
                        value,
                        never_index: false,
                    });
                }
            } else if first & 0xe0 == 0x20 {
                // Dynamic table size update (section 6.3).
                if !at_start {
                    return Err(DecodeError::TableSizeUpdateNotAtStart);
                }
                let size = integer::decode(buf, &mut pos, 5)?;
                if size > self.max_table_size {
                    return Err(DecodeError::TableSizeUpdateTooLarge);
                }
                self.table.set_max_size(size, |_, _| {});
                continue;
            } else {
                // Literal field: with incremental indexing (01), never indexed (0001) or without
                // indexing (0000) (section 6.2).
                let (prefix_bits, incremental, never_index) = match first & 0xf0 {
                    0x40..=0x70 => (6, true, false),
                    0x10 => (4, false, true),
                    _ => (4, false, false),
                };
                let index = integer::decode(buf, &mut pos, prefix_bits)?;
                let name = if index == 0 {
                    string(block, &mut pos)?
                } else {
                    Str {
                        bytes: self.entry(index)?.name(),
                        in_block: false,
                    }
                };
                let value = string(block, &mut pos)?;
                if incremental {
                    self.table.insert(own(&name, &value), |_, _| {});
                }
                if admit(name.bytes.len() + value.bytes.len() + ENTRY_OVERHEAD) {
                    field(Field {
                        name: name.bytes,
                        value: value.bytes,
                        never_index,
                    });
                }
            }
            at_start = false;
        }
        if too_large {
            Err(DecodeError::ListTooLarge)
        } else {
            Ok(())
        }
    }

    /// The field at `index` of the static table followed by the dynamic one.
    fn entry(&self, index: usize) -> Result<Indexed<'_>, DecodeError> {
        if let Some((name, value)) = static_table::get(index) {
            return Ok(Indexed::Static(name, value));
        }
        index
            .checked_sub(static_table::LEN)
            .and_then(|i| self.table.get(i))
            .map(Indexed::Dynamic)
            .ok_or(DecodeError::InvalidIndex)
    }

    /// The dynamic table's entries, newest first, and its size (for tests).
    #[cfg(test)]
    pub(super) fn table(&self) -> (Vec<(Bytes, Bytes)>, usize) {
        self.table.snapshot()
    }
}

/// A field found by its index: nothing is cloned until it is handed out.
enum Indexed<'a> {
    Static(&'static str, &'static str),
    Dynamic(&'a Entry),
}

impl Indexed<'_> {
    /// Its size in the header list (name, value and 32).
    fn size(&self) -> usize {
        match self {
            Indexed::Static(name, value) => name.len() + value.len() + ENTRY_OVERHEAD,
            Indexed::Dynamic(entry) => entry.size(),
        }
    }

    fn name(&self) -> Bytes {
        match self {
            Indexed::Static(name, _) => Bytes::from_static(name.as_bytes()),
            Indexed::Dynamic(entry) => entry.name.clone(),
        }
    }

    fn field(&self) -> (Bytes, Bytes) {
        match self {
            Indexed::Static(name, value) => (
                Bytes::from_static(name.as_bytes()),
                Bytes::from_static(value.as_bytes()),
            ),
            Indexed::Dynamic(entry) => (entry.name.clone(), entry.value.clone()),
        }
    }
}

/// Reads a string literal (section 5.2): a Huffman flag, a length with a 7-bit prefix, the bytes.
fn string(block: &Bytes, pos: &mut usize) -> Result<Str, DecodeError> {
    let huffman_coded = block.get(*pos).ok_or(DecodeError::Truncated)? & 0x80 != 0;
    let len = integer::decode(block, pos, 7)?;
    let end = pos
        .checked_add(len)
        .filter(|&end| end <= block.len())
        .ok_or(DecodeError::Truncated)?;
    let start = std::mem::replace(pos, end);
    if huffman_coded {
        let decoded = huffman::decode(&block[start..end]).ok_or(DecodeError::InvalidHuffman)?;
        Ok(Str {
            bytes: Bytes::from(decoded),
            in_block: false,
        })
    } else {
        Ok(Str {
            bytes: block.slice(start..end),
            in_block: true,
        })
    }
}

/// The entry to add to the dynamic table: what is a slice of the block copied into its own
/// allocation (see the module doc), one allocation for both strings if both are.
fn own(name: &Str, value: &Str) -> Entry {
    let (name, value) = match (name.in_block, value.in_block) {
        (false, false) => (name.bytes.clone(), value.bytes.clone()),
        (false, true) => (name.bytes.clone(), Bytes::copy_from_slice(&value.bytes)),
        (true, false) => (Bytes::copy_from_slice(&name.bytes), value.bytes.clone()),
        (true, true) => {
            let mut both = BytesMut::with_capacity(name.bytes.len() + value.bytes.len());
            both.extend_from_slice(&name.bytes);
            both.extend_from_slice(&value.bytes);
            let mut name = both.freeze();
            let value = name.split_off(name.len() - value.bytes.len());
            (name, value)
        }
    };
    Entry { name, value }
}

//! The encoder's choices: indexes, eviction, table size updates, never-indexed fields, and
//! round trips through the decoder.

use super::*;
use crate::hpack::default_indexing;

/// Encodes `fields` with `encoder` and decodes them with `decoder`, checking the round trip and
/// that both tables hold the same entries.
fn round_trip(
    encoder: &mut Encoder,
    decoder: &mut Decoder,
    fields: &[(&str, &str)],
    indexing: Indexing,
) -> Vec<u8> {
    let block = encode(encoder, fields, indexing);
    assert_eq!(decode(decoder, &block), Ok(list(fields)));
    assert_eq!(entries(encoder.table()), entries(decoder.table()));
    block
}

#[test]
fn evicts_oldest_first_and_forgets_evicted_indexes() {
    let mut encoder = Encoder::new();
    let mut decoder = Decoder::new(4096);
    encoder.set_max_table_size(100);
    // Each entry is 32 + 4 + 6 = 42 bytes: two fit in 100.
    round_trip(
        &mut encoder,
        &mut decoder,
        &[("x-aa", "value1"), ("x-bb", "value2")],
        Indexing::Incremental,
    );
    round_trip(
        &mut encoder,
        &mut decoder,
        &[("x-cc", "value3")],
        Indexing::Incremental,
    );
    assert_eq!(
        entries(encoder.table()),
        (list(&[("x-cc", "value3"), ("x-bb", "value2")]), 84)
    );
    // x-aa was evicted: sent as a literal again (with its name), not as a stale index.
    let block = round_trip(
        &mut encoder,
        &mut decoder,
        &[("x-aa", "value1")],
        Indexing::Without,
    );
    assert_eq!(block[..2], [0x00, 0x04]);
    // x-bb is index 63, x-cc 62; a new value for x-bb's name indexes the name (63: 0x0f 0x30).
    let block = round_trip(
        &mut encoder,
        &mut decoder,
        &[("x-bb", "value2"), ("x-cc", "value3")],
        Indexing::Without,
    );
    assert_eq!(block, [0xbf, 0xbe]);
    let block = round_trip(
        &mut encoder,
        &mut decoder,
        &[("x-bb", "other")],
        Indexing::Without,
    );
    assert_eq!(block[..2], [0x0f, 0x30]);
}

#[test]
fn an_entry_larger_than_the_table_empties_it() {
    let mut encoder = Encoder::new();
    let mut decoder = Decoder::new(4096);
    round_trip(
        &mut encoder,
        &mut decoder,
        &[("x-small", "1")],
        Indexing::Incremental,
    );
    let big = "x".repeat(4096 - 32 - 5 + 1);
    round_trip(
        &mut encoder,
        &mut decoder,
        &[("x-big", &big)],
        Indexing::Incremental,
    );
    assert_eq!(entries(encoder.table()), (vec![], 0));
    // Exactly the table's size fits.
    let fits = "x".repeat(4096 - 32 - 5);
    round_trip(
        &mut encoder,
        &mut decoder,
        &[("x-big", &fits)],
        Indexing::Incremental,
    );
    assert_eq!(entries(encoder.table()).1, 4096);
    // And the small one, no longer in the table, goes out as a literal.
    let block = round_trip(
        &mut encoder,
        &mut decoder,
        &[("x-small", "1")],
        Indexing::Incremental,
    );
    assert_eq!(block[0], 0x40);
}

#[test]
fn table_size_updates_at_the_next_block() {
    let mut encoder = Encoder::new();
    let mut decoder = Decoder::new(4096);
    round_trip(
        &mut encoder,
        &mut decoder,
        &[("x-a", "1")],
        Indexing::Incremental,
    );
    // No change, no update.
    encoder.set_max_table_size(4096);
    assert_eq!(
        encode(&mut encoder, &[], Indexing::Incremental),
        [] as [u8; 0]
    );
    // Above 4,096: the encoder stays at 4,096.
    encoder.set_max_table_size(65_536);
    assert_eq!(
        encode(&mut encoder, &[], Indexing::Incremental),
        [] as [u8; 0]
    );
    // Down: one update (100 = 31 + 69), and the entry stays (36 bytes fit).
    encoder.set_max_table_size(100);
    let block = round_trip(
        &mut encoder,
        &mut decoder,
        &[("x-a", "1")],
        Indexing::Incremental,
    );
    assert_eq!(block, [0x3f, 0x45, 0xbe]);
    // Down to 0 and up to 200 between two blocks: both, the smallest first, and the table is
    // empty on both sides.
    encoder.set_max_table_size(0);
    encoder.set_max_table_size(200);
    let block = round_trip(&mut encoder, &mut decoder, &[], Indexing::Incremental);
    assert_eq!(block, [0x20, 0x3f, 0xa9, 0x01]);
    assert_eq!(entries(decoder.table()), (vec![], 0));
    // Up, down, up again: the smallest, then the last.
    encoder.set_max_table_size(300);
    encoder.set_max_table_size(50);
    encoder.set_max_table_size(4096);
    let block = round_trip(
        &mut encoder,
        &mut decoder,
        &[("x-b", "2")],
        Indexing::Incremental,
    );
    assert_eq!(block[..4], [0x3f, 0x13, 0x3f, 0xe1]);
    // Nothing pending afterwards.
    assert_eq!(
        encode(&mut encoder, &[("x-b", "2")], Indexing::Incremental),
        [0xbe]
    );
}

#[test]
fn never_indexed_fields_stay_never_indexed() {
    let mut encoder = Encoder::new();
    let mut decoder = Decoder::new(4096);
    let mut block = BytesMut::new();
    encoder.begin_block(&mut block);
    // Sent twice: never added, never sent indexed, even when the static table has the field
    // (cookie with an empty value is entry 32).
    for _ in 0..2 {
        encoder.field(
            b"authorization",
            b"Bearer secret",
            Indexing::Never,
            &mut block,
        );
        encoder.field(b"cookie", b"", Indexing::Never, &mut block);
        encoder.field(b"x-secret", b"s", Indexing::Never, &mut block);
    }
    assert_eq!(block[..2], [0x1f, 0x08]); // never indexed, name index 23 (15 + 8)
    assert_eq!(block[16..19], [0x1f, 0x11, 0x00]); // cookie: name index 32, empty value
    assert_eq!(block[19..21], [0x10, 0x08]); // literal name
    assert_eq!(entries(encoder.table()), (vec![], 0));
    let fields = decode_fields(&mut decoder, &block, usize::MAX).expect("decodes");
    assert_eq!(fields.len(), 6);
    assert!(fields.iter().all(|f| f.never_index));
    assert_eq!(&fields[3].value[..], b"Bearer secret");
    // Without and Incremental are not reported as never indexed.
    let block = encode(&mut encoder, &[("x-plain", "1")], Indexing::Without);
    let fields = decode_fields(&mut decoder, &block, usize::MAX).expect("decodes");
    assert!(!fields[0].never_index);
}

#[test]
fn indexes_fields_and_names_from_both_tables() {
    let mut encoder = Encoder::new();
    let mut decoder = Decoder::new(4096);
    // Static field, static name, literal name.
    let block = round_trip(
        &mut encoder,
        &mut decoder,
        &[(":status", "200"), (":status", "201"), ("grpc-status", "0")],
        Indexing::Incremental,
    );
    assert_eq!(block[0], 0x88);
    assert_eq!(block[1..3], [0x48, 0x03]);
    assert_eq!(block[6..8], [0x40, 0x0b]);
    // Now all three come from the tables: 200 static, the others dynamic.
    let block = round_trip(
        &mut encoder,
        &mut decoder,
        &[(":status", "200"), (":status", "201"), ("grpc-status", "0")],
        Indexing::Incremental,
    );
    assert_eq!(block, [0x88, 0xbf, 0xbe]);
    // A new value for a dynamic name: literal with the name's index (62).
    let block = round_trip(
        &mut encoder,
        &mut decoder,
        &[("grpc-status", "14")],
        Indexing::Without,
    );
    assert_eq!(block, [0x0f, 0x2f, 0x02, b'1', b'4']);
    // Many entries with one name: the newest is found, and all round-trip.
    for i in 0..300 {
        let value = format!("v{i}");
        round_trip(
            &mut encoder,
            &mut decoder,
            &[("x-many", &value), ("x-many", &value)],
            Indexing::Incremental,
        );
    }
    // Evicted entries leave the hash maps: they hold as many keys as the table has entries
    // and distinct names (only x-many is left), however many were inserted.
    let entries_now = entries(encoder.table()).0.len();
    assert_eq!(encoder.index_sizes(), (entries_now, 1));
}

#[test]
fn default_indexing_of_weft_fields() {
    assert_eq!(default_indexing(b"authorization", b"x"), Indexing::Never);
    assert_eq!(default_indexing(b"set-cookie", b"x"), Indexing::Never);
    assert_eq!(default_indexing(b":path", b"/a"), Indexing::Without);
    assert_eq!(default_indexing(b"traceparent", b"00-"), Indexing::Without);
    assert_eq!(default_indexing(b"grpc-timeout", b"1S"), Indexing::Without);
    assert_eq!(default_indexing(b":method", b"GET"), Indexing::Incremental);
    assert_eq!(
        default_indexing(b"content-type", b"application/grpc"),
        Indexing::Incremental
    );
    assert_eq!(
        default_indexing(b"x-long", &[b'a'; 256]),
        Indexing::Incremental
    );
    assert_eq!(default_indexing(b"x-long", &[b'a'; 257]), Indexing::Without);
}

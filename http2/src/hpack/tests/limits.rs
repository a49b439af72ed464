//! What a hostile peer meets: each error produced by a crafted block, the HPACK bomb, a list too
//! large leaving the decoder in step, and the rules for size updates.

use super::*;
use crate::hpack::huffman;

/// A literal without indexing with a literal name (`0000 0000`), name and value not
/// Huffman-coded.
fn literal(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut block = BytesMut::new();
    Encoder::new().field(name, value, Indexing::Without, &mut block);
    block.to_vec()
}

#[test]
fn each_error_from_a_crafted_block() {
    let cases: Vec<(&str, Vec<u8>, DecodeError)> = vec![
        ("index 0", vec![0x80], DecodeError::InvalidIndex),
        (
            "index 62 with an empty dynamic table",
            vec![0xbe],
            DecodeError::InvalidIndex,
        ),
        (
            "literal with name index 70",
            vec![0x0f, 0x37, 0x00],
            DecodeError::InvalidIndex,
        ),
        ("integer cut short", vec![0xff], DecodeError::Truncated),
        (
            "literal without its value",
            vec![0x04],
            DecodeError::Truncated,
        ),
        (
            "string longer than the block",
            vec![0x04, 0x05, b'a'],
            DecodeError::Truncated,
        ),
        (
            "string length cut short",
            vec![0x04, 0x7f],
            DecodeError::Truncated,
        ),
        (
            "integer of 2^32",
            vec![0xff, 0x81, 0xff, 0xff, 0xff, 0x0f],
            DecodeError::IntegerOverflow,
        ),
        (
            "six continuation bytes",
            vec![0xff, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
            DecodeError::IntegerOverflow,
        ),
        (
            "huge string length",
            vec![0x04, 0x7f, 0xff, 0xff, 0xff, 0xff, 0x7f],
            DecodeError::IntegerOverflow,
        ),
        (
            "size update above the maximum",
            vec![0x3f, 0xe2, 0x1f],
            DecodeError::TableSizeUpdateTooLarge,
        ),
        (
            "size update after a field",
            vec![0x82, 0x20],
            DecodeError::TableSizeUpdateNotAtStart,
        ),
        // 0x81 0x1f: a Huffman string of one byte, 00011111: "a" (00011), then 111 padding is
        // fine; 0x1e has padding 110, not all ones.
        (
            "Huffman padding not all ones",
            vec![0x04, 0x81, 0x1e],
            DecodeError::InvalidHuffman,
        ),
        (
            "Huffman padding of 8 bits",
            vec![0x04, 0x82, 0x1f, 0xff],
            DecodeError::InvalidHuffman,
        ),
        (
            "Huffman EOS",
            vec![0x04, 0x84, 0xff, 0xff, 0xff, 0xff],
            DecodeError::InvalidHuffman,
        ),
    ];
    for (what, block, error) in cases {
        let mut decoder = Decoder::new(4096);
        assert_eq!(decode(&mut decoder, &block), Err(error), "{what}");
        // Every error reads as a sentence.
        assert!(error.to_string().len() > 20);
    }
    // The well-formed neighbours of the Huffman cases decode.
    let mut decoder = Decoder::new(4096);
    assert_eq!(
        decode(&mut decoder, &[0x04, 0x81, 0x1f]),
        Ok(list(&[(":path", "a")]))
    );
    assert_eq!(huffman::decode(&[0x1f]), Some(b"a".to_vec()));
}

#[test]
fn hpack_bomb_is_stopped_without_building_the_list() {
    // One entry of 4,000 bytes, then 10,000 references to it: 40 MB of list from a 10 kB block.
    let mut block = BytesMut::new();
    let mut encoder = Encoder::new();
    encoder.field(b"x-bomb", &[b'b'; 4000], Indexing::Incremental, &mut block);
    block.extend_from_slice(&[0xbe; 10_000]);
    let mut decoder = Decoder::new(4096);
    let mut handed_out = 0;
    let result = decoder.decode(&block.freeze(), 16_384, |_| handed_out += 1);
    assert_eq!(result, Err(DecodeError::ListTooLarge));
    // The literal (4,038) and three references fit in 16 KiB; the fifth field does not.
    assert_eq!(handed_out, 4);
}

#[test]
fn list_too_large_keeps_the_decoder_in_step() {
    let mut encoder = Encoder::new();
    let mut decoder = Decoder::new(4096);
    // A block over the limit that adds entries, some after the limit was passed.
    let big = "v".repeat(200);
    let first = [
        ("x-a", "1"),
        ("x-big", big.as_str()),
        ("x-b", "2"),
        ("x-c", "3"),
    ];
    let block = encode(&mut encoder, &first, Indexing::Incremental);
    let mut seen = Vec::new();
    let result = decoder.decode(&Bytes::from(block), 100, |f| seen.push(text(&f.name)));
    assert_eq!(result, Err(DecodeError::ListTooLarge));
    assert_eq!(seen, ["x-a"]);
    // The next block refers to all four entries by index alone (65 is x-a, 62 x-c): right only
    // if the decoder added them all.
    let block = encode(&mut encoder, &first, Indexing::Incremental);
    assert_eq!(block, [0xc1, 0xc0, 0xbf, 0xbe]);
    assert_eq!(decode(&mut decoder, &block), Ok(list(&first)));
}

#[test]
fn size_updates() {
    let mut decoder = Decoder::new(4096);
    // Several at the start are fine (the smallest, then the final size), and evict.
    decode(&mut decoder, &literal(b"x", b"y")).expect("decodes");
    let mut incremental = BytesMut::new();
    Encoder::new().field(b"x-kept", b"1", Indexing::Incremental, &mut incremental);
    decode(&mut decoder, &incremental).expect("decodes");
    assert_eq!(entries(decoder.table()).0.len(), 1);
    assert_eq!(
        decode(&mut decoder, &[0x20, 0x3f, 0xe1, 0x1f, 0x82]),
        Ok(list(&[(":method", "GET")]))
    );
    assert_eq!(entries(decoder.table()), (vec![], 0));
    // Up to the advertised size exactly, and a block of only an update.
    assert_eq!(decode(&mut decoder, &[0x3f, 0xe1, 0x1f]), Ok(vec![]));
    // Above it, or after a field, not.
    assert_eq!(
        decode(&mut decoder, &[0x3f, 0xe2, 0x1f]),
        Err(DecodeError::TableSizeUpdateTooLarge)
    );
    let mut decoder = Decoder::new(4096);
    assert_eq!(
        decode(&mut decoder, &[0x82, 0x3f, 0xe1, 0x01]),
        Err(DecodeError::TableSizeUpdateNotAtStart)
    );
    // A decoder that advertised 256 refuses 257.
    let mut decoder = Decoder::new(256);
    assert_eq!(
        decode(&mut decoder, &[0x3f, 0xe2, 0x01]),
        Err(DecodeError::TableSizeUpdateTooLarge)
    );
    assert_eq!(
        decode(&mut Decoder::new(256), &[0x3f, 0xe1, 0x01]),
        Ok(vec![])
    );
}

#[test]
fn literal_strings_are_slices_of_the_block() {
    let mut block = BytesMut::new();
    let mut encoder = Encoder::new();
    encoder.field(b"x-one", b"value-one", Indexing::Incremental, &mut block);
    encoder.field(b"x-two", b"value-two", Indexing::Without, &mut block);
    let block = block.freeze();
    let range = block.as_ptr_range();
    let mut decoder = Decoder::new(4096);
    let mut fields = Vec::new();
    decoder
        .decode(&block, usize::MAX, |f| fields.push(f))
        .expect("decodes");
    for field in &fields {
        assert!(range.contains(&field.name.as_ptr()) && range.contains(&field.value.as_ptr()));
    }
    // The table's copy is not: it does not keep the block alive.
    let (table, _) = decoder.table();
    assert!(!range.contains(&table[0].1.as_ptr()));
}

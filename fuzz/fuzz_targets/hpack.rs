//! `weft_http2::hpack`: header blocks (RFC 7541) as a peer, perhaps a hostile one, sends them.
//!
//! The input's first byte times 32 is the SETTINGS_HEADER_TABLE_SIZE the decoder advertised (0
//! to 8,160); the rest is a run of header blocks, each a two-byte big-endian length and that many
//! bytes (the last block takes what is left when fewer remain). One decoder reads them all, with
//! a header list limit of 16 KiB, and goes on after an error, in whatever state the error left
//! it. Checks: no panic, whatever the blocks; and every block that decodes, encoded again field by
//! field with one `Encoder` (the table size the first byte says; each field with
//! `default_indexing`, or `Never` if it came never indexed), reads back through a second decoder
//! as the same fields, marked never indexed exactly where `Never` was used.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use weft_http2::hpack::{Decoder, Encoder, Field, Indexing, default_indexing};

/// The header list limit of the first decoder (SETTINGS_MAX_HEADER_LIST_SIZE).
const MAX_LIST_SIZE: usize = 16 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&size, mut rest)) = data.split_first() else {
        return;
    };
    let table_size = usize::from(size) * 32;
    let mut decoder = Decoder::new(table_size);
    let mut encoder = Encoder::new();
    encoder.set_max_table_size(table_size);
    let mut again = Decoder::new(4096);
    while !rest.is_empty() {
        let (block, next) = match rest {
            [high, low, tail @ ..] => {
                let len = usize::from(u16::from_be_bytes([*high, *low])).min(tail.len());
                tail.split_at(len)
            }
            _ => (rest, &[][..]),
        };
        rest = next;
        let block = Bytes::copy_from_slice(block);
        let mut fields = Vec::new();
        if decoder
            .decode(&block, MAX_LIST_SIZE, |f| fields.push(f))
            .is_err()
        {
            continue;
        }
        let mut encoded = BytesMut::new();
        encoder.begin_block(&mut encoded);
        let mut expected = Vec::new();
        for field in &fields {
            let indexing = if field.never_index {
                Indexing::Never
            } else {
                default_indexing(&field.name, &field.value)
            };
            encoder.field(&field.name, &field.value, indexing, &mut encoded);
            expected.push(Field {
                never_index: indexing == Indexing::Never,
                ..field.clone()
            });
        }
        let mut decoded = Vec::new();
        let result = again.decode(&encoded.freeze(), usize::MAX, |f| decoded.push(f));
        assert_eq!(result, Ok(()), "our own block does not decode");
        assert_eq!(decoded, expected);
    }
});

//! `weft_proxy::http::h1::ChunkedDecoder`: chunked request and response bodies (RFC 9112 7.1),
//! read as the bytes arrive.
//!
//! The input's first line lists where to cut the rest (decimal offsets, comma-separated: `3,10`;
//! anything else there means no cuts), and the rest is the body. Checks: no panic; the outcome
//! (the data, the trailers, the error, the bytes after the body) is the same whether the body
//! arrives whole, cut at those points or one byte at a time; and a body read to its end, written
//! again with `encode_chunk` and `encode_last_chunk`, reads back as the same data and trailers.

#![no_main]

use bytes::BytesMut;
use http::HeaderMap;
use libfuzzer_sys::fuzz_target;
use weft_proxy::http::h1::{Chunk, ChunkedDecoder, H1Error, encode_chunk, encode_last_chunk};

/// What reading a body found.
#[derive(Debug, PartialEq)]
struct Outcome {
    data: Vec<u8>,
    /// `Ok(Some(trailers))` at the end (empty without trailers), `Ok(None)` if the input ran
    /// out first.
    end: Result<Option<HeaderMap>, H1Error>,
    /// The bytes after the body (the next message), unread.
    rest: Vec<u8>,
}

fuzz_target!(|data: &[u8]| {
    let (spec, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&[][..], data),
    };
    let mut cuts: Vec<usize> = std::str::from_utf8(spec)
        .unwrap_or_default()
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .filter(|&n| n > 0 && n < body.len())
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let whole = read(body, &[]);
    assert_eq!(read(body, &cuts), whole, "cut at {cuts:?}");
    let every: Vec<usize> = (1..body.len()).collect();
    assert_eq!(read(body, &every), whole, "one byte at a time");

    if let Ok(Some(trailers)) = &whole.end {
        let mut written = BytesMut::new();
        for piece in whole.data.chunks(1000) {
            encode_chunk(piece, &mut written);
        }
        encode_last_chunk(Some(trailers), &mut written);
        let again = read(&written, &[]);
        assert_eq!(again.data, whole.data);
        assert_eq!(again.end.as_ref(), Ok(&Some(trailers.clone())));
        assert!(again.rest.is_empty());
    }
});

/// Reads `body` fed in pieces ending at `cuts` (then the rest).
fn read(body: &[u8], cuts: &[usize]) -> Outcome {
    let mut decoder = ChunkedDecoder::new();
    let mut buf = BytesMut::new();
    let mut pieces = cuts.iter().copied().chain([body.len()]);
    let mut fed = 0;
    let mut data = Vec::new();
    // Every call consumes input or returns `None`; the bound only keeps a bug from hanging.
    for _ in 0..4 * body.len() + 16 {
        let end = match decoder.decode(&mut buf) {
            Ok(Some(Chunk::Data(bytes))) => {
                assert!(!bytes.is_empty(), "empty data");
                data.extend_from_slice(&bytes);
                continue;
            }
            Ok(Some(Chunk::Trailers(trailers))) => Ok(Some(trailers)),
            Ok(Some(Chunk::End)) => Ok(Some(HeaderMap::new())),
            Ok(None) => match pieces.next() {
                Some(cut) => {
                    buf.extend_from_slice(&body[fed..cut]);
                    fed = cut;
                    continue;
                }
                None => Ok(None),
            },
            Err(error) => Err(error),
        };
        let mut rest = buf.to_vec();
        rest.extend_from_slice(&body[fed..]);
        return Outcome { data, end, rest };
    }
    panic!("the decoder neither consumed input nor asked for more");
}

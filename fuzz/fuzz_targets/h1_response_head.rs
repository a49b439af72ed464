//! `weft_proxy::http::h1::parse_response`: the response heads an app answers with, one after
//! another (interim 1xx heads, then keep-alive), with their bodies skipped by their framing.
//!
//! The input's first line is the method of the request being answered (`GET`, `HEAD`, ...), the
//! rest what the app sent. Checks, on every head accepted: no panic; its length is where it ends;
//! nothing RFC 9112 forbids got through (a bare CR, obs-fold, `Content-Length` with
//! `Transfer-Encoding`, lengths that differ); its framing is what its status, the request's
//! method and its headers say (no body after 1xx, 204, 304 or HEAD; a close-delimited body ends
//! the connection); and, written again with `encode_response_head`, it parses back the same.

#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_fuzz::h1::{Message, check_framing, check_head_bytes, skip_body, without_framing};
use weft_proxy::http::h1::{Framing, ResponseHead, encode_response_head, parse_response};

/// Responses read from one input at most.
const MAX_RESPONSES: usize = 8;

fuzz_target!(|data: &[u8]| {
    let Some(newline) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let Ok(method) = http::Method::from_bytes(&data[..newline]) else {
        return;
    };
    let mut rest = &data[newline + 1..];
    for _ in 0..MAX_RESPONSES {
        let Ok(Some((head, len))) = parse_response(rest, &method) else {
            return;
        };
        let raw = &rest[..len];
        check_head_bytes(raw, |prefix| {
            parse_response(prefix, &method).map(|p| p.map(|(_, n)| n))
        });
        let (same, same_len) = parse_response(raw, &method)
            .expect("the head alone")
            .expect("complete");
        assert_eq!(same_len, len);
        assert_same(&same, &head);
        check_framing(&Message::response(&head, &method));
        if head.framing == Framing::CloseDelimited {
            assert!(!head.keep_alive, "a close-delimited body with keep-alive");
        }

        let mut written = bytes::BytesMut::new();
        encode_response_head(
            head.status,
            head.version,
            &head.headers,
            head.framing,
            &mut written,
        );
        let (again, again_len) = parse_response(&written, &method)
            .unwrap_or_else(|e| panic!("{e}: {written:?}"))
            .expect("complete");
        assert_eq!(again_len, written.len());
        // The encoder writes the framing headers its own way.
        assert_eq!(
            without_framing(&again.headers),
            without_framing(&head.headers)
        );
        assert_eq!(again.framing, head.framing);
        assert_eq!(again.status, head.status);
        assert_eq!(again.version, head.version);
        assert_eq!(again.keep_alive, head.keep_alive);

        let Some(after) = skip_body(head.framing, &rest[len..]) else {
            return;
        };
        rest = after;
    }
});

fn assert_same(a: &ResponseHead, b: &ResponseHead) {
    assert_eq!(a.status, b.status);
    assert_eq!(a.version, b.version);
    assert_eq!(a.headers, b.headers);
    assert_eq!(a.framing, b.framing);
    assert_eq!(a.keep_alive, b.keep_alive);
}

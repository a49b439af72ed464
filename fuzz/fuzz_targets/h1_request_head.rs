//! `weft_proxy::http::h1::parse_request`: the request heads an app's connection carries, one
//! after another (keep-alive and pipelining), with their bodies skipped by their framing.
//!
//! Checks, on every head accepted: no panic; its length is where it ends (any shorter prefix is
//! incomplete, the prefix of that length parses the same); nothing RFC 9112 forbids got through
//! (a bare CR, obs-fold, `Content-Length` with `Transfer-Encoding`, lengths that differ, an
//! HTTP/1.1 request without exactly one `Host`); its framing is what its headers say; and,
//! written again with `encode_request_head`, it parses back the same.

#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_fuzz::h1::{Message, check_framing, check_head_bytes, skip_body, without_framing};
use weft_proxy::http::h1::{RequestHead, encode_request_head, parse_request};

/// Requests read from one input at most.
const MAX_REQUESTS: usize = 8;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    for _ in 0..MAX_REQUESTS {
        let Ok(Some((head, len))) = parse_request(rest) else {
            return;
        };
        let raw = &rest[..len];
        check_head_bytes(raw, |prefix| {
            parse_request(prefix).map(|p| p.map(|(_, n)| n))
        });
        let (same, same_len) = parse_request(raw)
            .expect("the head alone")
            .expect("complete");
        assert_eq!(same_len, len);
        assert_same(&same, &head);
        check_framing(&Message::request(&head));
        if head.version == http::Version::HTTP_11 {
            assert_eq!(head.headers.get_all(http::header::HOST).iter().count(), 1);
        }

        let mut written = bytes::BytesMut::new();
        encode_request_head(
            &head.method,
            &head.uri,
            head.version,
            &head.headers,
            head.framing,
            &mut written,
        );
        let (again, again_len) = parse_request(&written)
            .unwrap_or_else(|e| panic!("{e}: {written:?}"))
            .expect("complete");
        assert_eq!(again_len, written.len());
        assert_written_again(&again, &head);

        let Some(after) = skip_body(head.framing, &rest[len..]) else {
            return;
        };
        rest = after;
    }
});

/// `again` is `head` written and read back: the same but for what the encoder writes its own
/// way (the framing headers, origin form, `Host` from the URI when there was none).
fn assert_written_again(again: &RequestHead, head: &RequestHead) {
    assert_eq!(again.method, head.method);
    if head.method == http::Method::CONNECT {
        assert_eq!(again.uri.authority(), head.uri.authority());
    } else {
        // An absolute target without a path (`http://x?q=1`) is written from the root.
        let path = |uri: &http::Uri| match uri.path_and_query().map_or("/", |p| p.as_str()) {
            query if query.starts_with('?') => format!("/{query}"),
            path => path.to_owned(),
        };
        assert_eq!(path(&again.uri), path(&head.uri));
    }
    assert_eq!(again.version, head.version);
    let mut headers = without_framing(&again.headers);
    if !head.headers.contains_key(http::header::HOST) {
        headers.remove(http::header::HOST);
    }
    assert_eq!(headers, without_framing(&head.headers));
    assert_eq!(again.framing, head.framing);
    assert_eq!(again.keep_alive, head.keep_alive);
    assert_eq!(again.expect_continue, head.expect_continue);
    assert_eq!(again.upgrade, head.upgrade);
}

fn assert_same(a: &RequestHead, b: &RequestHead) {
    assert_eq!(a.method, b.method);
    assert_eq!(a.uri, b.uri);
    assert_eq!(a.version, b.version);
    assert_eq!(a.headers, b.headers);
    assert_eq!(a.framing, b.framing);
    assert_eq!(a.keep_alive, b.keep_alive);
    assert_eq!(a.expect_continue, b.expect_continue);
    assert_eq!(a.upgrade, b.upgrade);
}

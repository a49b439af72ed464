//! The checks shared by the HTTP/1.1 head targets: what an accepted head's bytes may contain,
//! whether its framing is the one its headers give, and where its body ends.

use bytes::BytesMut;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Version};
use weft_proxy::http::h1::{Chunk, ChunkedDecoder, Framing, H1Error, RequestHead, ResponseHead};

/// Prefixes shorter than this are all parsed; beyond it, every 61st.
const EVERY_PREFIX_UP_TO: usize = 512;

/// What the framing checks need of a request or response head.
pub struct Message<'a> {
    pub version: Version,
    pub headers: &'a HeaderMap,
    pub framing: Framing,
    /// A response that never has a body (1xx, 204, 304, or the answer to a HEAD).
    pub bodiless: bool,
    pub response: bool,
}

impl<'a> Message<'a> {
    pub fn request(head: &'a RequestHead) -> Self {
        Self {
            version: head.version,
            headers: &head.headers,
            framing: head.framing,
            bodiless: false,
            response: false,
        }
    }

    pub fn response(head: &'a ResponseHead, request_method: &http::Method) -> Self {
        let status = head.status;
        Self {
            version: head.version,
            headers: &head.headers,
            framing: head.framing,
            bodiless: status.is_informational()
                || status == http::StatusCode::NO_CONTENT
                || status == http::StatusCode::NOT_MODIFIED
                || request_method == http::Method::HEAD,
            response: true,
        }
    }
}

/// Checks the bytes of an accepted head (`raw`, exactly its length): no bare CR, no obs-fold,
/// and every shorter prefix is incomplete to `parse` (which returns the head's length).
pub fn check_head_bytes(raw: &[u8], parse: impl Fn(&[u8]) -> Result<Option<usize>, H1Error>) {
    assert!(
        !raw.windows(2).any(|w| w[0] == b'\r' && w[1] != b'\n'),
        "a bare CR was accepted: {raw:?}"
    );
    assert!(
        !raw.windows(2)
            .any(|w| w[0] == b'\n' && (w[1] == b' ' || w[1] == b'\t')),
        "obs-fold was accepted: {raw:?}"
    );
    let prefixes =
        (0..raw.len().min(EVERY_PREFIX_UP_TO)).chain((EVERY_PREFIX_UP_TO..raw.len()).step_by(61));
    for cut in prefixes {
        assert_eq!(
            parse(&raw[..cut]),
            Ok(None),
            "after {cut} of {} bytes",
            raw.len()
        );
    }
}

/// Checks that a head's framing is what its `Content-Length` and `Transfer-Encoding` say.
pub fn check_framing(message: &Message<'_>) {
    let lengths: Vec<&[u8]> = message
        .headers
        .get_all(CONTENT_LENGTH)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .collect();
    let codings: Vec<&[u8]> = message
        .headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty())
        .collect();
    let has_te = message.headers.contains_key(TRANSFER_ENCODING);
    assert!(
        lengths.is_empty() || !has_te,
        "Content-Length with Transfer-Encoding was accepted"
    );
    let numbers: Vec<u64> = lengths
        .iter()
        .map(|l| {
            assert!(l.iter().all(u8::is_ascii_digit), "Content-Length {l:?}");
            std::str::from_utf8(l)
                .ok()
                .and_then(|l| l.parse().ok())
                .expect("a decimal length")
        })
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[0] == w[1]),
        "different Content-Lengths were accepted: {numbers:?}"
    );
    if has_te && !message.bodiless {
        assert!(
            codings.len() == 1 && codings[0].eq_ignore_ascii_case(b"chunked"),
            "Transfer-Encoding {codings:?} was accepted"
        );
        assert!(message.version != Version::HTTP_10 || message.response);
    }
    let expected = match (numbers.first(), has_te) {
        _ if message.bodiless => Framing::Empty,
        (_, true) => Framing::Chunked,
        (Some(0), false) => Framing::Empty,
        (Some(&n), false) => Framing::Length(n),
        (None, false) if message.response => Framing::CloseDelimited,
        (None, false) => Framing::Empty,
    };
    assert_eq!(message.framing, expected);
}

/// The bytes after a message's body, if `after_head` holds all of it (a close-delimited body
/// never ends before the connection does).
pub fn skip_body(framing: Framing, after_head: &[u8]) -> Option<&[u8]> {
    match framing {
        Framing::Empty => Some(after_head),
        Framing::Length(n) => after_head.get(usize::try_from(n).ok()?..),
        Framing::CloseDelimited => None,
        Framing::Chunked => {
            let mut buf = BytesMut::from(after_head);
            let mut decoder = ChunkedDecoder::new();
            // Each call consumes input or returns `None`.
            for _ in 0..=after_head.len() {
                match decoder.decode(&mut buf) {
                    Ok(Some(Chunk::Data(_))) => {}
                    Ok(Some(Chunk::Trailers(_) | Chunk::End)) => {
                        return Some(&after_head[after_head.len() - buf.len()..]);
                    }
                    Ok(None) | Err(_) => return None,
                }
            }
            None
        }
    }
}

/// `headers` less `Content-Length` and `Transfer-Encoding`, which an encoder writes from the
/// framing rather than copying them.
pub fn without_framing(headers: &HeaderMap) -> HeaderMap {
    let mut headers = headers.clone();
    headers.remove(CONTENT_LENGTH);
    headers.remove(TRANSFER_ENCODING);
    headers
}

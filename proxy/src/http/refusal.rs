//! Why a server ended a connection its client kept open: the reasons the refusal metrics count,
//! shared by the HTTP/1.1 server, the `h2` server and the link between sidecars.

use http::StatusCode;

use crate::http::h1::H1Error;

/// Why the server ended a connection the client kept open (for the refusal metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// HTTP/2: the client reset more streams before they were taken up, or before their answer,
    /// than its limits allow ("rapid reset"); it was sent `GOAWAY` with `ENHANCE_YOUR_CALM`.
    TooManyResets,
    /// HTTP/2 on the link from a peer proxy: the peer broke a rule of RFC 9113 that concerns the
    /// whole connection (a flood of `CONTINUATION` frames, an HPACK bomb, a window pushed past its
    /// maximum, a malformed frame); it was sent `GOAWAY` with the code the RFC names.
    BrokenHttp2 {
        reason: weft_http2::frame::Reason,
        what: &'static str,
    },
    /// HTTP/1: the request head broke a rule of RFC 9112 (the error says which: it did not
    /// parse, or a smuggling vector); answered `400 Bad Request`, or `431 Request Header Fields
    /// Too Large` for a head over [`crate::http::h1::head::MAX_HEAD_BYTES`] or its field count, and closed.
    BadHead(H1Error),
    /// HTTP/1: the request line alone was over [`crate::http::h1::head::MAX_HEAD_BYTES`]; answered `414 URI Too Long`
    /// and closed.
    UriTooLong,
    /// HTTP/1: the first chunk line of a chunked request body was invalid (its size, or an
    /// extension over its limit); answered `400 Bad Request` before the request reached the app,
    /// and closed.
    MalformedBody(H1Error),
    /// HTTP/1: a request head began but was not complete within [`crate::http::server::HEADER_READ_TIMEOUT`]
    /// (slowloris); the client was answered `408 Request Timeout` (RFC 9110 15.5.9) and closed.
    HeaderTimeout,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::TooManyResets => {
                "the client reset more HTTP/2 streams before their answer than its limit allows (rapid reset)"
            }
            Refusal::BrokenHttp2 { reason, what } => {
                return write!(f, "the peer proxy broke HTTP/2's rules: {what} (sent GOAWAY {reason})");
            }
            Refusal::BadHead(H1Error::HeadTooLarge) => {
                "the request head is over the 64 KiB or 128-field limit (answered 431 Request Header Fields Too Large)"
            }
            Refusal::BadHead(e) => {
                return write!(f, "the request head was refused (answered 400 Bad Request): {e}");
            }
            Refusal::UriTooLong => {
                "the request line is over the 64 KiB limit (answered 414 URI Too Long)"
            }
            Refusal::MalformedBody(e) => {
                return write!(
                    f,
                    "the request body's first chunk was refused (answered 400 Bad Request): {e}"
                );
            }
            Refusal::HeaderTimeout => {
                "the request head was not complete within the 10 s header timeout (answered 408 Request Timeout)"
            }
        })
    }
}

impl Refusal {
    /// The `reason` label.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::TooManyResets => "too_many_resets",
            Refusal::BrokenHttp2 { reason, .. } => {
                if reason == weft_http2::frame::Reason::ENHANCE_YOUR_CALM {
                    "http2_flood"
                } else {
                    "http2_protocol_error"
                }
            }
            Refusal::BadHead(e) => e.reason(),
            Refusal::UriTooLong => H1Error::HeadTooLarge.reason(),
            Refusal::MalformedBody(e) => e.reason(),
            Refusal::HeaderTimeout => "request_header_timeout",
        }
    }

    /// The status an HTTP/1 refusal is answered with (an HTTP/2 one is a `GOAWAY`).
    pub fn status(self) -> Option<StatusCode> {
        Some(match self {
            Refusal::BadHead(H1Error::HeadTooLarge) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Refusal::UriTooLong => StatusCode::URI_TOO_LONG,
            Refusal::HeaderTimeout => StatusCode::REQUEST_TIMEOUT,
            Refusal::BadHead(_) | Refusal::MalformedBody(_) => StatusCode::BAD_REQUEST,
            Refusal::TooManyResets | Refusal::BrokenHttp2 { .. } => return None,
        })
    }
}

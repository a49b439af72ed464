//! Serving HTTP/1 or HTTP/2 on an accepted connection, with limits against slow or abusive
//! clients and a clean stop when the proxy shuts down.

pub mod h1_server;
pub mod h2_resets;
pub mod h2_server;

use std::future::Future;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use tokio_util::sync::CancellationToken;

use crate::http::body::Body;
use crate::http::h1::H1Error;
use crate::transport::BoxedConnection;
use crate::transport::port_protocol::HttpVersion;

/// A client must send its request headers within this time (slowloris protection).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Request heads larger than this are refused (431 for HTTP/1).
const MAX_HEADER_BYTES: usize = crate::http::h1::head::MAX_HEAD_BYTES;
/// How long a refusal (or the end of a connection) may take to write before it is dropped.
const ANSWER_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
const H2_STREAM_WINDOW: u32 = 1024 * 1024;
const H2_CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;
const H2_MAX_CONCURRENT_STREAMS: u32 = 1024;
/// Streams a client may reset before their answer, beyond those its answered streams earn back
/// and refilled every second ([`crate::http::server::h2_resets`]); past that it is sent `GOAWAY
/// ENHANCE_YOUR_CALM`. h2's own guard (20 streams reset before the server takes them up) counts
/// only resets that pile up faster than that, which a flood sent a read at a time never does. A
/// peer proxy may reset every stream it can have open at once (its apps hanging up together);
/// anyone else fewer.
const H2_PEER_RESET_ALLOWANCE: u32 = H2_MAX_CONCURRENT_STREAMS;
const H2_RESET_ALLOWANCE: u32 = 100;

/// Who is on the other end of a connection, for the limits that depend on trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// A peer proxy that proved a mesh identity in a mutual-TLS handshake: it multiplexes many
    /// apps' requests on one connection, served by weft's own HTTP/2 ([`crate::http::link`]),
    /// with the raised reset allowance (raised, not lifted: a flood of resets still ends in
    /// `GOAWAY ENHANCE_YOUR_CALM`) and no lifetime limit on the streams the server resets.
    PeerProxy,
    /// Anyone else: plaintext callers of the inbound listener (permissive mode) and the local
    /// app on the outbound listeners. They keep h2's strict HTTP/2 reset limit: a client
    /// that resets streams faster than the server takes them up is sent `GOAWAY`
    /// (`ENHANCE_YOUR_CALM`).
    Untrusted,
}

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
    /// Too Large` for a head over [`MAX_HEADER_BYTES`] or its field count, and closed.
    BadHead(H1Error),
    /// HTTP/1: the request line alone was over [`MAX_HEADER_BYTES`]; answered `414 URI Too Long`
    /// and closed.
    UriTooLong,
    /// HTTP/1: the first chunk line of a chunked request body was invalid (its size, or an
    /// extension over its limit); answered `400 Bad Request` before the request reached the app,
    /// and closed.
    MalformedBody(H1Error),
    /// HTTP/1: a request head began but was not complete within [`HEADER_READ_TIMEOUT`]
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

/// Serves `io` until the client closes it or `stop` fires (then in-flight requests finish).
/// Returns why the server closed it, if it refused the client.
pub async fn serve<F, Fut>(
    io: BoxedConnection,
    version: HttpVersion,
    caller: Caller,
    stop: CancellationToken,
    handler: F,
) -> Option<Refusal>
where
    F: Fn(Request<Body>) -> Fut + Send + Sync + Clone + Unpin + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    if version == HttpVersion::Http2 {
        let settings = h2_server::Settings {
            stream_window: H2_STREAM_WINDOW,
            connection_window: H2_CONNECTION_WINDOW,
            max_concurrent_streams: H2_MAX_CONCURRENT_STREAMS,
            max_header_list_size: MAX_HEADER_BYTES as u32,
            reset_allowance: match caller {
                Caller::PeerProxy => H2_PEER_RESET_ALLOWANCE,
                Caller::Untrusted => H2_RESET_ALLOWANCE,
            },
        };
        if caller == Caller::PeerProxy {
            let serving = crate::http::link::server::serve(io, &settings, stop, handler);
            return Box::pin(serving).await;
        }
        return Box::pin(h2_server::serve(io, &settings, stop, handler)).await;
    }
    Box::pin(h1_server::serve(io, stop, handler)).await
}

/// The refusal behind a connection's error, if the server refused the client.
pub fn refusal(error: &(dyn std::error::Error + 'static)) -> Option<Refusal> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return (h2.is_go_away()
                && h2.is_library()
                && h2.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM))
            .then_some(Refusal::TooManyResets);
        }
        cause = e.source();
    }
    None
}

//! Serving HTTP/1 or HTTP/2 on an accepted connection, with limits against slow or abusive
//! clients and a clean stop when the proxy shuts down.

pub mod h2_resets;
pub mod h2_server;

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use crate::http::body::Body;
use crate::transport::BoxedConnection;
use crate::transport::port_protocol::HttpVersion;

/// A client must send its request headers within this time (slowloris protection).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Request heads larger than this are refused (431 for HTTP/1).
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// How long the `408` of a late request head may take to write before the connection is dropped.
const ANSWER_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
const TIMEOUT_MESSAGE: &str = "weft: the request head did not arrive within the header timeout\n";
const H2_STREAM_WINDOW: u32 = 1024 * 1024;
const H2_CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;
const H2_MAX_CONCURRENT_STREAMS: u32 = 1024;
/// Streams a peer proxy may reset before the server has taken them up, per connection. h2's
/// default (20, a guard against "rapid reset" floods) is too low between proxies: a peer proxy
/// cancels a stream whenever its app hangs up, and when many apps do so at once the server would
/// close the whole shared connection, failing every other request multiplexed on it. This bound
/// still stops a flood, from a caller that has to hold a mesh certificate in the first place.
/// Every other caller keeps that default (see [`Caller`]).
///
/// Nor does a peer proxy's connection count the streams this server resets because of a frame
/// that came too late, which h2 limits to 1,024 over the connection's whole life: when the app
/// answers before it has read the request body, the server ends the stream (`RST_STREAM
/// NO_ERROR`) while the rest of the body is still on its way; h2 remembers only the last 50 such
/// streams for a second, so under load the late frames of the others count as errors, and a
/// shared connection that carries millions of requests would reach the limit and be closed
/// (`ENHANCE_YOUR_CALM`), failing every request on it.
const H2_PEER_MAX_PENDING_ACCEPT_RESETS: usize = 1024;
/// Streams a client may reset before their answer, beyond those its answered streams earn back
/// and refilled every second ([`crate::http::server::h2_resets`]); past that it is sent `GOAWAY
/// ENHANCE_YOUR_CALM`. h2's guard above counts only resets that pile up before the server takes
/// their streams up, which a flood sent a read at a time never does. A peer proxy may reset
/// every stream it can have open at once (its apps hanging up together); anyone else fewer.
const H2_PEER_RESET_ALLOWANCE: u32 = H2_MAX_CONCURRENT_STREAMS;
const H2_RESET_ALLOWANCE: u32 = 100;

/// Who is on the other end of a connection, for the limits that depend on trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// A peer proxy that proved a mesh identity in a mutual-TLS handshake: it multiplexes many
    /// apps' requests on one connection, and gets the raised HTTP/2 reset limits (raised, not
    /// lifted: a flood of resets still ends in `GOAWAY ENHANCE_YOUR_CALM`).
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
    /// HTTP/1: the request head did not parse (request line or a header); hyper answered
    /// `400 Bad Request` and closed.
    MalformedHead,
    /// HTTP/1: the request head was larger than [`MAX_HEADER_BYTES`]; hyper answered `431
    /// Request Header Fields Too Large` (`414 URI Too Long` for a request target alone) and
    /// closed.
    HeadTooLarge,
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
            Refusal::MalformedHead => {
                "the request head is not valid HTTP/1.1 (answered 400 Bad Request)"
            }
            Refusal::HeadTooLarge => {
                "the request head is over the 64 KiB limit (answered 431 Request Header Fields Too Large)"
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
            Refusal::MalformedHead => "malformed_request_head",
            Refusal::HeadTooLarge => "request_head_too_large",
            Refusal::HeaderTimeout => "request_header_timeout",
        }
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
            peer_max_pending_accept_resets: H2_PEER_MAX_PENDING_ACCEPT_RESETS,
            peer_reset_allowance: H2_PEER_RESET_ALLOWANCE,
            reset_allowance: H2_RESET_ALLOWANCE,
        };
        return Box::pin(h2_server::serve(io, caller, &settings, stop, handler)).await;
    }
    let service = service_fn(move |req: Request<Incoming>| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(handler(req.map(Body::Stream)).await) }
    });
    let mut conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let result = tokio::select! {
        // The connection first: bytes already read (by protocol detection) are a request to
        // serve, even when the drain has just begun.
        biased;
        result = &mut conn => result,
        _ = stop.cancelled() => {
            std::pin::Pin::new(&mut conn).graceful_shutdown();
            (&mut conn).await
        }
    };
    let e = result.err()?;
    tracing::debug!("HTTP connection ended: {e}");
    if e.is_timeout() {
        return answer_header_timeout(conn.into_parts()?).await;
    }
    if e.is_parse_too_large() {
        return Some(Refusal::HeadTooLarge);
    }
    // hyper has answered 400 for these (`is_parse` also covers what it cannot answer: a
    // response's parse errors, which a server never meets).
    e.is_parse().then_some(Refusal::MalformedHead)
}

/// hyper closes a connection whose request head is late without a word; a client that had
/// begun one is told why with `408 Request Timeout`, as RFC 9110 says. An idle kept-alive
/// connection (nothing of a next request read) is only closed: a 408 there could be taken for
/// the answer to a request the client is just sending.
async fn answer_header_timeout<S>(
    parts: hyper::server::conn::http1::Parts<TokioIo<BoxedConnection>, S>,
) -> Option<Refusal> {
    if parts.read_buf.is_empty() {
        return None;
    }
    let mut io = parts.io.into_inner();
    let answer = format!(
        "HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-type: text/plain; charset=utf-8\r\n{}: request_header_timeout\r\ncontent-length: {}\r\n\r\n{TIMEOUT_MESSAGE}",
        crate::http::headers::ERROR,
        TIMEOUT_MESSAGE.len()
    );
    // Bounded: a client too slow to send its head may be too slow to read this.
    let write = async {
        io.write_all(answer.as_bytes()).await?;
        io.shutdown().await
    };
    let _ = tokio::time::timeout(ANSWER_WRITE_TIMEOUT, write).await;
    Some(Refusal::HeaderTimeout)
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

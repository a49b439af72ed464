//! Serving HTTP/1 or HTTP/2 on an accepted connection, with limits against slow or abusive
//! clients and a clean stop when the proxy shuts down.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use crate::body::Body;

/// A client must send its request headers within this time (slowloris protection).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Request heads larger than this are refused (431 for HTTP/1).
const MAX_HEADER_BYTES: usize = 64 * 1024;
const H2_STREAM_WINDOW: u32 = 1024 * 1024;
const H2_CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;
const H2_MAX_CONCURRENT_STREAMS: u32 = 1024;
/// Streams a client may reset before the server has taken them up, per connection. hyper's
/// default (20, a guard against "rapid reset" floods) is too low between proxies: a peer proxy
/// cancels a stream whenever its app hangs up, and when many apps do so at once the server would
/// close the whole shared connection, failing every other request multiplexed on it. This bound
/// still stops a flood, from a caller that has to hold a mesh certificate in the first place.
const H2_MAX_PENDING_ACCEPT_RESETS: usize = 1024;

/// Which HTTP version to serve on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    Http1,
    Http2,
}

/// Serves `io` until the client closes it or `stop` fires (then in-flight requests finish).
pub async fn serve<I, F, Fut>(io: I, version: HttpVersion, stop: CancellationToken, handler: F)
where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let service = service_fn(move |req| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(handler(req).await) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_ACCEPT_RESETS)
        .max_header_list_size(MAX_HEADER_BYTES as u32);
    let builder = match version {
        HttpVersion::Http1 => builder.http1_only(),
        HttpVersion::Http2 => builder.http2_only(),
    };
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        // The connection first: bytes already read (by protocol detection) are a request to
        // serve, even when the drain has just begun.
        biased;
        result = conn.as_mut() => result,
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!("HTTP connection ended: {e}");
    }
}

//! Serving HTTP/1 or HTTP/2 on an accepted connection, with limits against slow or abusive
//! clients and a clean stop when the proxy shuts down.

pub mod gather;
pub mod h1_server;
pub mod h2_resets;
pub mod h2_server;

pub use crate::http::refusal::Refusal;

use std::future::Future;
use std::time::Duration;

use http::{Request, Response};
use tokio_util::sync::CancellationToken;

use crate::http::body::Body;
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

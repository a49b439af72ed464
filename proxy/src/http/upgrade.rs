//! HTTP/1.1 `Upgrade` (WebSocket and the like) through the mesh.
//!
//! HTTP/2 between proxies cannot carry an HTTP/1.1 upgrade, so an upgrade request travels on a
//! connection of its own, HTTP/1.1 over mutual TLS (ALPN `http/1.1`), and on to the app on a
//! fresh loopback connection. When the app answers `101 Switching Protocols`, each proxy splices
//! the caller's upgraded connection to the one toward the app; any other answer is an ordinary
//! response. The `Connection`/`Upgrade` pair, hop-by-hop and therefore stripped from every other
//! request, is put back for these.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONNECTION, UPGRADE};
use http::{HeaderValue, Request, Response, StatusCode, Version};
use tokio::sync::oneshot;

use crate::http::BoxError;
use crate::http::body::{self, Body};
use crate::http::client::h1_pool::{Exchange, H1Response, request_framing};
use crate::transport::BoxedConnection;
use crate::transport::PrefixedIo;
use crate::transport::splice;

/// A caller's connection after the server answered its upgrade request `101`, with the bytes
/// the server had read past the request head.
pub type Upgraded = PrefixedIo<BoxedConnection>;

/// In an upgrade request's extensions: resolves to the caller's connection once the server has
/// written the `101` (an error if it answered anything else, or the connection ended).
#[derive(Clone)]
pub struct OnUpgrade(Arc<Mutex<Option<oneshot::Receiver<Upgraded>>>>);

/// The server's end of an [`OnUpgrade`]: hands the connection over after writing the `101`.
pub struct Handoff(oneshot::Sender<Upgraded>);

/// A pending upgrade: the server keeps the [`Handoff`] and puts the [`OnUpgrade`] in the request.
pub fn pending() -> (Handoff, OnUpgrade) {
    let (tx, rx) = oneshot::channel();
    (Handoff(tx), OnUpgrade(Arc::new(Mutex::new(Some(rx)))))
}

impl Handoff {
    pub fn complete(self, connection: Upgraded) {
        let _ = self.0.send(connection);
    }
}

/// Takes the pending upgrade out of `req` (one that never completes if there is none).
pub fn on<B>(req: &mut Request<B>) -> OnUpgrade {
    req.extensions_mut()
        .remove::<OnUpgrade>()
        .unwrap_or_else(|| OnUpgrade(Arc::new(Mutex::new(None))))
}

impl Future for OnUpgrade {
    type Output = io::Result<Upgraded>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some(rx) = slot.as_mut() else {
            return Poll::Ready(Err(io::Error::other("no upgrade pending on this request")));
        };
        Pin::new(rx)
            .poll(cx)
            .map_err(|_| io::Error::other("the connection was not upgraded"))
    }
}

/// The protocol an HTTP/1.1 request asks to switch to, if it asks.
pub fn requested<B>(req: &Request<B>) -> Option<HeaderValue> {
    if req.version() != Version::HTTP_11 {
        return None;
    }
    let connection_upgrade = req
        .headers()
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade
        .then(|| req.headers().get(UPGRADE).cloned())
        .flatten()
}

/// Puts back the upgrade headers that hop-by-hop stripping removed.
pub fn restore<B>(req: &mut Request<B>, protocol: HeaderValue) {
    req.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("upgrade"));
    req.headers_mut().insert(UPGRADE, protocol);
}

/// Sends the upgrade request `req` on `io`, a new HTTP/1.1 connection to `target`. On `101`,
/// splices `caller`'s upgraded connection with `io` in the background.
pub async fn forward(
    io: BoxedConnection,
    target: SocketAddr,
    req: Request<Body>,
    caller: OnUpgrade,
) -> Result<Response<Body>, BoxError> {
    let (parts, body) = req.into_parts();
    let framing = request_framing(&parts, &body);
    let mut exchange = Box::new(Exchange::new(io));
    exchange.start(&parts, body, framing);
    let head = std::future::poll_fn(|cx| exchange.poll_head(cx)).await?;
    if head.status != StatusCode::SWITCHING_PROTOCOLS {
        return Ok(head.into_response(Body::H1(H1Response::unpooled(exchange, target))));
    }
    let (read, upstream) = exchange.into_upgraded();
    tokio::spawn(async move {
        match caller.await {
            Ok(caller) => {
                splice(caller, PrefixedIo::new(read, upstream)).await;
            }
            Err(e) => tracing::debug!("upgrade did not complete: {e}"),
        }
    });
    Ok(head.into_response(body::full(Bytes::new())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_upgrade_requests_only() {
        let ws = Request::get("/chat")
            .header(CONNECTION, "keep-alive, Upgrade")
            .header(UPGRADE, "websocket")
            .body(())
            .unwrap();
        assert_eq!(requested(&ws).unwrap(), "websocket");
        let no_connection = Request::get("/").header(UPGRADE, "h2c").body(()).unwrap();
        assert_eq!(requested(&no_connection), None);
        let http10 = Request::get("/")
            .version(Version::HTTP_10)
            .header(CONNECTION, "upgrade")
            .header(UPGRADE, "websocket")
            .body(())
            .unwrap();
        assert_eq!(requested(&http10), None);
    }
}

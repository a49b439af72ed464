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
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::header::{CONNECTION, UPGRADE};
use http::{HeaderValue, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

use crate::http::body::Body;
use crate::transport::{BoxedConnection, PrefixedIo, splice};

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

/// The caller's connection after the server answered its upgrade request `101`: the bytes it
/// sent past the request head first, then the connection.
pub type Upgraded = PrefixedIo<BoxedConnection>;

/// The caller's [`Upgraded`] connection, once the server has written the `101` answer; an error
/// if the request was not one the server can upgrade, or the answer was not `101`.
pub struct OnUpgrade(Option<oneshot::Receiver<Upgraded>>);

/// An upgrade request's extension, where [`on`] finds its [`OnUpgrade`] (extensions must be
/// `Clone`, a receiver is not: the first [`on`] takes it).
#[derive(Clone)]
struct Pending(Arc<Mutex<Option<oneshot::Receiver<Upgraded>>>>);

/// Offers the upgrade of the connection `req` came on (the server, for an upgrade request): the
/// server sends the connection on the returned sender after writing a `101`.
pub fn offer<B>(req: &mut Request<B>) -> oneshot::Sender<Upgraded> {
    let (upgraded, on_upgrade) = oneshot::channel();
    req.extensions_mut()
        .insert(Pending(Arc::new(Mutex::new(Some(on_upgrade)))));
    upgraded
}

/// The caller's connection once `req` is answered `101`.
pub fn on<B>(req: &mut Request<B>) -> OnUpgrade {
    let pending = req.extensions_mut().remove::<Pending>();
    OnUpgrade(pending.and_then(|p| p.0.lock().ok()?.take()))
}

impl Future for OnUpgrade {
    type Output = io::Result<Upgraded>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(upgraded) = &mut self.0 else {
            return Poll::Ready(Err(io::Error::other("the request cannot be upgraded")));
        };
        Pin::new(upgraded).poll(cx).map_err(|_| {
            io::Error::other("the caller's connection was not upgraded (no 101, or it closed)")
        })
    }
}

/// Sends the upgrade request `req` over a new HTTP/1.1 connection on `io`. On `101`, splices
/// `caller` (the upgraded connection `req` arrived on) with the upgraded `io` in the background.
pub async fn forward<I>(
    io: I,
    req: Request<Body>,
    caller: OnUpgrade,
) -> Result<Response<Incoming>, hyper::Error>
where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!("upgrade connection ended: {e}");
        }
    });
    let mut response = sender.send_request(req).await?;
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let upstream = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            match tokio::join!(caller, upstream) {
                (Ok(caller), Ok(upstream)) => {
                    splice(caller, TokioIo::new(upstream)).await;
                }
                (Err(e), _) => tracing::debug!("upgrade did not complete: {e}"),
                (_, Err(e)) => tracing::debug!("upgrade did not complete: {e}"),
            }
        });
    }
    Ok(response)
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

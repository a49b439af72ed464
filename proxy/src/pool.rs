//! One multiplexed HTTP/2 connection per destination, shared by every request to it.
//!
//! Between proxies (and to HTTP/2 apps) a single connection carries any number of concurrent
//! requests, so the pool only has to keep one live `SendRequest` per key: take it if it is open,
//! otherwise connect (one caller connects while the others wait for it). A request that the
//! connection refused before sending (it was closing) is retried once on a fresh connection;
//! anything else is the caller's error, because the request may have reached the server.
//!
//! Connections are also replaced when the connector's credentials change (a certificate
//! rotation): new requests go to a connection made with the new certificate and trust bundle,
//! while requests in flight finish on the old one, which closes once they are done.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::body::Body;
use crate::errors::ProxyError;

/// HTTP/2 flow-control windows: large enough that a single stream is not throttled on a fast
/// link, small enough that a slow reader cannot make us buffer much.
const STREAM_WINDOW: u32 = 1024 * 1024;
const CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens the byte stream an HTTP/2 connection runs over.
pub trait Connector: Send + Sync + 'static {
    type Key: Clone + Eq + Hash + Display + Send + Sync + 'static;
    type Io: AsyncRead + AsyncWrite + Send + Unpin + 'static;

    fn connect(&self, key: &Self::Key)
    -> impl Future<Output = Result<Self::Io, ProxyError>> + Send;

    /// The error for an HTTP/2 failure on a connection to `key`.
    fn http_error(&self, key: &Self::Key, error: hyper::Error) -> ProxyError;

    /// Changes when connections made before should no longer take new requests.
    fn generation(&self) -> u64 {
        0
    }
}

pub struct H2Pool<C: Connector> {
    connector: C,
    slots: Mutex<HashMap<C::Key, Arc<Slot>>>,
}

#[derive(Default)]
struct Slot {
    /// The connection new requests go to, read without locking on every request.
    current: ArcSwapOption<Conn>,
    /// Held by the one caller that is connecting; the others wait for its connection.
    connecting: tokio::sync::Mutex<()>,
}

struct Conn {
    /// The connector generation the connection was made in.
    generation: u64,
    sender: SendRequest<Body>,
}

impl Slot {
    /// The sender of the current connection, if it is open and of this generation.
    fn usable(&self, generation: u64) -> Option<SendRequest<Body>> {
        let current = self.current.load();
        match current.as_deref() {
            Some(conn) if conn.generation == generation && !conn.sender.is_closed() => {
                Some(conn.sender.clone())
            }
            _ => None,
        }
    }
}

impl<C: Connector> H2Pool<C> {
    pub fn new(connector: C) -> Self {
        Self {
            connector,
            slots: Mutex::new(HashMap::new()),
        }
    }

    pub fn connector(&self) -> &C {
        &self.connector
    }

    /// Sends `req` on the connection for `key`, connecting first if there is none.
    pub async fn send(
        &self,
        key: &C::Key,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, ProxyError> {
        let mut sender = self.sender(key).await?;
        match sender.try_send_request(req).await {
            Ok(response) => Ok(response),
            Err(mut refused) => match refused.take_message() {
                // Never sent: the connection was going away. One fresh connection, one retry.
                Some(req) => {
                    let mut sender = self.sender(key).await?;
                    sender
                        .send_request(req)
                        .await
                        .map_err(|e| self.connector.http_error(key, e))
                }
                None => Err(self.connector.http_error(key, refused.into_error())),
            },
        }
    }

    async fn sender(&self, key: &C::Key) -> Result<SendRequest<Body>, ProxyError> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            match slots.get(key) {
                Some(slot) => slot.clone(),
                None => slots.entry(key.clone()).or_default().clone(),
            }
        };
        let generation = self.connector.generation();
        if let Some(sender) = slot.usable(generation) {
            return Ok(sender);
        }
        // Rare, and its future is large (TLS and HTTP/2 handshakes): boxed, so that the future
        // of every request stays small and cheap to move.
        Box::pin(self.connect(&slot, key, generation)).await
    }

    async fn connect(
        &self,
        slot: &Slot,
        key: &C::Key,
        generation: u64,
    ) -> Result<SendRequest<Body>, ProxyError> {
        let _connecting = slot.connecting.lock().await;
        // Whoever held the lock before may have connected already.
        if let Some(sender) = slot.usable(generation) {
            return Ok(sender);
        }
        let io = self.connector.connect(key).await?;
        let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| self.connector.http_error(key, e))?;
        let label = key.to_string();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(destination = %label, "HTTP/2 connection ended: {e}");
            }
        });
        slot.current.store(Some(Arc::new(Conn {
            generation,
            sender: sender.clone(),
        })));
        Ok(sender)
    }
}

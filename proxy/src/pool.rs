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
//!
//! A peer that cannot be reached fails its requests together: callers waiting for the one
//! connect learn of its failure when it fails (not by each trying again with its own connect
//! timeout), and for a backoff after a failure (doubling with each failure in a row, up to
//! [`MAX_CONNECT_BACKOFF`]) requests fail at once, so the retry layer sends them to another
//! endpoint and the breaker sees the endpoint failing quickly. Keys the owner no longer needs
//! (endpoints that left discovery) are dropped by [`H2Pool::retain`], which closes their
//! connections once their requests are done.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

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
/// The wait after the first failed connect to a peer before the next attempt.
const FIRST_CONNECT_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between connects to a peer that keeps failing.
const MAX_CONNECT_BACKOFF: Duration = Duration::from_secs(2);

/// Opens the byte stream an HTTP/2 connection runs over.
pub trait Connector: Send + Sync + 'static {
    type Key: Clone + Eq + Hash + Display + Send + Sync + 'static;
    type Io: AsyncRead + AsyncWrite + Send + Unpin + 'static;

    fn connect(&self, key: &Self::Key)
    -> impl Future<Output = Result<Self::Io, ProxyError>> + Send;

    /// The error for an HTTP/2 failure on a connection to `key`.
    fn http_error(&self, key: &Self::Key, error: hyper::Error) -> ProxyError;

    /// The error for a request to `key` while its connects are failing (see the module doc).
    fn unreachable(
        &self,
        key: &Self::Key,
        reason: &'static str,
        detail: String,
        retry_in: Duration,
    ) -> ProxyError;

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
    /// The last failed connect, while no connect has succeeded since.
    failed: Mutex<Option<Failure>>,
}

#[derive(Debug, Clone)]
struct Failure {
    at: Instant,
    /// The failed connect's `weft-error` reason and message, repeated by the requests that
    /// fail fast: the caller learns why the peer is unreachable, not only that it is.
    reason: &'static str,
    detail: String,
    in_a_row: u32,
}

impl Failure {
    fn backoff(&self) -> Duration {
        FIRST_CONNECT_BACKOFF
            .saturating_mul(1 << self.in_a_row.saturating_sub(1).min(16))
            .min(MAX_CONNECT_BACKOFF)
    }
}

struct Conn {
    /// The connector generation the connection was made in.
    generation: u64,
    sender: SendRequest<Body>,
}

impl Slot {
    fn failure(&self) -> Option<Failure> {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_failure(&self, failure: Option<Failure>) {
        *self.failed.lock().unwrap_or_else(|p| p.into_inner()) = failure;
    }

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
        if let Some(failure) = slot.failure()
            && failure.at.elapsed() < failure.backoff()
        {
            return Err(self.down(key, &failure));
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
        let waiting_since = Instant::now();
        let _connecting = slot.connecting.lock().await;
        // Whoever held the lock before may have connected already, or failed to.
        if let Some(sender) = slot.usable(generation) {
            return Ok(sender);
        }
        if let Some(failure) = slot.failure()
            && failure.at >= waiting_since
        {
            return Err(self.down(key, &failure));
        }
        let io = match self.connector.connect(key).await {
            Ok(io) => io,
            Err(e) => {
                let in_a_row = slot.failure().map_or(0, |f| f.in_a_row) + 1;
                slot.set_failure(Some(Failure {
                    at: Instant::now(),
                    reason: e.reason(),
                    detail: e.to_string(),
                    in_a_row,
                }));
                return Err(e);
            }
        };
        slot.set_failure(None);
        let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            // As on the server side (`http_server`): frames for streams this side reset (a caller
            // that hung up) may still arrive; h2's lifetime limit on them would close a connection
            // that every request to the peer shares.
            .max_local_error_reset_streams(None)
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

    fn down(&self, key: &C::Key, failure: &Failure) -> ProxyError {
        let retry_in = failure.backoff().saturating_sub(failure.at.elapsed());
        self.connector
            .unreachable(key, failure.reason, failure.detail.clone(), retry_in)
    }

    /// Forgets every key that `keep` rejects; their connections close once idle.
    pub fn retain(&self, keep: impl Fn(&C::Key) -> bool) -> usize {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.retain(|key, _| keep(key));
        slots.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A peer that takes a second to refuse every connect.
    #[derive(Default)]
    struct DeadPeer {
        connects: AtomicUsize,
    }

    impl Connector for DeadPeer {
        type Key = u16;
        type Io = tokio::io::DuplexStream;

        async fn connect(&self, _: &u16) -> Result<Self::Io, ProxyError> {
            self.connects.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(1)).await;
            Err(ProxyError::NoEndpoints("dead".into()))
        }

        fn http_error(&self, _: &u16, _: hyper::Error) -> ProxyError {
            ProxyError::NoEndpoints("dead".into())
        }

        fn unreachable(
            &self,
            key: &u16,
            reason: &'static str,
            detail: String,
            retry_in: Duration,
        ) -> ProxyError {
            ProxyError::PeerDown {
                reason,
                peer: key.to_string(),
                detail,
                retry_in,
            }
        }
    }

    fn request() -> Request<Body> {
        Request::get("http://x/")
            .body(crate::body::full(""))
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn requests_waiting_for_a_dead_peer_fail_together_and_then_fast() {
        let pool = Arc::new(H2Pool::new(DeadPeer::default()));
        let started = tokio::time::Instant::now();
        let waiting: Vec<_> = (0..5)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.send(&7, request()).await.map(drop) })
            })
            .collect();
        for request in waiting {
            assert!(request.await.unwrap().is_err());
        }
        // One connect timeout for all five, not five in a row.
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        assert_eq!(pool.connector().connects.load(Ordering::Relaxed), 1);
        // Within the backoff, a request fails at once without connecting.
        let err = pool.send(&7, request()).await.unwrap_err();
        assert!(matches!(err, ProxyError::PeerDown { .. }), "{err}");
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        // After it, the next connect is tried; a second failure doubles the backoff.
        tokio::time::advance(FIRST_CONNECT_BACKOFF).await;
        assert!(pool.send(&7, request()).await.is_err());
        assert_eq!(pool.connector().connects.load(Ordering::Relaxed), 2);
        tokio::time::advance(FIRST_CONNECT_BACKOFF).await;
        let err = pool.send(&7, request()).await.unwrap_err();
        assert!(matches!(err, ProxyError::PeerDown { .. }), "{err}");
        assert_eq!(pool.retain(|_| false), 0);
    }
}

//! One multiplexed HTTP/2 connection per destination, shared by every request to it.
//!
//! Between proxies (and to HTTP/2 apps) a single connection carries any number of concurrent
//! requests, so the pool only has to keep one live `SendRequest` per key: take it if it is open,
//! otherwise connect (one caller connects while the others wait for it). A request that the
//! connection refused before sending (it was closing) is retried once on a fresh connection;
//! anything else is the caller's error, because the request may have reached the server. Errors
//! of requests that the server never processed ([`never_processed`]: a stream above a `GOAWAY`'s
//! last stream id, `REFUSED_STREAM`, or one that never left because the connection was going
//! away) are told apart, so that the retry layer can send them again whatever the method.
//!
//! A connect runs in a task of its own: a caller that gives up while it is under way (its
//! stream was reset, its deadline passed) does not cancel it, and the connection serves the
//! next request instead of one connect being started (and abandoned) per caller.
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
//!
//! Connections to peer proxies are links on weft's own HTTP/2 ([`crate::http::link::client`]);
//! connections to HTTP/2 apps speak the `h2` crate directly rather than through hyper's client, which costs
//! two extra tasks and channels per request (see [`crate::http::body::h2_stream`]); what hyper's
//! client did besides is done here: keep-alive pings, the connection's receive window,
//! connection-specific headers kept off the wire. A new connection is handed out once the
//! server's SETTINGS are in (a ping's round trip), so that its `MAX_CONCURRENT_STREAMS` holds back
//! a first burst.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use h2::client::SendRequest;
use http::{Request, Response};
use http_body::Body as _;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::http::body::Body;
use crate::http::body::h2_stream::{self, H2Body};
use crate::http::error::ProxyError;
use crate::http::link;
use crate::http::link::client::{LinkError, LinkHandle};
use crate::resilience::backoff;
use crate::transport::BoxedConnection;

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
    fn http_error(&self, key: &Self::Key, error: h2::Error) -> ProxyError;

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

    /// The connections are links to peer proxies, on weft's own HTTP/2
    /// ([`crate::http::link`]), rather than on the `h2` crate.
    const LINK: bool = false;

    /// The error for a failed request on a link to `key`.
    fn link_error(&self, key: &Self::Key, error: LinkError) -> ProxyError {
        self.unreachable(key, "link_error", error.to_string(), Duration::ZERO)
    }
}

pub struct H2Pool<C: Connector> {
    /// Shared with the connects under way (see [`H2Pool::connect`]).
    connector: Arc<C>,
    slots: Mutex<HashMap<C::Key, Arc<Slot>>>,
}

#[derive(Default)]
struct Slot {
    /// The connection new requests go to, read without locking on every request.
    current: ArcSwapOption<Conn>,
    /// Held by the connect under way (its task, not its caller); the others wait for it.
    connecting: Arc<tokio::sync::Mutex<()>>,
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
        let doublings = self.in_a_row.saturating_sub(1);
        backoff::exponential(FIRST_CONNECT_BACKOFF, MAX_CONNECT_BACKOFF, doublings)
    }
}

struct Conn {
    /// The connector generation the connection was made in.
    generation: u64,
    sender: Sender,
    /// Set when the connection's task ends (the peer closed it, or stopped answering pings).
    closed: Arc<AtomicBool>,
}

/// What a connection's requests are sent with.
enum Sender {
    H2(SendRequest<Bytes>),
    Link(LinkHandle),
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

    /// The current connection, if it is open and of this generation.
    fn usable(&self, generation: u64) -> Option<Arc<Conn>> {
        let current = self.current.load_full()?;
        (current.generation == generation && !current.closed.load(Ordering::Relaxed))
            .then_some(current)
    }
}

impl Conn {
    /// Stops handing out this connection (it refused a request: it is going away).
    fn forget(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }
}

/// Whether the server never processed the request that failed with `error`, so that sending it
/// again cannot repeat anything: the peer refused the stream (`REFUSED_STREAM`, also what the
/// pool reports for a request that never left because the connection was going away), or its
/// stream was above the last stream id of the peer's `GOAWAY` (RFC 9113, 6.8: such streams were
/// not processed; h2 reports them with the `GOAWAY`, as a remote go-away error, and the streams
/// at or below it end otherwise: answered, reset, or broken with the connection).
pub fn never_processed(error: &h2::Error) -> bool {
    error.reason() == Some(h2::Reason::REFUSED_STREAM) || (error.is_go_away() && error.is_remote())
}

impl<C: Connector> H2Pool<C> {
    pub fn new(connector: C) -> Self {
        Self {
            connector: Arc::new(connector),
            slots: Mutex::new(HashMap::new()),
        }
    }

    pub fn connector(&self) -> &C {
        &self.connector
    }

    /// Sends `req` on the connection for `key`, connecting first if there is none. The request
    /// is boxed so that it is moved as a pointer down to where it is written (see
    /// [`link::client::send`]).
    pub async fn send(
        &self,
        key: &C::Key,
        mut req: Box<Request<Body>>,
    ) -> Result<Response<Body>, ProxyError> {
        // What HTTP/2 forbids; a caller's proxy has removed them already.
        h2_stream::strip_connection_specific(req.headers_mut());
        let (slot, generation) = self.slot(key);
        let mut conn = self.conn(&slot, key, generation).await?;
        if let Sender::Link(LinkHandle(link)) = &conn.sender {
            // Going away (GOAWAY, or closed): one fresh connection.
            if !link::client::accepts(link) {
                conn.forget();
                conn = self.conn(&slot, key, generation).await?;
            }
            return self.send_on_link(key, &conn, req).await;
        }
        // Its own future: its state and the link's overlap in this one's.
        self.send_on_h2(key, slot, generation, conn, req).await
    }

    async fn send_on_h2(
        &self,
        key: &C::Key,
        slot: Arc<Slot>,
        generation: u64,
        mut conn: Arc<Conn>,
        req: Box<Request<Body>>,
    ) -> Result<Response<Body>, ProxyError> {
        let (head, body) = req.into_parts();
        let end_of_stream = body.is_end_stream();
        let Sender::H2(sender) = &conn.sender else {
            unreachable!("called for h2 connections only");
        };
        let mut sender = sender.clone();
        // Not ready: the connection is going away (GOAWAY, or closed) and took nothing. One
        // fresh connection, one more try.
        if let Err(e) = std::future::poll_fn(|cx| sender.poll_ready(cx)).await {
            tracing::debug!(destination = %key, "pooled HTTP/2 connection refused a request: {e}");
            conn.forget();
            conn = self.conn(&slot, key, generation).await?;
            sender = match &conn.sender {
                Sender::H2(sender) => sender.clone(),
                Sender::Link(_) => unreachable!("a connector makes one kind of connection"),
            };
            std::future::poll_fn(|cx| sender.poll_ready(cx))
                .await
                .map_err(|e| self.refused(key, &conn, e))?;
        }
        let (response, stream) = sender
            .send_request(Request::from_parts(head, ()), end_of_stream)
            .map_err(|e| self.refused(key, &conn, e))?;
        // If the caller gives up before the answer, the guard stops what is still sending the
        // body and the stream is reset.
        let guard = match end_of_stream {
            true => None,
            false => h2_stream::send_request_body(body, stream),
        };
        let response = response.await.map_err(|e| {
            // Above the last stream id of the peer's GOAWAY: the connection takes no more.
            if e.is_go_away() && e.is_remote() {
                conn.forget();
            }
            self.connector.http_error(key, e)
        })?;
        if let Some(guard) = guard {
            guard.disarm();
        }
        let (parts, recv) = response.into_parts();
        let body = H2Body::new(recv, &parts.headers);
        Ok(Response::from_parts(parts, Body::H2(body)))
    }

    async fn send_on_link(
        &self,
        key: &C::Key,
        conn: &Conn,
        req: Box<Request<Body>>,
    ) -> Result<Response<Body>, ProxyError> {
        let Sender::Link(LinkHandle(link)) = &conn.sender else {
            unreachable!("called for links only");
        };
        link::client::send(link, req).await.map_err(|e| {
            // Going away (its GOAWAY, or its stream numbers used up): it takes no more.
            if !link::client::accepts(link) {
                conn.forget();
            }
            self.connector.link_error(key, e)
        })
    }

    /// The error of a request that `conn` would not take. When the connection is going away the
    /// request never left: it is reported as refused ([`never_processed`]), and the connection
    /// is handed out no more.
    fn refused(&self, key: &C::Key, conn: &Conn, error: h2::Error) -> ProxyError {
        if !(error.is_go_away() || error.is_io()) {
            return self.connector.http_error(key, error);
        }
        tracing::debug!(destination = %key, "the pooled HTTP/2 connection is going away; the request was not sent: {error}");
        conn.forget();
        self.connector
            .http_error(key, h2::Error::from(h2::Reason::REFUSED_STREAM))
    }

    fn slot(&self, key: &C::Key) -> (Arc<Slot>, u64) {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            match slots.get(key) {
                Some(slot) => slot.clone(),
                None => slots.entry(key.clone()).or_default().clone(),
            }
        };
        (slot, self.connector.generation())
    }

    /// The connection for `key`: the current one, or a new one.
    async fn conn(
        &self,
        slot: &Arc<Slot>,
        key: &C::Key,
        generation: u64,
    ) -> Result<Arc<Conn>, ProxyError> {
        if let Some(conn) = slot.usable(generation) {
            return Ok(conn);
        }
        if let Some(failure) = slot.failure()
            && failure.at.elapsed() < failure.backoff()
        {
            return Err(self.down(key, &failure));
        }
        // Rare, and its future is large (TLS and HTTP/2 handshakes): boxed, so that the future
        // of every request stays small and cheap to move.
        Box::pin(self.connect(slot, key, generation)).await
    }

    /// Connects in a task that holds the slot's lock until the connection is stored (or the
    /// failure recorded), whether or not this caller is still waiting for it then.
    async fn connect(
        &self,
        slot: &Arc<Slot>,
        key: &C::Key,
        generation: u64,
    ) -> Result<Arc<Conn>, ProxyError> {
        let waiting_since = Instant::now();
        let connecting = slot.connecting.clone().lock_owned().await;
        // Whoever held the lock before may have connected already, or failed to.
        if let Some(conn) = slot.usable(generation) {
            return Ok(conn);
        }
        if let Some(failure) = slot.failure()
            && failure.at >= waiting_since
        {
            return Err(self.down(key, &failure));
        }
        let (connector, task_slot, task_key) = (self.connector.clone(), slot.clone(), key.clone());
        let connected = tokio::spawn(async move {
            let conn = connect(&*connector, &task_slot, &task_key, generation).await;
            drop(connecting);
            conn
        });
        connected.await.unwrap_or_else(|e| {
            Err(self.connector.unreachable(
                key,
                "connect_failed",
                format!("the connect task ended: {e}"),
                Duration::ZERO,
            ))
        })
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

/// Connects to `key` and stores the connection in `slot` as its current one, or records the
/// failure there (for the backoff).
async fn connect<C: Connector>(
    connector: &C,
    slot: &Slot,
    key: &C::Key,
    generation: u64,
) -> Result<Arc<Conn>, ProxyError> {
    let io = match connector.connect(key).await {
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
    let (sender, closed) = if C::LINK {
        let closed = Arc::new(AtomicBool::new(false));
        let link = link::client::handshake(
            Box::new(io),
            key.to_string(),
            STREAM_WINDOW,
            CONNECTION_WINDOW,
            closed.clone(),
        )
        .await
        .map_err(|e| connector.link_error(key, e))?;
        (Sender::Link(LinkHandle(link)), closed)
    } else {
        let (sender, closed) = handshake(Box::new(io), key.to_string())
            .await
            .map_err(|e| connector.http_error(key, e))?;
        (Sender::H2(sender), closed)
    };
    let conn = Arc::new(Conn {
        generation,
        sender,
        closed,
    });
    slot.current.store(Some(conn.clone()));
    Ok(conn)
}

/// The HTTP/2 handshake on `io` and the task that drives the connection until it ends or stops
/// answering pings; returns the connection's sender and a flag set when it has ended. Not generic
/// over the connector: every pool's connections run the same instantiation of `h2`'s client,
/// which keeps the binary's resident code smaller (see [`BoxedConnection`]).
async fn handshake(
    io: BoxedConnection,
    label: String,
) -> Result<(SendRequest<Bytes>, Arc<AtomicBool>), h2::Error> {
    let (sender, mut connection) = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        // As on the server side (`h2_server`): frames for streams this side reset (a caller
        // that hung up) may still arrive; h2's lifetime limit on them would close a connection
        // that every request to the peer shares.
        .max_local_error_reset_streams(None)
        .handshake::<_, Bytes>(io)
        .await?;
    let pings = connection.ping_pong();
    let closed = Arc::new(AtomicBool::new(false));
    let ended = closed.clone();
    let (settled, settling) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        tokio::select! {
            result = &mut connection => if let Err(e) = result {
                tracing::debug!(destination = %label, "HTTP/2 connection ended: {e}");
            },
            () = keep_alive(pings, settled) => {
                tracing::debug!(destination = %label, "HTTP/2 connection closed: no answer to a ping in {KEEPALIVE_TIMEOUT:?}");
            }
        }
        ended.store(true, Ordering::Relaxed);
    });
    // Until the server's SETTINGS have arrived, h2 takes its MAX_CONCURRENT_STREAMS to be
    // unlimited, and a burst of requests on a new connection (to an app that allows 10 streams)
    // would have those above it refused. Its SETTINGS come before its answer to the first ping;
    // after that, streams above its limit wait in h2 for one to end. (If the connection ends
    // first, the request learns so from it.)
    let _ = settling.await;
    Ok((sender, closed))
}

/// Pings the peer at once (then `settled` is told: the server's SETTINGS are in), and every
/// [`KEEPALIVE_INTERVAL`] after; returns when a ping goes unanswered for [`KEEPALIVE_TIMEOUT`]
/// (the peer or the path to it is gone, though no packet said so).
async fn keep_alive(pings: Option<h2::PingPong>, settled: tokio::sync::oneshot::Sender<()>) {
    let Some(mut pings) = pings else {
        let _ = settled.send(());
        return std::future::pending().await;
    };
    let mut settled = Some(settled);
    loop {
        match tokio::time::timeout(KEEPALIVE_TIMEOUT, pings.ping(h2::Ping::opaque())).await {
            Ok(Ok(_pong)) => {}
            // The connection itself failed: its own future reports that.
            Ok(Err(_)) => return std::future::pending().await,
            Err(_) => return,
        }
        if let Some(settled) = settled.take() {
            let _ = settled.send(());
        }
        tokio::time::sleep(KEEPALIVE_INTERVAL).await;
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

        fn http_error(&self, _: &u16, _: h2::Error) -> ProxyError {
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
            .body(crate::http::body::full(""))
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn requests_waiting_for_a_dead_peer_fail_together_and_then_fast() {
        let pool = Arc::new(H2Pool::new(DeadPeer::default()));
        let started = tokio::time::Instant::now();
        let waiting: Vec<_> = (0..5)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.send(&7, Box::new(request())).await.map(drop) })
            })
            .collect();
        for request in waiting {
            assert!(request.await.unwrap().is_err());
        }
        // One connect timeout for all five, not five in a row.
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        assert_eq!(pool.connector().connects.load(Ordering::Relaxed), 1);
        // Within the backoff, a request fails at once without connecting.
        let err = pool.send(&7, Box::new(request())).await.unwrap_err();
        assert!(matches!(err, ProxyError::PeerDown { .. }), "{err}");
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        // After it, the next connect is tried; a second failure doubles the backoff.
        tokio::time::advance(FIRST_CONNECT_BACKOFF).await;
        assert!(pool.send(&7, Box::new(request())).await.is_err());
        assert_eq!(pool.connector().connects.load(Ordering::Relaxed), 2);
        tokio::time::advance(FIRST_CONNECT_BACKOFF).await;
        let err = pool.send(&7, Box::new(request())).await.unwrap_err();
        assert!(matches!(err, ProxyError::PeerDown { .. }), "{err}");
        assert_eq!(pool.retain(|_| false), 0);
    }
}

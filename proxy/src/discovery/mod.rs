//! Discovery: what an intercepted destination address is, kept current by the control plane.
//!
//! The first connection to an address starts a watch (`weft.discovery.v1.Discovery/Watch`) that
//! lives as long as the proxy: later connections to the same address find the answer in memory,
//! and every change the control plane sends replaces it. When the stream breaks (the control
//! plane restarts or is unreachable) the last answer stays in force while the watch reconnects
//! with backoff; the first message after reconnecting is the full current answer.
//!
//! The same watches tell the inbound side what to enforce: a watch of one of this pod's own
//! `ip:port` with `server` set answers with the server half of the service's policy for that
//! port ([`Discovery::inbound`]), so a policy edit reaches the server sidecars the way endpoint
//! changes reach callers.
//!
//! An address nobody has connected to for [`IDLE_WATCH`] is forgotten (its watch ends once the
//! last connection using it closes), so an app that dials many distinct addresses does not hold
//! a stream open on the control plane for each of them forever.

mod resolution;
mod watch;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use weft_api::discovery::WatchRequest;

use crate::policy::server::InboundPolicy;
use crate::telemetry::metrics::Metrics;
pub use resolution::Resolution;

/// How long a new connection waits for the control plane's first answer about its destination.
pub const FIRST_ANSWER_TIMEOUT: Duration = Duration::from_secs(3);

/// The same wait while the control plane is known to be unreachable: long enough for a watch to
/// find it if it just came back, short enough not to hold every new connection for seconds.
pub const FIRST_ANSWER_TIMEOUT_UNREACHABLE: Duration = Duration::from_millis(250);

/// How long a new inbound connection waits for its port's first server policy: below the
/// 1 s a caller's sidecar allows for connecting, TLS included.
pub const INBOUND_FIRST_ANSWER_TIMEOUT: Duration = Duration::from_millis(500);

/// How long an address's watch outlives its last use.
pub const IDLE_WATCH: Duration = Duration::from_secs(300);

/// The current answer for one address; `None` until the control plane has sent one.
pub type Answer = tokio::sync::watch::Receiver<Option<Resolution>>;

/// The current server policy of one of this pod's ports; `None` until the first answer.
pub type InboundAnswer = tokio::sync::watch::Receiver<Option<InboundPolicy>>;

pub struct Discovery {
    /// The channel new watches use: replaced with every new certificate, which the control
    /// plane requires of discovery callers (see [`crate::identity::control_plane`]).
    channels: tokio::sync::watch::Receiver<Channel>,
    /// By what is watched: `ip:port`, or `name.namespace:port` for a named service.
    watches: Mutex<HashMap<String, Watched<Resolution>>>,
    /// This pod's own `ip:port`s that connections arrived at.
    inbound: Mutex<HashMap<SocketAddr, Watched<InboundPolicy>>>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    /// Set when a watch could not reach the control plane, cleared by any answer.
    unreachable: Arc<AtomicBool>,
}

struct Watched<T> {
    answer: tokio::sync::watch::Receiver<Option<T>>,
    last_used: Instant,
}

#[derive(Debug, thiserror::Error)]
#[error("the control plane has not answered for {addr} within {waited:?}")]
pub struct NoAnswer {
    pub addr: String,
    pub waited: Duration,
}

impl Discovery {
    /// Discovery over one fixed channel.
    pub fn new(channel: Channel, metrics: Arc<Metrics>, stop: CancellationToken) -> Self {
        Self::following(tokio::sync::watch::channel(channel).1, metrics, stop)
    }

    /// Discovery whose watches (re)open on the channel `channels` holds at the time.
    pub fn following(
        channels: tokio::sync::watch::Receiver<Channel>,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) -> Self {
        Self {
            channels,
            watches: Mutex::new(HashMap::new()),
            inbound: Mutex::new(HashMap::new()),
            metrics,
            stop,
            unreachable: Arc::default(),
        }
    }

    /// The live answer for `addr`, waiting (bounded) for the first one if it is new.
    pub async fn resolve(&self, addr: SocketAddr) -> Result<Answer, NoAnswer> {
        self.resolve_key(addr.to_string()).await
    }

    /// The live answer for a service by name (`name.namespace:port`), as [`Self::resolve`].
    pub async fn resolve_key(&self, addr: String) -> Result<Answer, NoAnswer> {
        let answer = self.answer(&addr);
        let wait = match self.unreachable.load(Ordering::Relaxed) {
            true => FIRST_ANSWER_TIMEOUT_UNREACHABLE,
            false => FIRST_ANSWER_TIMEOUT,
        };
        first_answer(answer, addr, wait).await.map_err(|(_, e)| e)
    }

    /// The live server policy of this pod's `addr` (the `ip:port` a connection arrived at),
    /// waiting at most [`INBOUND_FIRST_ANSWER_TIMEOUT`] for the first answer if it is new (less
    /// than a caller's connect timeout). `Err` carries the receiver anyway: the answer may come
    /// later, and requests read it as they arrive.
    pub async fn inbound(
        &self,
        addr: SocketAddr,
    ) -> Result<InboundAnswer, Unanswered<InboundPolicy>> {
        let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
        let answer = watched(&self.inbound, addr, || self.start(addr.to_string(), true));
        first_answer(answer, addr.to_string(), INBOUND_FIRST_ANSWER_TIMEOUT).await
    }

    /// The answer for `addr`, starting its watch if it is new. The watch of a name given to a
    /// `--forward` listener lives as long as the listener holds the answer.
    pub fn answer(&self, addr: &str) -> Answer {
        if let Some(watched) = self.watches().get_mut(addr) {
            watched.last_used = Instant::now();
            return watched.answer.clone();
        }
        watched(&self.watches, addr.to_owned(), || {
            self.start(addr.to_owned(), false)
        })
    }

    /// Starts the watch of `address` (for the inbound side when `server`).
    fn start<T: watch::Answer>(
        &self,
        address: String,
        server: bool,
    ) -> tokio::sync::watch::Receiver<Option<T>> {
        let (tx, rx) = tokio::sync::watch::channel(None);
        tokio::spawn(watch::run(
            self.channels.clone(),
            WatchRequest { address, server },
            tx,
            self.metrics.clone(),
            self.unreachable.clone(),
            self.stop.clone(),
        ));
        rx
    }

    /// Forgets addresses unused since `now - IDLE_WATCH`; returns how many are still watched.
    pub fn forget_idle(&self, now: Instant) -> usize {
        let fresh = |last_used: Instant| now.saturating_duration_since(last_used) < IDLE_WATCH;
        lock(&self.inbound).retain(|_, w| fresh(w.last_used));
        let mut watches = self.watches();
        watches.retain(|_, w| fresh(w.last_used));
        watches.len()
    }

    /// Calls [`Self::forget_idle`] every minute until the proxy stops.
    pub async fn forget_idle_periodically(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            self.forget_idle(Instant::now());
        }
    }

    /// Every watched address with its current answer, for the admin endpoint.
    pub fn answers(&self) -> Vec<(String, Option<Resolution>)> {
        let watches = self.watches();
        let mut all: Vec<_> = watches
            .iter()
            .map(|(addr, w)| (addr.clone(), w.answer.borrow().clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Every port of this pod that connections arrived at, with its server policy.
    pub fn inbound_answers(&self) -> Vec<(SocketAddr, Option<InboundPolicy>)> {
        let mut all: Vec<_> = lock(&self.inbound)
            .iter()
            .map(|(addr, w)| (*addr, w.answer.borrow().clone()))
            .collect();
        all.sort_by_key(|(addr, _)| *addr);
        all
    }

    fn watches(&self) -> std::sync::MutexGuard<'_, HashMap<String, Watched<Resolution>>> {
        lock(&self.watches)
    }
}

/// A receiver and why it holds no answer yet.
type Unanswered<T> = (tokio::sync::watch::Receiver<Option<T>>, NoAnswer);

/// `answer` once it holds a first answer, waiting at most `wait`; `Err` gives it back with why.
async fn first_answer<T>(
    mut answer: tokio::sync::watch::Receiver<Option<T>>,
    addr: String,
    wait: Duration,
) -> Result<tokio::sync::watch::Receiver<Option<T>>, Unanswered<T>> {
    let ready = tokio::time::timeout(wait, answer.wait_for(Option::is_some))
        .await
        .is_ok_and(|r| r.is_ok());
    match ready {
        true => Ok(answer),
        false => Err((answer, NoAnswer { addr, waited: wait })),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The answer `map` holds for `key`, marked used now; `start()`s its watch if it has none.
fn watched<K, T>(
    map: &Mutex<HashMap<K, Watched<T>>>,
    key: K,
    start: impl FnOnce() -> tokio::sync::watch::Receiver<Option<T>>,
) -> tokio::sync::watch::Receiver<Option<T>>
where
    K: std::hash::Hash + Eq,
{
    let now = Instant::now();
    let mut map = lock(map);
    let watched = map.entry(key).or_insert_with(|| Watched {
        answer: start(),
        last_used: now,
    });
    watched.last_used = now;
    watched.answer.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn forgets_addresses_nobody_uses_and_their_watches_end() {
        let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:9").connect_lazy();
        let metrics = Arc::new(Metrics::new());
        let discovery = Discovery::new(channel, metrics.clone(), CancellationToken::new());
        let kept = discovery.answer("10.0.0.1:80");
        drop(discovery.answer("10.0.0.2:80"));
        let start = Instant::now();
        tokio::task::yield_now().await;
        assert_eq!(metrics.discovery.watches.get(), 2);

        assert_eq!(discovery.forget_idle(start + IDLE_WATCH / 2), 2);
        assert_eq!(discovery.forget_idle(start + IDLE_WATCH), 0);
        // The watch of the address still in use by a connection lives on; the other ends.
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(metrics.discovery.watches.get(), 1);
        drop(kept);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(metrics.discovery.watches.get(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn destination_and_server_policy_watches_are_counted_apart_while_waiting() {
        use crate::telemetry::metrics::discovery::WatchState;
        // Nothing listens on port 9: no answer ever comes.
        let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:9").connect_lazy();
        let metrics = Arc::new(Metrics::new());
        let discovery = Discovery::new(channel, metrics.clone(), CancellationToken::new());
        let _destination = discovery.answer("10.0.0.1:80");
        let port: SocketAddr = "10.0.0.9:8080".parse().unwrap();
        assert!(discovery.inbound(port).await.is_err());
        let watches = |kind| {
            let [waiting, current, stale] =
                [WatchState::Waiting, WatchState::Current, WatchState::Stale]
                    .map(|state| metrics.discovery.watch_state(kind, state).get());
            (waiting, current, stale)
        };
        assert_eq!(watches("destination"), (1, 0, 0));
        assert_eq!(watches("server_policy"), (1, 0, 0));
        assert_eq!(metrics.discovery.watches.get(), 1);
        assert_eq!(metrics.discovery.server_policy_watches.get(), 1);
    }

    #[tokio::test]
    async fn while_the_control_plane_is_unreachable_new_addresses_fail_fast() {
        // Nothing listens on port 9: every watch fails to connect.
        let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:9").connect_lazy();
        let discovery = Discovery::new(channel, Arc::new(Metrics::new()), CancellationToken::new());
        let err = discovery
            .resolve_key("10.0.0.1:80".into())
            .await
            .unwrap_err();
        assert_eq!(err.waited, FIRST_ANSWER_TIMEOUT);
        let started = std::time::Instant::now();
        let err = discovery
            .resolve_key("10.0.0.2:80".into())
            .await
            .unwrap_err();
        assert_eq!(err.waited, FIRST_ANSWER_TIMEOUT_UNREACHABLE);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
}

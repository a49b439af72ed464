//! Tap: a live stream of the requests this sidecar serves, for `GET /tap` on the admin port
//! (the answer itself is [`crate::admin`]'s) and so for `weft tap`.
//!
//! Tap must cost nothing while nobody taps, and never slow a request while someone does:
//!
//! - While no session is open, the request path's whole cost is one relaxed atomic load
//!   ([`TapHub::tapping`], in [`super::exchange`]): no allocation, no formatting, no lock.
//! - While one is open, each completed request on either side becomes one [`TapEvent`] (built
//!   on the request's task from what the metrics already know, plus the allow-listed headers).
//!   Each session takes it only when its [`TapFilter`] matches and its token bucket
//!   ([`rate`]) has a token, into a bounded queue with `try_send`: a session whose reader is
//!   behind loses the event, never holds the request. Both losses are counted
//!   (`weft_tap_events_dropped_total{reason}`) and told to the reader (`{"dropped":N}`).
//! - JSON is written on the admin connection's task, not the request's.
//! - At most [`MAX_SESSIONS`] sessions at once; more get 429.
//!
//! Every session is logged when it opens and when it ends (who, filter, how long, events sent
//! and dropped).

pub mod event;
pub mod filter;
pub mod rate;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tokio::time::Instant;

pub use event::{TapEvent, TapRequest};
pub use filter::TapFilter;

use crate::telemetry::metrics::tap::TapMetrics;
use rate::RateLimit;

/// Sessions one sidecar serves at once.
pub const MAX_SESSIONS: usize = 8;
/// Events waiting for one session's reader; past this, new ones are dropped.
pub const QUEUE_CAPACITY: usize = 256;

/// The sessions open on one sidecar, and the door the request path publishes through.
pub struct TapHub {
    /// Sessions open: the one thing the request path reads while nobody taps.
    open: AtomicUsize,
    sessions: ArcSwap<Vec<Arc<Session>>>,
    /// Serializes opening and closing sessions (publishing never takes it).
    changing: Mutex<()>,
    metrics: TapMetrics,
}

/// One session as the request path sees it.
struct Session {
    filter: TapFilter,
    rate: Mutex<RateLimit>,
    queue: mpsc::Sender<Arc<TapEvent>>,
    /// Dropped since the reader was last told.
    untold: AtomicU64,
    sent: AtomicU64,
    dropped: AtomicU64,
}

/// An open session, held by its `GET /tap` answer: events come out of it, and dropping it ends
/// the session (and logs it).
pub struct Subscription {
    hub: Arc<TapHub>,
    session: Arc<Session>,
    events: mpsc::Receiver<Arc<TapEvent>>,
    started: Instant,
    /// Who taps, for the log: the peer address and, when proven, its identity.
    who: String,
    query: String,
}

/// Why a session was not opened.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    TooManySessions,
}

impl TapHub {
    pub fn new(metrics: TapMetrics) -> Self {
        Self {
            open: AtomicUsize::new(0),
            sessions: ArcSwap::from_pointee(Vec::new()),
            changing: Mutex::new(()),
            metrics,
        }
    }

    /// Whether anyone taps: the request path asks this once per request, and builds an event
    /// only when it says yes.
    #[inline]
    pub fn tapping(&self) -> bool {
        self.open.load(Ordering::Relaxed) != 0
    }

    /// Opens a session for `who`, seeing what `filter` lets through.
    pub fn subscribe(
        self: &Arc<Self>,
        filter: TapFilter,
        query: &str,
        who: String,
    ) -> Result<Subscription, Refusal> {
        let _changing = self.changing.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.sessions.load_full();
        if current.len() >= MAX_SESSIONS {
            self.metrics
                .refused
                .with_label_values(&["too_many_sessions"])
                .inc();
            return Err(Refusal::TooManySessions);
        }
        let (queue, events) = mpsc::channel(QUEUE_CAPACITY);
        let now = Instant::now();
        let session = Arc::new(Session {
            rate: Mutex::new(RateLimit::new(filter.rate, now)),
            filter,
            queue,
            untold: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        let mut sessions = Vec::clone(&current);
        sessions.push(session.clone());
        self.open.store(sessions.len(), Ordering::Relaxed);
        self.sessions.store(Arc::new(sessions));
        self.metrics.sessions.inc();
        self.metrics.sessions_total.inc();
        tracing::info!(%who, filter = %shown(query), "tap session started");
        Ok(Subscription {
            hub: self.clone(),
            session,
            events,
            started: now,
            who,
            query: query.to_owned(),
        })
    }

    /// Offers a completed request to every session.
    pub fn publish(&self, event: TapEvent) {
        let sessions = self.sessions.load();
        let event = Arc::new(event);
        let now = Instant::now();
        for session in sessions.iter() {
            if !session.filter.matches(&event) {
                continue;
            }
            let allowed = session
                .rate
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .allow(now);
            if !allowed {
                self.dropped(session, "rate");
                continue;
            }
            match session.queue.try_send(event.clone()) {
                Ok(()) => {
                    session.sent.fetch_add(1, Ordering::Relaxed);
                    self.metrics.events.inc();
                }
                Err(mpsc::error::TrySendError::Full(_)) => self.dropped(session, "slow_reader"),
                // The session is ending.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }

    fn dropped(&self, session: &Session, reason: &str) {
        session.untold.fetch_add(1, Ordering::Relaxed);
        session.dropped.fetch_add(1, Ordering::Relaxed);
        self.metrics.dropped.with_label_values(&[reason]).inc();
    }

    fn unsubscribe(&self, ended: &Arc<Session>) {
        let _changing = self.changing.lock().unwrap_or_else(|p| p.into_inner());
        let sessions: Vec<_> = self
            .sessions
            .load()
            .iter()
            .filter(|s| !Arc::ptr_eq(s, ended))
            .cloned()
            .collect();
        self.open.store(sessions.len(), Ordering::Relaxed);
        self.sessions.store(Arc::new(sessions));
        self.metrics.sessions.dec();
    }

    pub fn refused(&self, reason: &str) {
        self.metrics.refused.with_label_values(&[reason]).inc();
    }
}

impl Subscription {
    /// The next queued event.
    pub fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Arc<TapEvent>>> {
        self.events.poll_recv(cx)
    }

    /// Events dropped since the last call (the reader is told before its next event).
    pub fn take_dropped(&self) -> u64 {
        self.session.untold.swap(0, Ordering::Relaxed)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unsubscribe(&self.session);
        let lasted: Duration = self.started.elapsed();
        tracing::info!(
            who = %self.who,
            filter = %shown(&self.query),
            lasted = %humantime::format_duration(Duration::from_millis(
                u64::try_from(lasted.as_millis()).unwrap_or(u64::MAX)
            )),
            events = self.session.sent.load(Ordering::Relaxed),
            dropped = self.session.dropped.load(Ordering::Relaxed),
            "tap session ended"
        );
    }
}

fn shown(query: &str) -> &str {
    if query.is_empty() { "(none)" } else { query }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use super::*;
    use crate::telemetry::metrics::Metrics;
    use crate::telemetry::metrics::connections::Direction;

    fn event(path: &str) -> TapEvent {
        TapEvent {
            time: String::new(),
            direction: Direction::Inbound,
            method: "GET".into(),
            authority: None,
            path: path.into(),
            status: Some(200),
            grpc_status: None,
            latency_ms: 0.0,
            source: None,
            destination: None,
            service: None,
            route: "default".into(),
            attempts: 1,
            weft_error: None,
            trace_id: None,
            headers: Vec::new(),
        }
    }

    fn hub() -> (Arc<TapHub>, Metrics) {
        let metrics = Metrics::new();
        (Arc::new(TapHub::new(metrics.tap.clone())), metrics)
    }

    #[tokio::test(start_paused = true)]
    async fn sessions_open_and_close_the_door() {
        let (hub, metrics) = hub();
        assert!(!hub.tapping());
        let filter = TapFilter::parse("path=/a").unwrap();
        let mut a = hub.subscribe(filter, "path=/a", "test".into()).unwrap();
        assert!(hub.tapping());
        hub.publish(event("/a/1"));
        hub.publish(event("/b"));
        let got = poll_fn(|cx| a.poll_event(cx)).await.unwrap();
        assert_eq!(got.path, "/a/1");
        assert!(a.events.try_recv().is_err(), "/b did not match");
        drop(a);
        assert!(!hub.tapping());
        assert_eq!(metrics.tap.sessions.get(), 0);
        assert_eq!(metrics.tap.sessions_total.get(), 1);
        assert_eq!(metrics.tap.events.get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn no_more_than_max_sessions() {
        let (hub, metrics) = hub();
        let open: Vec<_> = (0..MAX_SESSIONS)
            .map(|_| hub.subscribe(TapFilter::default(), "", "t".into()).unwrap())
            .collect();
        let refused = hub.subscribe(TapFilter::default(), "", "t".into());
        assert_eq!(refused.err(), Some(Refusal::TooManySessions));
        let refusals = metrics
            .tap
            .refused
            .with_label_values(&["too_many_sessions"]);
        assert_eq!(refusals.get(), 1);
        drop(open);
        assert!(hub.subscribe(TapFilter::default(), "", "t".into()).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_and_a_full_queue_drop_and_count() {
        let (hub, metrics) = hub();
        let filter = TapFilter::parse("rate=10").unwrap();
        let sub = hub.subscribe(filter, "rate=10", "t".into()).unwrap();
        for _ in 0..15 {
            hub.publish(event("/"));
        }
        let by = |reason| metrics.tap.dropped.with_label_values(&[reason]).get();
        assert_eq!(by("rate"), 5);
        assert_eq!(sub.take_dropped(), 5);
        assert_eq!(sub.take_dropped(), 0, "told once");

        // A reader that never reads: its queue fills, then events are dropped.
        let filter = TapFilter::parse("rate=1000").unwrap();
        let stuck = hub.subscribe(filter, "rate=1000", "t".into()).unwrap();
        for _ in 0..QUEUE_CAPACITY + 7 {
            hub.publish(event("/"));
        }
        assert_eq!(by("slow_reader"), 7);
        assert_eq!(stuck.take_dropped(), 7);
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(sub);
        drop(stuck);
    }
}

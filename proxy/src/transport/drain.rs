//! Draining: how the proxy stops without failing the requests it had already started.
//!
//! Kubernetes stops a pod by sending SIGTERM, removing the pod from its Services' endpoints at
//! about the same time (not before: the two happen in parallel), and killing it
//! `terminationGracePeriodSeconds` later (30s by default). A proxy that closed everything at once
//! on SIGTERM would fail every request in flight, through both of the pod's directions. So the
//! stop is a sequence, and all of it is here:
//!
//! 1. **Drain starts** ([`Drain::run`] fires [`Drain::draining`]). The mesh and app listeners
//!    stop accepting and close their sockets, so a new connection is refused by the kernel and
//!    its caller tries another endpoint. The admin `/ready` answers 503 `draining`, so Kubernetes
//!    stops routing to the pod if it has not already. Every HTTP connection starts hyper's
//!    graceful shutdown: HTTP/2 peers get GOAWAY (streams already open finish, new ones go
//!    elsewhere), an HTTP/1 connection finishes the request it is serving and closes, an idle
//!    HTTP/1 keep-alive connection closes at once. Opaque TCP streams carry on: a proxy cannot
//!    tell where one of their "requests" ends.
//! 2. **Waiting**: until every connection task has ended, or the grace period
//!    (`--shutdown-grace`) has passed, whichever comes first.
//! 3. **Grace over** ([`Drain::run`] fires the cut): every connection still open is dropped,
//!    which closes its sockets; the number cut is logged.
//! 4. The caller ([`crate::RunningProxy::shutdown`]) then stops the background tasks (identity,
//!    discovery) and the admin listener, and the process exits 0.
//!
//! The admin listener is not part of the drain: probes and `/metrics` keep answering until the
//! end, so Kubernetes sees the pod as not ready rather than as dead.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The proxy-wide stop sequence of the listeners that carry traffic.
pub struct Drain {
    grace: Duration,
    draining: CancellationToken,
    cut: CancellationToken,
    connections: TaskTracker,
}

/// What one listener's accept loop needs from the stop sequence: when to stop accepting, when to
/// drop the connections still open, and where their tasks are counted.
#[derive(Clone)]
pub struct Listening {
    pub(super) stop_accepting: CancellationToken,
    pub(super) cut: CancellationToken,
    pub(super) connections: TaskTracker,
}

impl Drain {
    pub fn new(grace: Duration) -> Self {
        Self {
            grace,
            draining: CancellationToken::new(),
            cut: CancellationToken::new(),
            connections: TaskTracker::new(),
        }
    }

    /// Fires when the drain starts: accept loops return, HTTP connections shut down gracefully.
    pub fn draining(&self) -> CancellationToken {
        self.draining.clone()
    }

    /// For the accept loop of a listener that carries traffic (inbound, outbound, forward).
    pub fn listening(&self) -> Listening {
        Listening {
            stop_accepting: self.draining.clone(),
            cut: self.cut.clone(),
            connections: self.connections.clone(),
        }
    }

    /// Runs steps 1 to 3 of the module doc; returns once no connection task is left.
    pub async fn run(&self) {
        let started = Instant::now();
        self.draining.cancel();
        self.connections.close();
        let open = self.connections.len();
        tracing::info!(
            open_connections = open,
            grace = %humantime::format_duration(self.grace),
            "draining: stopped accepting; open connections have until the grace period ends"
        );
        let finished = tokio::time::timeout(self.grace, self.connections.wait())
            .await
            .is_ok();
        let left = self.connections.len();
        self.cut.cancel();
        self.connections.wait().await;
        let took = humantime::format_duration(round_to_ms(started.elapsed()));
        if finished {
            tracing::info!(%took, "drained: every connection finished");
        } else {
            tracing::warn!(
                cut_connections = left,
                %took,
                "grace period over: closed the connections still open"
            );
        }
    }

    /// Drops every connection now, without a drain (the proxy was dropped, not shut down).
    pub fn cut_now(&self) {
        self.draining.cancel();
        self.cut.cancel();
    }
}

impl Listening {
    /// Fires when this listener stops accepting: the signal for its connections to shut down
    /// gracefully (hyper's GOAWAY, or closing after the current HTTP/1 request).
    pub fn draining(&self) -> CancellationToken {
        self.stop_accepting.clone()
    }

    /// Accepts until `stop` and drops the connections with it, outside any drain (the admin
    /// listener, which serves probes until the very end).
    pub fn until(stop: CancellationToken) -> Self {
        Self {
            stop_accepting: stop.clone(),
            cut: stop,
            connections: TaskTracker::new(),
        }
    }
}

fn round_to_ms(elapsed: Duration) -> Duration {
    Duration::from_millis(elapsed.as_millis().try_into().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection task as the accept loop runs it: the work, dropped at the cut.
    fn connection(listening: &Listening, work: Duration) -> tokio::task::JoinHandle<bool> {
        let cut = listening.cut.clone();
        listening.connections.spawn(async move {
            tokio::select! {
                _ = cut.cancelled() => false,
                _ = tokio::time::sleep(work) => true,
            }
        })
    }

    #[tokio::test(start_paused = true)]
    async fn connections_that_finish_within_the_grace_period_are_not_cut() {
        let drain = Drain::new(Duration::from_secs(20));
        let listening = drain.listening();
        let short = connection(&listening, Duration::from_secs(3));
        let started = Instant::now();
        drain.run().await;
        assert!(drain.draining().is_cancelled());
        assert!(short.await.unwrap(), "the connection finished its work");
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn connections_still_open_at_the_end_of_the_grace_period_are_cut() {
        let drain = Drain::new(Duration::from_secs(2));
        let listening = drain.listening();
        let short = connection(&listening, Duration::from_secs(1));
        let long = connection(&listening, Duration::from_secs(60));
        let started = Instant::now();
        drain.run().await;
        assert!(short.await.unwrap());
        assert!(!long.await.unwrap(), "the long connection was cut");
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn with_no_connection_the_drain_ends_at_once() {
        let drain = Drain::new(Duration::from_secs(20));
        let started = Instant::now();
        drain.run().await;
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}

//! A bound on the connections a listener serves at once.
//!
//! Each connection holds a file descriptor, buffers and (for mutual TLS) a session; without a
//! bound, a burst of callers or a misbehaving one can run the proxy out of descriptors or memory
//! and take every other connection down with it. Past the bound a new connection is accepted and
//! closed at once: its caller sees a fast failure it can retry elsewhere, instead of a SYN that
//! waits in the kernel's backlog until it times out. The slot is held by the connection's task
//! and released when the connection ends, however it ends.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// At most one warning per this interval; it says how many connections were refused since.
const WARNING_INTERVAL: Duration = Duration::from_secs(10);

pub struct ConnectionLimit {
    max: usize,
    slots: Arc<Semaphore>,
    refused_since_warning: AtomicU64,
    last_warning: Mutex<Option<Instant>>,
}

/// One connection's place under the limit; dropping it frees the place.
pub struct ConnectionSlot {
    _permit: OwnedSemaphorePermit,
}

impl ConnectionLimit {
    pub fn new(max: usize) -> Self {
        let max = max.min(Semaphore::MAX_PERMITS);
        Self {
            max,
            slots: Arc::new(Semaphore::new(max)),
            refused_since_warning: AtomicU64::new(0),
            last_warning: Mutex::new(None),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// A slot for a new connection, or `None` when `max` connections are open.
    pub fn try_acquire(&self) -> Option<ConnectionSlot> {
        self.slots
            .clone()
            .try_acquire_owned()
            .ok()
            .map(|permit| ConnectionSlot { _permit: permit })
    }

    /// Notes a connection from `client` refused at `flag` (e.g. `--inbound-max-connections`) and
    /// logs one aggregated warning per interval for `side` (`inbound` or `outbound`).
    pub fn warn_refused(&self, client: std::net::SocketAddr, side: &str, flag: &str) {
        if let Some(refused) = self.refused() {
            tracing::warn!(
                %client,
                refused_since_last_warning = refused,
                max = self.max,
                "refusing new {side} connections: {flag} are open"
            );
        }
    }

    /// Notes a refused connection. Returns how many were refused since the last warning when
    /// it is time to warn again, `None` otherwise (a flood of refusals must not flood the log).
    pub fn refused(&self) -> Option<u64> {
        let refused = self.refused_since_warning.fetch_add(1, Ordering::Relaxed) + 1;
        let now = Instant::now();
        let mut last = self.last_warning.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|at| now.duration_since(at) < WARNING_INTERVAL) {
            return None;
        }
        *last = Some(now);
        // Refusals counted between the load and here are reported in the next warning.
        self.refused_since_warning
            .fetch_sub(refused, Ordering::Relaxed);
        Some(refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_free_again_once_its_connection_ends() {
        let limit = ConnectionLimit::new(2);
        let first = limit.try_acquire().expect("first slot");
        let _second = limit.try_acquire().expect("second slot");
        assert!(
            limit.try_acquire().is_none(),
            "two connections are the limit"
        );
        drop(first);
        assert!(limit.try_acquire().is_some(), "the first connection's slot");
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_are_reported_at_most_once_per_interval() {
        let limit = ConnectionLimit::new(1);
        assert_eq!(limit.refused(), Some(1), "the first refusal warns at once");
        assert_eq!(limit.refused(), None);
        assert_eq!(limit.refused(), None);
        tokio::time::advance(WARNING_INTERVAL).await;
        assert_eq!(limit.refused(), Some(3), "the two held back, and this one");
        assert_eq!(limit.refused(), None);
    }
}

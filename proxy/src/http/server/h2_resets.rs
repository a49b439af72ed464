//! How many HTTP/2 streams a client may cancel before they are answered, per connection.
//!
//! In a "rapid reset" flood (CVE-2023-44487) a client opens streams and cancels them at once:
//! each costs the server the start of a request (a task, the policy checks, perhaps a connect to
//! the app), and none counts against the client's limit of concurrent streams. h2's own guard
//! (`max_pending_accept_reset_streams`) closes a connection only while its resets pile up faster
//! than the server takes its streams up: a client whose flood arrives a read at a time stays
//! under it. A peer proxy with that guard raised sent 10,000 `HEADERS` + `RST_STREAM` pairs on
//! one connection without being cut off; a peer proxy's link ([`crate::http::link`]) has no
//! such guard at all, only this budget.
//!
//! So the server keeps, per connection, a budget of streams the client may reset before their
//! answer: `allowance` to start with, one spent per such reset, one earned back per stream
//! answered, and the allowance earned back every second, never above it. A client whose
//! requests mostly get answered (timeouts, hedged requests, an app that hangs up now and then)
//! never runs out; a flood does after `allowance` resets, and the connection is then sent
//! `GOAWAY ENHANCE_YOUR_CALM`. The allowance depends on the caller: a peer proxy cancels a stream
//! whenever its app hangs up, every stream at once when many apps do, so it gets as many as a
//! connection may have open.
//!
//! An answer costs one atomic increment; the clock and the lock are taken only for resets.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub struct ResetBudget {
    allowance: f64,
    /// Streams answered since the last reset was counted, earned back then.
    answered: AtomicU32,
    state: Mutex<State>,
    exhausted: CancellationToken,
}

struct State {
    left: f64,
    /// When `left` was last brought up to date.
    at: Instant,
}

impl ResetBudget {
    pub fn new(allowance: u32) -> Self {
        Self {
            allowance: f64::from(allowance),
            answered: AtomicU32::new(0),
            state: Mutex::new(State {
                left: f64::from(allowance),
                at: Instant::now(),
            }),
            exhausted: CancellationToken::new(),
        }
    }

    /// A stream was answered: one reset earned back.
    pub fn answered(&self) {
        self.answered.fetch_add(1, Ordering::Relaxed);
    }

    /// The client reset a stream before its answer; returns whether the budget still allows it
    /// (when not, [`ResetBudget::exhausted`] fires).
    pub fn reset(&self) -> bool {
        let now = Instant::now();
        let earned = f64::from(self.answered.swap(0, Ordering::Relaxed));
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let refill = self.allowance * now.duration_since(state.at).as_secs_f64();
        state.left = (state.left + earned + refill).min(self.allowance) - 1.0;
        state.at = now;
        let within = state.left >= 0.0;
        drop(state);
        if !within {
            self.exhausted.cancel();
        }
        within
    }

    /// Fires once the client has reset more streams than the budget allows.
    pub async fn exhausted(&self) {
        self.exhausted.cancelled().await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_flood_runs_out_and_answers_or_time_earn_resets_back() {
        let budget = ResetBudget::new(3);
        assert!(budget.reset() && budget.reset() && budget.reset());
        // Two answers, two more resets.
        budget.answered();
        budget.answered();
        assert!(budget.reset() && budget.reset());
        // A second later, the allowance again, never more.
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(budget.reset() && budget.reset() && budget.reset());
        assert!(
            !budget.reset(),
            "a fourth reset at once is over the allowance"
        );
        tokio::time::timeout(Duration::from_millis(1), budget.exhausted())
            .await
            .expect("exhausted fires");
    }
}

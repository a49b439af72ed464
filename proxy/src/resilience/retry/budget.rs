//! The retry budget: retries may add only a fraction of the traffic, whatever the policy says.
//!
//! Retries are how a mesh hides a failing endpoint, and also how it turns a slow service into a
//! dead one: when every caller retries every failure up to its limit, an overloaded service gets
//! `1 + limit` times the load exactly when it can take least (a retry storm). A per-request limit
//! cannot prevent that; a budget over all requests can. Each request deposits `ratio` of a retry
//! into a window of the last `window`; each retry withdraws one. A small reserve of
//! `minPerSecond`, refilled every second, lets a quiet service retry its rare failures.
//!
//! So over any period of `T` seconds the retries are at most `ratio × requests + minPerSecond ×
//! (T + 1)`. The budget is per destination (shared by its routes) and cannot be switched off,
//! only tuned: Linkerd's route retries without a budget are the mistake this avoids.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::policy::BudgetConfig;

/// Slots the window is split into: the budget forgets old traffic a slot at a time.
const SLOTS: usize = 10;

#[derive(Debug)]
pub struct Budget {
    config: BudgetConfig,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Requests and ratio-funded retries per slot; `slots[current]` is the newest.
    requests: [u32; SLOTS],
    retries: [u32; SLOTS],
    current: usize,
    /// When the current slot began.
    slot_start: Instant,
    /// The `minPerSecond` reserve, refilled once a second.
    reserve: u32,
    reserve_refilled: Instant,
}

impl Budget {
    pub fn new(config: BudgetConfig) -> Self {
        let now = Instant::now();
        Self {
            config,
            state: Mutex::new(State {
                requests: [0; SLOTS],
                retries: [0; SLOTS],
                current: 0,
                slot_start: now,
                reserve: config.min_per_second,
                reserve_refilled: now,
            }),
        }
    }

    pub fn config(&self) -> &BudgetConfig {
        &self.config
    }

    /// Counts a request (not a retry).
    pub fn deposit(&self) {
        let mut state = self.lock();
        state.advance(
            Instant::now(),
            self.slot_length(),
            self.config.min_per_second,
        );
        let current = state.current;
        state.requests[current] = state.requests[current].saturating_add(1);
    }

    /// Takes one retry from the budget, if there is one left.
    pub fn withdraw(&self) -> bool {
        let mut state = self.lock();
        state.advance(
            Instant::now(),
            self.slot_length(),
            self.config.min_per_second,
        );
        let requests: u32 = state.requests.iter().sum();
        let retries: u32 = state.retries.iter().sum();
        if f64::from(retries) + 1.0 <= self.config.ratio * f64::from(requests) {
            let current = state.current;
            state.retries[current] += 1;
            return true;
        }
        if state.reserve > 0 {
            state.reserve -= 1;
            return true;
        }
        false
    }

    fn slot_length(&self) -> Duration {
        self.config.window / SLOTS as u32
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl State {
    fn advance(&mut self, now: Instant, slot: Duration, min_per_second: u32) {
        let mut elapsed = now.saturating_duration_since(self.slot_start);
        let mut moved = 0;
        while elapsed >= slot && moved < SLOTS {
            self.current = (self.current + 1) % SLOTS;
            self.requests[self.current] = 0;
            self.retries[self.current] = 0;
            self.slot_start += slot;
            elapsed -= slot;
            moved += 1;
        }
        if moved == SLOTS {
            // Idle for a whole window: start over from now.
            self.slot_start = now;
        }
        if now.saturating_duration_since(self.reserve_refilled) >= Duration::from_secs(1) {
            self.reserve = min_per_second;
            self.reserve_refilled = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(ratio: f64, min_per_second: u32) -> Budget {
        Budget::new(BudgetConfig {
            ratio,
            min_per_second,
            window: Duration::from_secs(10),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn retries_are_a_share_of_requests_plus_a_reserve_per_second() {
        let b = budget(0.2, 2);
        let mut granted = 0;
        // 100 requests over 2 s, each wanting a retry.
        for _ in 0..100 {
            b.deposit();
            if b.withdraw() {
                granted += 1;
            }
            tokio::time::advance(Duration::from_millis(20)).await;
        }
        // 20 % of 100, plus 2 per second for 2 s (and the first second's reserve).
        assert!(granted <= 20 + 2 * 3, "{granted}");
        assert!(granted >= 20, "{granted}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_forgets_old_traffic() {
        let b = budget(0.5, 0);
        for _ in 0..10 {
            b.deposit();
        }
        assert!(b.withdraw());
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(!b.withdraw(), "requests older than the window fund nothing");
        b.deposit();
        b.deposit();
        assert!(b.withdraw());
        assert!(!b.withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_service_still_retries_from_the_reserve() {
        let b = budget(0.2, 1);
        b.deposit();
        assert!(b.withdraw());
        assert!(!b.withdraw());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(b.withdraw());
    }
}

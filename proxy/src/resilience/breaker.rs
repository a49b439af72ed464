//! The circuit breaker of one endpoint: stop sending to an endpoint that keeps failing, and find
//! out with one real request when it has recovered.
//!
//! The words: **closed** (requests flow), **open** (the endpoint is ejected: it gets nothing
//! until its penalty ends), **half-open** (the penalty is over and exactly one request, the
//! probe, is on its way; success closes the breaker, failure opens it again for twice as long,
//! up to the maximum). This is Linkerd's failure accrual with Envoy's guard: the destination never
//! lets more than `maxEjectedPercent` of its endpoints be ejected at once, so a bad policy or a
//! shared dependency failing cannot eject a whole service (see [`Breaker::record`]'s `may_eject`).
//!
//! The state is read on every pick and changed only when an outcome is recorded or a penalty has
//! ended; there is no timer task: the time is compared when a request looks for an endpoint.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::backoff;
use crate::policy::BreakerConfig;

#[derive(Debug)]
pub struct Breaker {
    state: Mutex<State>,
    /// Whether the phase is closed, readable without the lock: every request looks at the
    /// breakers of the endpoints it could pick, and nearly always they are all closed.
    closed: AtomicBool,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            closed: AtomicBool::new(true),
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct State {
    phase: Phase,
    consecutive_failures: u32,
    /// Ejections in a row without a success between them: the penalty doubles with each.
    ejections: u32,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Phase {
    #[default]
    Closed,
    Open {
        until: Instant,
    },
    HalfOpen {
        probing: bool,
    },
}

/// A change of state, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Opened { penalty: Duration },
    Closed,
}

/// What a breaker says about one more request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Closed,
    /// The request is the half-open probe; its outcome decides.
    Probe,
}

/// The state as shown on the admin endpoint and the gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    Closed,
    Open,
    HalfOpen,
}

impl Shown {
    pub fn as_str(self) -> &'static str {
        match self {
            Shown::Closed => "closed",
            Shown::Open => "open",
            Shown::HalfOpen => "half-open",
        }
    }
}

impl Breaker {
    /// Whether a request could be admitted now (no change of state).
    pub fn admissible(&self, now: Instant) -> bool {
        if self.closed.load(Ordering::Relaxed) {
            return true;
        }
        match self.lock().phase {
            Phase::Closed => true,
            Phase::Open { until } => now >= until,
            Phase::HalfOpen { probing } => !probing,
        }
    }

    /// Whether the penalty is over and no probe is on its way: the next request should be the
    /// probe, rather than wait for the balancer to choose this endpoint.
    pub fn probe_due(&self, now: Instant) -> bool {
        if self.closed.load(Ordering::Relaxed) {
            return false;
        }
        match self.lock().phase {
            Phase::Open { until } => now >= until,
            Phase::HalfOpen { probing } => !probing,
            Phase::Closed => false,
        }
    }

    /// Admits one request, making it the probe if the penalty is over; `None` if the endpoint
    /// must not be used now (ejected, or its probe is already on its way).
    pub fn admit(&self, now: Instant) -> Option<Admission> {
        let mut state = self.lock();
        match state.phase {
            Phase::Closed => Some(Admission::Closed),
            Phase::Open { until } if now >= until => {
                state.phase = Phase::HalfOpen { probing: true };
                Some(Admission::Probe)
            }
            Phase::HalfOpen { probing: false } => {
                state.phase = Phase::HalfOpen { probing: true };
                Some(Admission::Probe)
            }
            _ => None,
        }
    }

    /// A probe ended without an outcome (cancelled): let the next request probe instead.
    pub fn probe_abandoned(&self) {
        let mut state = self.lock();
        if state.phase == (Phase::HalfOpen { probing: true }) {
            state.phase = Phase::HalfOpen { probing: false };
        }
    }

    /// Records an outcome. A failure that would eject the endpoint asks `may_eject` first (the
    /// destination's `maxEjectedPercent` guard); `random` in `[0, 1)` draws the jitter.
    pub fn record(
        &self,
        failed: bool,
        config: &BreakerConfig,
        now: Instant,
        random: f64,
        may_eject: impl FnOnce() -> bool,
    ) -> Option<Transition> {
        let mut state = self.lock();
        if !failed {
            state.consecutive_failures = 0;
            return match state.phase {
                Phase::HalfOpen { .. } => {
                    state.phase = Phase::Closed;
                    state.ejections = 0;
                    self.closed.store(true, Ordering::Relaxed);
                    Some(Transition::Closed)
                }
                _ => None,
            };
        }
        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
        match state.phase {
            // The probe failed: straight back to open, for longer (the guard was passed when
            // this endpoint was first ejected, and it never stopped counting as ejected).
            Phase::HalfOpen { .. } => {}
            Phase::Closed
                if config.consecutive_failures > 0
                    && state.consecutive_failures >= config.consecutive_failures =>
            {
                // The guard looks at the other endpoints' breakers: not under this lock.
                drop(state);
                if !may_eject() {
                    return None;
                }
                state = self.lock();
                if state.phase != Phase::Closed {
                    return None;
                }
            }
            // Below the threshold, or a request sent before the ejection (already open).
            _ => return None,
        }
        state.ejections = state.ejections.saturating_add(1);
        let penalty = penalty(config, state.ejections, random);
        state.phase = Phase::Open {
            until: now + penalty,
        };
        self.closed.store(false, Ordering::Relaxed);
        Some(Transition::Opened { penalty })
    }

    /// Whether the endpoint counts as ejected (open, or half-open until its probe succeeds).
    pub fn ejected(&self) -> bool {
        !self.closed.load(Ordering::Relaxed)
    }

    pub fn shown(&self, now: Instant) -> Shown {
        match self.lock().phase {
            Phase::Closed => Shown::Closed,
            Phase::Open { until } if now < until => Shown::Open,
            _ => Shown::HalfOpen,
        }
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.lock().consecutive_failures
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The n-th ejection in a row: `min(base × 2ⁿ⁻¹, max)`, less up to `jitter` of it.
pub fn penalty(config: &BreakerConfig, ejection: u32, random: f64) -> Duration {
    let doublings = ejection.saturating_sub(1);
    let full = backoff::exponential(config.penalty_base, config.penalty_max, doublings);
    full.mul_f64(1.0 - config.jitter * random.clamp(0.0, 1.0))
}

/// How many of `endpoints` may be ejected at once: `maxEjectedPercent` of them, rounded down,
/// but at least one (a breaker that can never open a single-endpoint service would not fail
/// fast), none at 0 %.
pub fn max_ejected(endpoints: usize, percent: u32) -> usize {
    if percent == 0 {
        return 0;
    }
    (endpoints * percent as usize / 100).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ClientPolicy;

    fn config() -> BreakerConfig {
        let mut c = ClientPolicy::builtin().breaker;
        c.consecutive_failures = 3;
        c.penalty_base = Duration::from_secs(1);
        c.penalty_max = Duration::from_secs(4);
        c.jitter = 0.0;
        c
    }

    fn fail(b: &Breaker, now: Instant) -> Option<Transition> {
        b.record(true, &config(), now, 0.0, || true)
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_then_one_probe_decides() {
        let b = Breaker::default();
        let t0 = Instant::now();
        assert_eq!(fail(&b, t0), None);
        assert_eq!(fail(&b, t0), None);
        assert_eq!(
            fail(&b, t0),
            Some(Transition::Opened {
                penalty: Duration::from_secs(1)
            })
        );
        assert_eq!(b.admit(t0 + Duration::from_millis(999)), None);
        assert_eq!(b.shown(t0), Shown::Open);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(b.admit(t1), Some(Admission::Probe));
        assert_eq!(b.admit(t1), None, "exactly one probe");
        // The probe fails: open for twice as long, then four times, capped at the max.
        assert_eq!(
            fail(&b, t1),
            Some(Transition::Opened {
                penalty: Duration::from_secs(2)
            })
        );
        let t2 = t1 + Duration::from_secs(2);
        assert_eq!(b.admit(t2), Some(Admission::Probe));
        fail(&b, t2);
        let t3 = t2 + Duration::from_secs(4);
        assert_eq!(b.admit(t3), Some(Admission::Probe));
        assert_eq!(
            fail(&b, t3),
            Some(Transition::Opened {
                penalty: Duration::from_secs(4)
            })
        );
        // Success closes it and forgets the history.
        let t4 = t3 + Duration::from_secs(4);
        assert_eq!(b.admit(t4), Some(Admission::Probe));
        assert_eq!(
            b.record(false, &config(), t4, 0.0, || true),
            Some(Transition::Closed)
        );
        assert_eq!(b.admit(t4), Some(Admission::Closed));
        assert!(!b.ejected());
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_count_and_the_guard_can_refuse() {
        let b = Breaker::default();
        let now = Instant::now();
        fail(&b, now);
        fail(&b, now);
        b.record(false, &config(), now, 0.0, || true);
        assert_eq!(fail(&b, now), None);
        fail(&b, now);
        assert_eq!(b.record(true, &config(), now, 0.0, || false), None);
        assert_eq!(b.admit(now), Some(Admission::Closed));
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_probe_lets_the_next_request_probe() {
        let b = Breaker::default();
        let now = Instant::now();
        for _ in 0..3 {
            fail(&b, now);
        }
        let later = now + Duration::from_secs(1);
        assert_eq!(b.admit(later), Some(Admission::Probe));
        b.probe_abandoned();
        assert_eq!(b.admit(later), Some(Admission::Probe));
    }

    #[test]
    fn jitter_shortens_and_the_guard_rounds_down_but_allows_one() {
        let mut c = config();
        c.jitter = 0.5;
        assert_eq!(penalty(&c, 1, 1.0), Duration::from_millis(500));
        assert_eq!(penalty(&c, 1, 0.0), Duration::from_secs(1));
        assert_eq!(max_ejected(2, 50), 1);
        assert_eq!(max_ejected(3, 50), 1);
        assert_eq!(max_ejected(1, 50), 1);
        assert_eq!(max_ejected(10, 50), 5);
        assert_eq!(max_ejected(4, 0), 0);
    }
}

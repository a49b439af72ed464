//! Exponential backoff: how long to wait after the n-th failure in a row.
//!
//! Waiting the same time after every failure makes everyone who saw it come back at once, and
//! keeps hammering a peer that is down; doubling the wait (`base × 2ⁿ`, capped at `max`) backs
//! off, and a random share of it spreads the callers out. One doubling for every user; they
//! differ in the jitter: full jitter for request retries (a wait in `[0, ceiling)`, as gRPC's A6
//! and Envoy do), equal jitter for reconnecting to the control plane (`[50 %, 100 %]` of the
//! ceiling, so a reconnect never comes back at once), up to the policy's `jitter` off the
//! ceiling for a circuit breaker's ejection ([`super::breaker::penalty`]), none for the HTTP/2
//! pool's fail-fast window after a failed connect. Pure functions, the caller brings the random
//! number: tested without a clock.

use std::time::Duration;

/// `base × 2^doublings`, capped at `max`.
pub fn exponential(base: Duration, max: Duration, doublings: u32) -> Duration {
    base.saturating_mul(1 << doublings.min(30)).min(max)
}

/// A random wait below the exponential ceiling (`random` in `[0, 1)`).
pub fn full_jitter(base: Duration, max: Duration, doublings: u32, random: f64) -> Duration {
    exponential(base, max, doublings).mul_f64(random.clamp(0.0, 1.0))
}

/// Between half and all of the exponential ceiling (`random` in `[0, 1)` picks where).
pub fn equal_jitter(base: Duration, max: Duration, doublings: u32, random: f64) -> Duration {
    exponential(base, max, doublings).mul_f64(0.5 + 0.5 * random.clamp(0.0, 1.0))
}

/// The failures in a row of a loop that reconnects, and its next wait (equal jitter).
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: 0,
        }
    }

    /// The next wait: base·2ⁿ capped at `max`, then scaled into [50 %, 100 %] by `jitter`.
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        let delay = equal_jitter(self.base, self.max, self.failures, jitter);
        self.failures = self.failures.saturating_add(1);
        delay
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_ceiling_doubles_up_to_the_max() {
        let (base, max) = (100 * MS, 2000 * MS);
        let ceilings: Vec<_> = (0..7).map(|n| exponential(base, max, n)).collect();
        assert_eq!(
            ceilings,
            [
                100 * MS,
                200 * MS,
                400 * MS,
                800 * MS,
                1600 * MS,
                2000 * MS,
                2000 * MS
            ]
        );
        assert_eq!(exponential(base, max, u32::MAX), max);
    }

    #[test]
    fn full_jitter_waits_below_the_ceiling() {
        let (base, max) = (25 * MS, 250 * MS);
        assert_eq!(full_jitter(base, max, 0, 0.999_999).as_millis(), 24);
        assert_eq!(full_jitter(base, max, 1, 0.999_999).as_millis(), 49);
        assert_eq!(full_jitter(base, max, 2, 0.999_999).as_millis(), 99);
        assert_eq!(full_jitter(base, max, 4, 0.999_999).as_millis(), 249);
        assert_eq!(full_jitter(base, max, 39, 0.5), 125 * MS);
        assert_eq!(full_jitter(base, max, 0, 0.0), Duration::ZERO);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(100 * MS, 1000 * MS);
        let full: Vec<_> = (0..6).map(|_| backoff.next_delay(1.0)).collect();
        assert_eq!(
            full,
            [100 * MS, 200 * MS, 400 * MS, 800 * MS, 1000 * MS, 1000 * MS]
        );
        backoff.reset();
        assert_eq!(backoff.next_delay(0.0), 50 * MS);
        for _ in 0..100 {
            assert!(backoff.next_delay(1.0) <= 1000 * MS);
        }
    }
}

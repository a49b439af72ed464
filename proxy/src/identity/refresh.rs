//! When to renew, and how long to wait after a failure: pure functions, tested without a clock.

use std::time::Duration;

/// Renew after 40–60 % of the time the certificate has left (`jitter` in 0..1 picks where), so
/// there is half a lifetime to retry in, and a fleet started together does not renew together.
pub fn renew_after(remaining: Duration, jitter: f64) -> Duration {
    remaining.mul_f64(0.4 + 0.2 * jitter.clamp(0.0, 1.0))
}

/// Exponential backoff with jitter for retries while the control plane is unreachable.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            attempt: 0,
        }
    }

    /// The next wait: base·2ⁿ capped at `max`, then scaled into [50 %, 100 %] by `jitter`.
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        let exponential = self
            .base
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        exponential.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renews_around_half_of_the_remaining_lifetime() {
        let hour = Duration::from_secs(3600);
        assert_eq!(renew_after(hour, 0.0), Duration::from_secs(1440));
        assert_eq!(renew_after(hour, 0.5), Duration::from_secs(1800));
        assert_eq!(renew_after(hour, 1.0), Duration::from_secs(2160));
        assert_eq!(renew_after(hour, 7.0), Duration::from_secs(2160));
        assert_eq!(renew_after(Duration::ZERO, 0.5), Duration::ZERO);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let full: Vec<_> = (0..6).map(|_| backoff.next_delay(1.0)).collect();
        let ms = |n| Duration::from_millis(n);
        assert_eq!(
            full,
            [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
        backoff.reset();
        assert_eq!(backoff.next_delay(0.0), ms(50));
        for _ in 0..100 {
            assert!(backoff.next_delay(1.0) <= Duration::from_secs(1));
        }
    }
}

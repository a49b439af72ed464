//! The rate a tap session may receive events at: a token bucket holding one second's worth, so
//! a burst up to the rate passes at once and a steady stream above it is cut to the rate.

use tokio::time::Instant;

/// Events per second a session gets when it does not ask.
pub const DEFAULT_RATE: u32 = 100;
/// The most a session may ask for; a higher `rate=` is lowered to this.
pub const MAX_RATE: u32 = 1000;

#[derive(Debug)]
pub struct RateLimit {
    per_second: f64,
    tokens: f64,
    refilled: Instant,
}

impl RateLimit {
    /// Full: the first `per_second` events pass at once.
    pub fn new(per_second: u32, now: Instant) -> Self {
        let per_second = f64::from(per_second.max(1));
        Self {
            per_second,
            tokens: per_second,
            refilled: now,
        }
    }

    /// Whether one more event may go out at `now` (and if so, takes its token).
    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.per_second);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn passed(limit: &mut RateLimit, events: u32) -> u32 {
        (0..events)
            .filter(|_| limit.allow(Instant::now()))
            .count()
            .try_into()
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_up_to_the_rate_passes_then_the_rate_holds() {
        let mut limit = RateLimit::new(10, Instant::now());
        assert_eq!(passed(&mut limit, 25), 10, "one second's worth at once");
        assert_eq!(passed(&mut limit, 5), 0, "then nothing until time passes");
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(passed(&mut limit, 25), 5, "half a second: half the rate");
        // Steady offered load of 100 a second for 10 s: 10 a second pass.
        let mut total = 0;
        for _ in 0..100 {
            tokio::time::advance(Duration::from_millis(100)).await;
            total += passed(&mut limit, 10);
        }
        assert_eq!(total, 100);
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_session_saves_at_most_one_second() {
        let mut limit = RateLimit::new(3, Instant::now());
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(passed(&mut limit, 100), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_of_zero_is_one() {
        let mut limit = RateLimit::new(0, Instant::now());
        assert_eq!(passed(&mut limit, 5), 1);
    }
}

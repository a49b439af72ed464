//! When to renew: a pure function, tested without a clock.

use std::time::Duration;

/// Renew after 40–60 % of the time the certificate has left (`jitter` in 0..1 picks where), so
/// there is half a lifetime to retry in, and a fleet started together does not renew together.
pub fn renew_after(remaining: Duration, jitter: f64) -> Duration {
    remaining.mul_f64(0.4 + 0.2 * jitter.clamp(0.0, 1.0))
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
}

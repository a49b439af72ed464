//! How long to wait before a retry: full-jitter exponential backoff, or what the server asked.
//!
//! Retrying at once, or after a fixed delay, makes every caller that saw the same failure come
//! back at the same moment. Full jitter (a random wait in `[0, min(base × 2ⁿ⁻¹, max))`, as gRPC's
//! A6 and Envoy do) spreads them out. A server that says when to come back (`Retry-After` in
//! seconds, or gRPC's `grpc-retry-pushback-ms`) is believed, up to `pushback.max`.

use std::time::Duration;

use http::HeaderMap;

/// The wait before retry number `retry` (1 for the first retry), `random` in `[0, 1)`.
pub fn full_jitter(base: Duration, max: Duration, retry: u32, random: f64) -> Duration {
    let exp = retry.saturating_sub(1).min(30);
    let ceiling = base.saturating_mul(1 << exp).min(max);
    ceiling.mul_f64(random.clamp(0.0, 1.0))
}

/// The server's requested wait, if it gave one, capped at `max`; `None` without one or when
/// `max` is zero (pushback ignored).
pub fn pushback(headers: &HeaderMap, max: Duration) -> Option<Duration> {
    if max.is_zero() {
        return None;
    }
    let asked = if let Some(ms) = headers.get("grpc-retry-pushback-ms") {
        Duration::from_millis(ms.to_str().ok()?.trim().parse().ok()?)
    } else {
        let seconds = headers.get(http::header::RETRY_AFTER)?;
        Duration::from_secs(seconds.to_str().ok()?.trim().parse().ok()?)
    };
    Some(asked.min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_window_doubles_up_to_the_max() {
        let (base, max) = (25 * MS, 250 * MS);
        assert_eq!(full_jitter(base, max, 1, 0.999_999).as_millis(), 24);
        assert_eq!(full_jitter(base, max, 2, 0.999_999).as_millis(), 49);
        assert_eq!(full_jitter(base, max, 3, 0.999_999).as_millis(), 99);
        assert_eq!(full_jitter(base, max, 5, 0.999_999).as_millis(), 249);
        assert_eq!(full_jitter(base, max, 40, 0.5), 125 * MS);
        assert_eq!(full_jitter(base, max, 1, 0.0), Duration::ZERO);
    }

    #[test]
    fn pushback_is_capped_and_needs_a_number() {
        let mut h = HeaderMap::new();
        assert_eq!(pushback(&h, 5000 * MS), None);
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(pushback(&h, 5000 * MS), Some(2000 * MS));
        assert_eq!(pushback(&h, 500 * MS), Some(500 * MS));
        assert_eq!(pushback(&h, Duration::ZERO), None);
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(pushback(&h, 5000 * MS), None);
        h.insert("grpc-retry-pushback-ms", "300".parse().unwrap());
        assert_eq!(pushback(&h, 5000 * MS), Some(300 * MS));
    }
}

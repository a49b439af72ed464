//! What the server asked: how long to wait before a retry, if it said.
//!
//! A server that says when to come back (`Retry-After` in seconds, or gRPC's
//! `grpc-retry-pushback-ms`) is believed, up to `pushback.max`; otherwise the retry waits a
//! full-jitter backoff ([`crate::resilience::backoff`]).

use std::time::Duration;

use http::HeaderMap;

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

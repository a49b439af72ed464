//! What `GET /tap` served, refused and dropped (see [`crate::telemetry::tap`]).

use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};

use super::{counter, single_counter, single_gauge};

#[derive(Clone)]
pub struct TapMetrics {
    /// `weft_tap_sessions`: tap sessions open now.
    pub sessions: IntGauge,
    /// `weft_tap_sessions_total`: tap sessions accepted.
    pub sessions_total: IntCounter,
    /// `weft_tap_refused_total{reason}`: tap requests refused (not_loopback,
    /// identity_not_allowed, too_many_sessions, bad_query).
    pub refused: IntCounterVec,
    /// `weft_tap_events_total`: events queued for a tap session.
    pub events: IntCounter,
    /// `weft_tap_events_dropped_total{reason}`: events a session matched but did not get
    /// (rate: over its rate; slow_reader: its queue was full).
    pub dropped: IntCounterVec,
}

impl TapMetrics {
    pub fn new(registry: &Registry) -> Self {
        Self {
            sessions: single_gauge(registry, "weft_tap_sessions", "Tap sessions open now."),
            sessions_total: single_counter(
                registry,
                "weft_tap_sessions_total",
                "Tap sessions accepted.",
            ),
            refused: counter(
                registry,
                "weft_tap_refused_total",
                "Tap requests refused, by reason: not_loopback, identity_not_allowed, too_many_sessions or bad_query.",
                &["reason"],
            ),
            events: single_counter(
                registry,
                "weft_tap_events_total",
                "Request events queued for tap sessions.",
            ),
            dropped: counter(
                registry,
                "weft_tap_events_dropped_total",
                "Request events a tap session matched but did not get, by reason: rate or slow_reader.",
                &["reason"],
            ),
        }
    }
}

//! What the server policy refused, limited and injected on the inbound side.

use prometheus::{IntCounterVec, IntGauge, Registry};

use super::{counter, single_gauge};

pub struct ServerPolicyMetrics {
    /// `weft_inbound_unauthorized_total{client_identity,route,mode}`: requests and connections
    /// the server policy's authorization refused (mode enforce) or would have (mode audit).
    pub unauthorized: IntCounterVec,
    /// `weft_inbound_rate_limited_total{client_identity,limit,mode}`: requests over a rate limit.
    pub rate_limited: IntCounterVec,
    /// `weft_inbound_rate_limit_buckets`: per-identity rate limit buckets held.
    pub rate_limit_buckets: IntGauge,
    /// `weft_inbound_faults_injected_total{route,kind}`: kind abort or delay.
    pub faults_injected: IntCounterVec,
}

impl ServerPolicyMetrics {
    pub fn new(registry: &Registry) -> Self {
        Self {
            unauthorized: counter(
                registry,
                "weft_inbound_unauthorized_total",
                "Inbound requests and connections refused by authorization (mode enforce) or that would have been (mode audit), by caller and route.",
                &["client_identity", "route", "mode"],
            ),
            rate_limited: counter(
                registry,
                "weft_inbound_rate_limited_total",
                "Inbound requests over a rate limit (total, identity or override), refused (mode enforce) or let through (mode audit).",
                &["client_identity", "limit", "mode"],
            ),
            rate_limit_buckets: single_gauge(
                registry,
                "weft_inbound_rate_limit_buckets",
                "Per-identity rate limit buckets held (bounded; idle ones are forgotten).",
            ),
            faults_injected: counter(
                registry,
                "weft_inbound_faults_injected_total",
                "Requests a fault drill of the server policy aborted or delayed, by route and kind.",
                &["route", "kind"],
            ),
        }
    }
}

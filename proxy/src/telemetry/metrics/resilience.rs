//! Retries, timeouts, load shedding and circuit breakers on the outbound side.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use super::{counter, register};

pub struct ResilienceMetrics {
    /// `weft_outbound_retries_total{destination,route,reason}`: attempts after the first.
    pub retries: IntCounterVec,
    /// `weft_outbound_retry_budget_exhausted_total{destination,route}`: retries the budget refused.
    pub budget_exhausted: IntCounterVec,
    /// `weft_outbound_timeouts_total{destination,route,kind}`: kind request, per_try or idle.
    pub timeouts: IntCounterVec,
    /// `weft_outbound_shed_total{destination,reason}`: requests refused before any attempt
    /// (overloaded, circuit_open).
    pub shed: IntCounterVec,
    /// `weft_outbound_endpoint_ejected{destination,endpoint}`: 1 while the breaker is open or
    /// half-open; the series goes away with the endpoint.
    pub endpoint_ejected: IntGaugeVec,
    /// `weft_outbound_breaker_transitions_total{destination,to}`: to open or closed.
    pub breaker_transitions: IntCounterVec,
    /// `weft_outbound_request_attempts{destination,route}`: attempts per request.
    pub request_attempts: HistogramVec,
}

impl ResilienceMetrics {
    pub fn new(registry: &Registry) -> Self {
        Self {
            retries: counter(
                registry,
                "weft_outbound_retries_total",
                "Retried attempts, by destination, route and the reason of the attempt before.",
                &["destination", "route", "reason"],
            ),
            budget_exhausted: counter(
                registry,
                "weft_outbound_retry_budget_exhausted_total",
                "Retries not made because the destination's retry budget was spent.",
                &["destination", "route"],
            ),
            timeouts: counter(
                registry,
                "weft_outbound_timeouts_total",
                "Timeouts that expired, by kind: request (answered 504), per_try (retryable) or idle.",
                &["destination", "route", "kind"],
            ),
            shed: counter(
                registry,
                "weft_outbound_shed_total",
                "Requests refused without an attempt: overloaded (limits) or circuit_open.",
                &["destination", "reason"],
            ),
            endpoint_ejected: register(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "weft_outbound_endpoint_ejected",
                        "1 while an endpoint's circuit breaker is open or half-open, else 0.",
                    ),
                    &["destination", "endpoint"],
                )
                .expect("metric definitions are valid"),
            ),
            breaker_transitions: counter(
                registry,
                "weft_outbound_breaker_transitions_total",
                "Circuit breaker changes, by the state entered (open, closed).",
                &["destination", "to"],
            ),
            request_attempts: register(
                registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "weft_outbound_request_attempts",
                        "Attempts made per request (1 = not retried).",
                    )
                    .buckets(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
                    &["destination", "route"],
                )
                .expect("metric definitions are valid"),
            ),
        }
    }
}

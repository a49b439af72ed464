//! The proxy's Prometheus metrics.
//!
//! Each proxy has its own registry (several proxies run in one test process). Names follow
//! Prometheus conventions: `weft_` prefix, base units, `_total` counters. Labels are bounded:
//! identities and destinations come from the mesh's own configuration, not from request data.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::telemetry::RequestFamilies;
use crate::telemetry::export::ExportMetrics;

pub struct Metrics {
    registry: Registry,
    /// `weft_identity_certify_total{result}`: certificate requests to the control plane.
    pub certify: IntCounterVec,
    /// `weft_identity_certificate_expiry_timestamp_seconds`.
    pub cert_expiry: IntGauge,
    /// `weft_tls_handshake_errors_total{direction,reason}`.
    pub tls_handshake_errors: IntCounterVec,
    /// `weft_inbound_connections_total{tls}`: mtls, plaintext, passthrough or refused.
    pub inbound_connections: IntCounterVec,
    /// `weft_inbound_connections_refused_total{reason}`: inbound connections closed before any
    /// byte reached the app (connection_limit, plaintext, unauthorized, handshake, no_certificate).
    pub inbound_refused: IntCounterVec,
    /// `weft_inbound_policy_unknown_total`: inbound connections served before the control
    /// plane had answered for their port's server policy.
    pub inbound_policy_unknown: IntCounter,
    /// `weft_outbound_connections_total{protocol}`: http1, http2, opaque, passthrough or refused.
    pub outbound_connections: IntCounterVec,
    /// `weft_requests_total` and `weft_request_duration_seconds`: every HTTP and gRPC request
    /// (see [`crate::telemetry::request_metrics`]).
    pub requests: RequestFamilies,
    /// The span export path: `weft_trace_spans_exported_total`,
    /// `weft_trace_spans_dropped_total{reason}`, `weft_trace_exports_total{result}`.
    pub trace_export: ExportMetrics,
    /// `weft_access_log_lines_total{result}`: written, dropped (queue full), write_failed.
    pub access_log_lines: IntCounterVec,
    /// `weft_proxy_errors_total{direction,reason}`: requests and connections the proxy failed.
    pub proxy_errors: IntCounterVec,
    /// `weft_protocol_detections_total{direction,protocol}`.
    pub detections: IntCounterVec,
    /// `weft_identity_renewals_total`: certificates installed after the first.
    pub renewals: IntCounter,
    /// `weft_discovery_watches`: destination addresses being watched.
    pub discovery_watches: IntGauge,
    /// `weft_discovery_updates_total`: answers received from the control plane.
    pub discovery_updates: IntCounter,
    /// `weft_discovery_stream_errors_total{reason}`: watches that ended and were retried.
    pub discovery_errors: IntCounterVec,
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
    /// `weft_inbound_unauthorized_total{client_identity,route,mode}`: requests and connections
    /// the server policy's authorization refused (mode enforce) or would have (mode audit).
    pub unauthorized: IntCounterVec,
    /// `weft_inbound_rate_limited_total{client_identity,limit,mode}`: requests over a rate limit.
    pub rate_limited: IntCounterVec,
    /// `weft_inbound_rate_limit_buckets`: per-identity rate limit buckets held.
    pub rate_limit_buckets: IntGauge,
    /// `weft_inbound_faults_injected_total{route,kind}`: kind abort or delay.
    pub faults_injected: IntCounterVec,
    /// `weft_outbound_request_attempts{destination,route}`: attempts per request.
    pub request_attempts: HistogramVec,
    /// `weft_admin_connections_closed_total{reason}`: admin connections the proxy closed
    /// (header_timeout, idle, stalled).
    pub admin_connections_closed: IntCounterVec,
    /// `weft_admin_requests_refused_total{reason}`: admin requests refused (not_loopback).
    pub admin_requests_refused: IntCounterVec,
    /// `weft_tcp_*`, TLS handshakes, identity and build info, discovery watch states.
    pub connections: crate::telemetry::connection_metrics::ConnectionMetrics,
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("metric definitions are valid")
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let metrics = Self {
            requests: RequestFamilies::new(),
            trace_export: ExportMetrics {
                exported: IntCounter::new(
                    "weft_trace_spans_exported_total",
                    "Spans the trace collector accepted.",
                )
                .expect("metric definitions are valid"),
                dropped: counter(
                    "weft_trace_spans_dropped_total",
                    "Spans not exported, by reason: queue_full (the collector is behind) or export_failed.",
                    &["reason"],
                ),
                exports: counter(
                    "weft_trace_exports_total",
                    "Span batches sent to the trace collector, by result: ok, error or timeout.",
                    &["result"],
                ),
            },
            access_log_lines: counter(
                "weft_access_log_lines_total",
                "Access log lines, by result: written, dropped (the writer is behind) or write_failed.",
                &["result"],
            ),
            certify: counter(
                "weft_identity_certify_total",
                "Certificate requests to the control plane, by result.",
                &["result"],
            ),
            cert_expiry: IntGauge::new(
                "weft_identity_certificate_expiry_timestamp_seconds",
                "Unix time at which the proxy's current certificate expires.",
            )
            .expect("metric definitions are valid"),
            tls_handshake_errors: counter(
                "weft_tls_handshake_errors_total",
                "Failed mesh TLS handshakes, by direction and reason.",
                &["direction", "reason"],
            ),
            inbound_connections: counter(
                "weft_inbound_connections_total",
                "Connections accepted by the inbound listener, by how they were secured.",
                &["tls"],
            ),
            inbound_policy_unknown: IntCounter::new(
                "weft_inbound_policy_unknown_total",
                "Inbound connections served before the control plane answered for their port's server policy.",
            )
            .expect("metric definitions are valid"),
            inbound_refused: counter(
                "weft_inbound_connections_refused_total",
                "Inbound connections refused before reaching the app, by reason.",
                &["reason"],
            ),
            outbound_connections: counter(
                "weft_outbound_connections_total",
                "Connections accepted from the local app, by detected protocol.",
                &["protocol"],
            ),
            proxy_errors: counter(
                "weft_proxy_errors_total",
                "Requests and connections the proxy could not carry, by direction and reason.",
                &["direction", "reason"],
            ),
            detections: counter(
                "weft_protocol_detections_total",
                "Protocol detection results on accepted connections.",
                &["direction", "protocol"],
            ),
            renewals: IntCounter::new(
                "weft_identity_renewals_total",
                "Certificates installed after the first one (rotations).",
            )
            .expect("metric definitions are valid"),
            discovery_watches: IntGauge::new(
                "weft_discovery_watches",
                "Destination addresses this proxy watches through discovery.",
            )
            .expect("metric definitions are valid"),
            discovery_updates: IntCounter::new(
                "weft_discovery_updates_total",
                "Discovery answers received from the control plane.",
            )
            .expect("metric definitions are valid"),
            discovery_errors: counter(
                "weft_discovery_stream_errors_total",
                "Discovery watches that ended (and were retried), by reason.",
                &["reason"],
            ),
            retries: counter(
                "weft_outbound_retries_total",
                "Retried attempts, by destination, route and the reason of the attempt before.",
                &["destination", "route", "reason"],
            ),
            budget_exhausted: counter(
                "weft_outbound_retry_budget_exhausted_total",
                "Retries not made because the destination's retry budget was spent.",
                &["destination", "route"],
            ),
            timeouts: counter(
                "weft_outbound_timeouts_total",
                "Timeouts that expired, by kind: request (answered 504), per_try (retryable) or idle.",
                &["destination", "route", "kind"],
            ),
            shed: counter(
                "weft_outbound_shed_total",
                "Requests refused without an attempt: overloaded (limits) or circuit_open.",
                &["destination", "reason"],
            ),
            endpoint_ejected: IntGaugeVec::new(
                Opts::new(
                    "weft_outbound_endpoint_ejected",
                    "1 while an endpoint's circuit breaker is open or half-open, else 0.",
                ),
                &["destination", "endpoint"],
            )
            .expect("metric definitions are valid"),
            breaker_transitions: counter(
                "weft_outbound_breaker_transitions_total",
                "Circuit breaker changes, by the state entered (open, closed).",
                &["destination", "to"],
            ),
            unauthorized: counter(
                "weft_inbound_unauthorized_total",
                "Inbound requests and connections refused by authorization (mode enforce) or that would have been (mode audit), by caller and route.",
                &["client_identity", "route", "mode"],
            ),
            rate_limited: counter(
                "weft_inbound_rate_limited_total",
                "Inbound requests over a rate limit (total, identity or override), refused (mode enforce) or let through (mode audit).",
                &["client_identity", "limit", "mode"],
            ),
            rate_limit_buckets: IntGauge::new(
                "weft_inbound_rate_limit_buckets",
                "Per-identity rate limit buckets held (bounded; idle ones are forgotten).",
            )
            .expect("metric definitions are valid"),
            faults_injected: counter(
                "weft_inbound_faults_injected_total",
                "Requests a fault drill of the server policy aborted or delayed, by route and kind.",
                &["route", "kind"],
            ),
            request_attempts: HistogramVec::new(
                HistogramOpts::new(
                    "weft_outbound_request_attempts",
                    "Attempts made per request (1 = not retried).",
                )
                .buckets(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
                &["destination", "route"],
            )
            .expect("metric definitions are valid"),
            admin_connections_closed: counter(
                "weft_admin_connections_closed_total",
                "Admin connections the proxy closed, by reason: header_timeout, idle or stalled.",
                &["reason"],
            ),
            admin_requests_refused: counter(
                "weft_admin_requests_refused_total",
                "Admin requests refused, by reason (not_loopback: PUT from outside the pod).",
                &["reason"],
            ),
            connections: crate::telemetry::connection_metrics::ConnectionMetrics::new(),
            registry,
        };
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(metrics.certify.clone()),
            Box::new(metrics.cert_expiry.clone()),
            Box::new(metrics.tls_handshake_errors.clone()),
            Box::new(metrics.inbound_connections.clone()),
            Box::new(metrics.inbound_refused.clone()),
            Box::new(metrics.inbound_policy_unknown.clone()),
            Box::new(metrics.outbound_connections.clone()),
            Box::new(metrics.requests.requests.clone()),
            Box::new(metrics.requests.duration.clone()),
            Box::new(metrics.trace_export.exported.clone()),
            Box::new(metrics.trace_export.dropped.clone()),
            Box::new(metrics.trace_export.exports.clone()),
            Box::new(metrics.access_log_lines.clone()),
            Box::new(metrics.proxy_errors.clone()),
            Box::new(metrics.detections.clone()),
            Box::new(metrics.renewals.clone()),
            Box::new(metrics.discovery_watches.clone()),
            Box::new(metrics.discovery_updates.clone()),
            Box::new(metrics.discovery_errors.clone()),
            Box::new(metrics.retries.clone()),
            Box::new(metrics.budget_exhausted.clone()),
            Box::new(metrics.timeouts.clone()),
            Box::new(metrics.shed.clone()),
            Box::new(metrics.endpoint_ejected.clone()),
            Box::new(metrics.breaker_transitions.clone()),
            Box::new(metrics.request_attempts.clone()),
            Box::new(metrics.unauthorized.clone()),
            Box::new(metrics.rate_limited.clone()),
            Box::new(metrics.rate_limit_buckets.clone()),
            Box::new(metrics.faults_injected.clone()),
            Box::new(metrics.admin_connections_closed.clone()),
            Box::new(metrics.admin_requests_refused.clone()),
        ];
        for collector in collectors {
            metrics
                .registry
                .register(collector)
                .expect("each metric is registered once");
        }
        metrics.connections.register(&metrics.registry);
        metrics
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus::TextEncoder::new()
            .encode_utf8(&self.registry.gather(), &mut out)
            .expect("encoding to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

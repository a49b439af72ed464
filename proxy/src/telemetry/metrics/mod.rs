//! The proxy's Prometheus metrics: one registry, and the families of each part of the proxy.
//!
//! Each part registers its own families (the listeners in [`proxy`], connections, identity,
//! discovery, resilience, the server policy, the admin server, tap, the requests), so a new metric
//! is an edit to the part it measures. Each proxy has its own registry (several proxies run in one
//! test process). Names follow Prometheus conventions: `weft_` prefix, base units, `_total`
//! counters. Labels are bounded: identities and destinations come from the mesh's own
//! configuration, not from request data. The exposition is sorted by name, whatever the order in
//! which the families were registered.

pub mod admin;
pub mod connections;
pub mod discovery;
pub mod identity;
pub mod proxy;
pub mod resilience;
pub mod server_policy;
pub mod tap;

use prometheus::core::Collector;
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use crate::telemetry::RequestFamilies;
use crate::telemetry::export::ExportMetrics;
use admin::AdminMetrics;
use connections::ConnectionMetrics;
use discovery::DiscoveryMetrics;
use identity::IdentityMetrics;
use proxy::ProxyMetrics;
use resilience::ResilienceMetrics;
use server_policy::ServerPolicyMetrics;
use tap::TapMetrics;

pub struct Metrics {
    registry: Registry,
    /// What the listeners accepted, detected, refused and failed.
    pub proxy: ProxyMetrics,
    /// `weft_tcp_*`, TLS handshakes, identity and build info.
    pub connections: ConnectionMetrics,
    /// `weft_requests_total` and `weft_request_duration_seconds`: every HTTP and gRPC request
    /// (see [`crate::telemetry::request_metrics`]).
    pub requests: RequestFamilies,
    /// The span export path: `weft_trace_spans_exported_total`,
    /// `weft_trace_spans_dropped_total{reason}`, `weft_trace_exports_total{result}`.
    pub trace_export: ExportMetrics,
    /// `weft_access_log_lines_total{result}`: written, dropped (queue full), write_failed.
    pub access_log_lines: IntCounterVec,
    /// `weft_route_mirror_requests_total{service,route,backend,outcome}`: Gateway API mirrors'
    /// copies, by how each ended.
    pub route_mirrors: IntCounterVec,
    pub identity: IdentityMetrics,
    pub discovery: DiscoveryMetrics,
    pub resilience: ResilienceMetrics,
    pub server_policy: ServerPolicyMetrics,
    pub admin: AdminMetrics,
    /// `weft_tap_*`: tap sessions and their events.
    pub tap: TapMetrics,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        Self {
            proxy: ProxyMetrics::new(&registry),
            connections: ConnectionMetrics::new(&registry),
            requests: RequestFamilies::new(&registry),
            trace_export: ExportMetrics::new(&registry),
            access_log_lines: counter(
                &registry,
                "weft_access_log_lines_total",
                "Access log lines, by result: written, dropped (the writer is behind) or write_failed.",
                &["result"],
            ),
            route_mirrors: counter(
                &registry,
                "weft_route_mirror_requests_total",
                "Copies of routed requests for a rule's RequestMirror, by outcome: answered, answered_5xx, failed, not_found, dropped_in_flight, dropped_body.",
                &["service", "route", "backend", "outcome"],
            ),
            identity: IdentityMetrics::new(&registry),
            discovery: DiscoveryMetrics::new(&registry),
            resilience: ResilienceMetrics::new(&registry),
            server_policy: ServerPolicyMetrics::new(&registry),
            admin: AdminMetrics::new(&registry),
            tap: TapMetrics::new(&registry),
            registry,
        }
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

/// Adds `family` to `registry` and returns it.
pub fn register<C: Collector + Clone + 'static>(registry: &Registry, family: C) -> C {
    registry
        .register(Box::new(family.clone()))
        .expect("each metric is registered once");
    family
}

/// A registered counter family.
pub fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let family = IntCounterVec::new(Opts::new(name, help), labels);
    register(registry, family.expect("metric definitions are valid"))
}

/// A registered gauge family.
pub fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let family = IntGaugeVec::new(Opts::new(name, help), labels);
    register(registry, family.expect("metric definitions are valid"))
}

/// A registered counter without labels.
pub fn single_counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let counter = IntCounter::new(name, help).expect("metric definitions are valid");
    register(registry, counter)
}

/// A registered gauge without labels.
pub fn single_gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let gauge = IntGauge::new(name, help).expect("metric definitions are valid");
    register(registry, gauge)
}

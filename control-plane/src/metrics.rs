//! The control plane's Prometheus metrics, registered in a registry of its own (not the global
//! default) so several control planes can run in one test process.

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

pub struct Metrics {
    pub registry: Registry,
    /// `weft_certify_requests_total{result}`: issued, or the refusal reason.
    pub certify_requests: IntCounterVec,
    /// `weft_ca_expiry_timestamp_seconds`: when the CA (or a certificate above it) expires.
    pub ca_expiry: IntGauge,
    /// `weft_control_plane_tls_handshake_errors_total`: failed TLS handshakes on the gRPC port.
    pub tls_handshake_errors: prometheus::IntCounter,
    /// `weft_config_reloads_total{file,result}`: watched files applied or rejected.
    pub config_reloads: IntCounterVec,
    /// `weft_discovery_watches`: discovery streams open now.
    pub discovery_watches: IntGauge,
    /// `weft_discovery_requests_total{result}`: watches opened (`ok`) or refused
    /// (`invalid_address`).
    pub discovery_requests: IntCounterVec,
    /// `weft_discovery_services`: services in the discovery index in force.
    pub discovery_services: IntGauge,
    /// `weft_discovery_endpoints`: endpoints (over all services) in the discovery index in force.
    pub discovery_endpoints: IntGauge,
    /// `weft_policies`: ServicePolicy documents in force.
    pub policies: IntGauge,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let certify_requests = IntCounterVec::new(
            Opts::new(
                "weft_certify_requests_total",
                "Certify calls by result: issued, or why they were refused.",
            ),
            &["result"],
        )
        .expect("valid metric definition");
        let ca_expiry = IntGauge::new(
            "weft_ca_expiry_timestamp_seconds",
            "Unix time at which the signing CA or a certificate above it expires.",
        )
        .expect("valid metric definition");
        let tls_handshake_errors = prometheus::IntCounter::new(
            "weft_control_plane_tls_handshake_errors_total",
            "TLS handshakes on the gRPC port that failed.",
        )
        .expect("valid metric definition");
        let config_reloads = IntCounterVec::new(
            Opts::new(
                "weft_config_reloads_total",
                "Changes to watched files, by file and result (ok or error).",
            ),
            &["file", "result"],
        )
        .expect("valid metric definition");
        let discovery_watches = IntGauge::new(
            "weft_discovery_watches",
            "Discovery watch streams open now.",
        )
        .expect("valid metric definition");
        let discovery_requests = IntCounterVec::new(
            Opts::new(
                "weft_discovery_requests_total",
                "Discovery watches by result: ok, or invalid_address.",
            ),
            &["result"],
        )
        .expect("valid metric definition");
        let discovery_services = IntGauge::new(
            "weft_discovery_services",
            "Services in the discovery index in force.",
        )
        .expect("valid metric definition");
        let discovery_endpoints = IntGauge::new(
            "weft_discovery_endpoints",
            "Endpoints, over all services, in the discovery index in force.",
        )
        .expect("valid metric definition");
        let policies = IntGauge::new("weft_policies", "ServicePolicy documents in force.")
            .expect("valid metric definition");
        for metric in [
            Box::new(certify_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(ca_expiry.clone()),
            Box::new(tls_handshake_errors.clone()),
            Box::new(config_reloads.clone()),
            Box::new(discovery_watches.clone()),
            Box::new(discovery_requests.clone()),
            Box::new(discovery_services.clone()),
            Box::new(discovery_endpoints.clone()),
            Box::new(policies.clone()),
        ] {
            registry
                .register(metric)
                .expect("each metric is registered once");
        }
        Self {
            registry,
            certify_requests,
            ca_expiry,
            tls_handshake_errors,
            config_reloads,
            discovery_watches,
            discovery_requests,
            discovery_services,
            discovery_endpoints,
            policies,
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

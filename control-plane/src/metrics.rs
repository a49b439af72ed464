//! The control plane's Prometheus metrics, registered in a registry of its own (not the global
//! default) so several control planes can run in one test process.
//!
//! Labels come from small fixed sets only (results, watch kinds, the files given on the command
//! line), so a dashboard's series count does not grow with the mesh.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::reload::{self, Failure, FileKind};

/// `kind` of a discovery watch opened by a caller's proxy for a destination it sends to.
pub const WATCH_DESTINATION: &str = "destination";
/// `kind` of a discovery watch opened by an endpoint's own sidecar, which also gets the
/// service's server policy (`WatchRequest.server`).
pub const WATCH_SERVER: &str = "server";

/// `reason` of `weft_discovery_refusals_total`: a watch past `--max-watches-per-identity`.
pub const REFUSED_TOO_MANY_WATCHES: &str = "too_many_watches";
/// `reason` of `weft_discovery_refusals_total`: no authenticated caller reached the service.
pub const REFUSED_UNAUTHENTICATED: &str = "unauthenticated";
/// Every `reason` of `weft_discovery_refusals_total`, each exposed from the start.
pub const DISCOVERY_REFUSAL_REASONS: &[&str] = &[
    "no_client_certificate",
    "no_identity",
    "foreign_trust_domain",
    "expired_certificate",
    REFUSED_UNAUTHENTICATED,
    REFUSED_TOO_MANY_WATCHES,
];

/// `result` of `weft_certify_duration_seconds`: a certificate was signed.
pub const CERTIFY_ISSUED: &str = "issued";
/// `result` of `weft_certify_duration_seconds`: the request was refused (any reason; the reason
/// is in `weft_certify_requests_total`).
pub const CERTIFY_REFUSED: &str = "refused";

/// Buckets of `weft_certify_duration_seconds`: signing takes about a millisecond; a token
/// review against the Kubernetes API server can take tens of milliseconds to seconds.
const CERTIFY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

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
    /// `weft_config_reload_failures_total{kind,reason}`: changes to watched files not applied,
    /// by [`crate::reload::FileKind`] and [`crate::reload::Failure`].
    pub config_reload_failures: IntCounterVec,
    /// `weft_discovery_watches{kind}`: discovery streams open now, by [`WATCH_DESTINATION`] or
    /// [`WATCH_SERVER`].
    pub discovery_watches: IntGaugeVec,
    /// `weft_discovery_requests_total{result}`: watches opened (`ok`) or refused
    /// (`invalid_address`).
    pub discovery_requests: IntCounterVec,
    /// `weft_discovery_services`: services in the discovery index in force.
    pub discovery_services: IntGauge,
    /// `weft_discovery_endpoints`: endpoints (over all services) in the discovery index in force.
    pub discovery_endpoints: IntGauge,
    /// `weft_policies`: ServicePolicy documents in force.
    pub policies: IntGauge,
    /// `weft_certify_duration_seconds{result}`: time to authenticate and sign (or refuse) one
    /// Certify call, [`CERTIFY_ISSUED`] or [`CERTIFY_REFUSED`].
    pub certify_duration: HistogramVec,
    /// `weft_build_info{version}`: always 1; the version is in the label.
    pub build_info: IntGaugeVec,
    /// `weft_kubernetes_watch_errors_total{resource}`: failed lists/watches and expired
    /// watches (410 Gone) of a Kubernetes resource discovery watches.
    pub kubernetes_watch_errors: IntCounterVec,
    /// `weft_kubernetes_objects{resource}`: objects of a resource discovery holds now.
    pub kubernetes_objects: IntGaugeVec,
    /// `weft_kubernetes_resources_unsynced`: watched resources not listed once yet; `/ready`
    /// fails while it is above 0.
    pub kubernetes_unsynced: IntGauge,
    /// `weft_discovery_refusals_total{reason}`: discovery calls refused before a watch opened,
    /// one of [`DISCOVERY_REFUSAL_REASONS`].
    pub discovery_refusals: IntCounterVec,
    /// `weft_certify_braked_sources`: source addresses the brake on failed authentication has
    /// engaged for and that have not recovered yet ([`crate::authn::brake`]).
    pub certify_braked_sources: IntGauge,
}

/// The `resource` label values of the Kubernetes discovery metrics.
pub const KUBERNETES_RESOURCES: [&str; 4] = ["services", "endpointslices", "pods", "namespaces"];

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
        let config_reload_failures = IntCounterVec::new(
            Opts::new(
                "weft_config_reload_failures_total",
                "Changes to watched files not applied (the previous version stays in force), by kind of file and reason: invalid, empty, missing or unreadable.",
            ),
            &["kind", "reason"],
        )
        .expect("valid metric definition");
        for kind in FileKind::ALL {
            for failure in Failure::ALL {
                config_reload_failures.with_label_values(&[kind.label(), failure.label()]);
            }
        }
        let discovery_watches = IntGaugeVec::new(
            Opts::new(
                "weft_discovery_watches",
                "Discovery watch streams open now, by kind: destination (a caller's) or server (an endpoint's own sidecar).",
            ),
            &["kind"],
        )
        .expect("valid metric definition");
        for kind in [WATCH_DESTINATION, WATCH_SERVER] {
            // Both series exist from the start, so a dashboard shows 0 rather than nothing.
            discovery_watches.with_label_values(&[kind]);
        }
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
        let certify_duration = HistogramVec::new(
            HistogramOpts::new(
                "weft_certify_duration_seconds",
                "Time to authenticate and sign one Certify call, by result: issued or refused.",
            )
            .buckets(CERTIFY_BUCKETS.to_vec()),
            &["result"],
        )
        .expect("valid metric definition");
        for result in [CERTIFY_ISSUED, CERTIFY_REFUSED] {
            certify_duration.with_label_values(&[result]);
        }
        let build_info = IntGaugeVec::new(
            Opts::new(
                "weft_build_info",
                "Always 1; the version of the running control plane is in the label.",
            ),
            &["version"],
        )
        .expect("valid metric definition");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let kubernetes_watch_errors = IntCounterVec::new(
            Opts::new(
                "weft_kubernetes_watch_errors_total",
                "Failed or expired (410 Gone) lists and watches of a Kubernetes resource discovery watches; the last known objects stay in force.",
            ),
            &["resource"],
        )
        .expect("valid metric definition");
        let kubernetes_objects = IntGaugeVec::new(
            Opts::new(
                "weft_kubernetes_objects",
                "Objects of a Kubernetes resource that discovery holds now.",
            ),
            &["resource"],
        )
        .expect("valid metric definition");
        for resource in KUBERNETES_RESOURCES {
            kubernetes_watch_errors.with_label_values(&[resource]);
            kubernetes_objects.with_label_values(&[resource]);
        }
        let kubernetes_unsynced = IntGauge::new(
            "weft_kubernetes_resources_unsynced",
            "Kubernetes resources discovery watches that have not been listed once yet (0 without --kubernetes).",
        )
        .expect("valid metric definition");
        let discovery_refusals = IntCounterVec::new(
            Opts::new(
                "weft_discovery_refusals_total",
                "Discovery calls refused, by reason: no_client_certificate, no_identity, foreign_trust_domain, expired_certificate (UNAUTHENTICATED) or too_many_watches (RESOURCE_EXHAUSTED).",
            ),
            &["reason"],
        )
        .expect("valid metric definition");
        for reason in DISCOVERY_REFUSAL_REASONS {
            discovery_refusals.with_label_values(&[reason]);
        }
        let certify_braked_sources = IntGauge::new(
            "weft_certify_braked_sources",
            "Source addresses braked after too many failed authentications that have not recovered their allowance yet (10 s without failing).",
        )
        .expect("valid metric definition");
        for metric in [
            Box::new(certify_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(ca_expiry.clone()),
            Box::new(tls_handshake_errors.clone()),
            Box::new(config_reloads.clone()),
            Box::new(config_reload_failures.clone()),
            Box::new(discovery_watches.clone()),
            Box::new(discovery_requests.clone()),
            Box::new(discovery_services.clone()),
            Box::new(discovery_endpoints.clone()),
            Box::new(policies.clone()),
            Box::new(certify_duration.clone()),
            Box::new(build_info.clone()),
            Box::new(kubernetes_watch_errors.clone()),
            Box::new(kubernetes_objects.clone()),
            Box::new(kubernetes_unsynced.clone()),
            Box::new(discovery_refusals.clone()),
            Box::new(certify_braked_sources.clone()),
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
            config_reload_failures,
            discovery_watches,
            discovery_requests,
            discovery_services,
            discovery_endpoints,
            policies,
            certify_duration,
            build_info,
            kubernetes_watch_errors,
            kubernetes_objects,
            kubernetes_unsynced,
            discovery_refusals,
            certify_braked_sources,
        }
    }

    /// Where a watch of a `kind` of file counts its reloads and failures.
    pub fn reload_counters(&self, kind: FileKind) -> reload::Counters {
        reload::Counters::new(kind, &self.config_reloads, &self.config_reload_failures)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_info_and_every_label_value_are_exposed_before_anything_happens() {
        let text = Metrics::new().render();
        for line in [
            format!(
                "weft_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            ),
            "weft_discovery_watches{kind=\"destination\"} 0".to_owned(),
            "weft_discovery_watches{kind=\"server\"} 0".to_owned(),
            "weft_certify_duration_seconds_count{result=\"issued\"} 0".to_owned(),
            "weft_certify_duration_seconds_count{result=\"refused\"} 0".to_owned(),
            "# TYPE weft_certify_duration_seconds histogram".to_owned(),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
    }
}

//! The proxy's certificate: requests for it, its expiry, its renewals.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};

use super::{counter, single_counter, single_gauge};

pub struct IdentityMetrics {
    /// `weft_identity_certify_total{result}`: certificate requests to the control plane.
    pub certify: IntCounterVec,
    /// `weft_identity_certificate_expiry_timestamp_seconds`.
    pub cert_expiry: IntGauge,
    /// `weft_identity_renewals_total`: certificates installed after the first.
    pub renewals: IntCounter,
}

impl IdentityMetrics {
    pub fn new(registry: &Registry) -> Self {
        Self {
            certify: counter(
                registry,
                "weft_identity_certify_total",
                "Certificate requests to the control plane, by result.",
                &["result"],
            ),
            cert_expiry: single_gauge(
                registry,
                "weft_identity_certificate_expiry_timestamp_seconds",
                "Unix time at which the proxy's current certificate expires.",
            ),
            renewals: single_counter(
                registry,
                "weft_identity_renewals_total",
                "Certificates installed after the first one (rotations).",
            ),
        }
    }
}

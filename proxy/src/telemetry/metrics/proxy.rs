//! What the listeners accepted, detected, refused and failed.

use prometheus::{IntCounter, IntCounterVec, Registry};

use super::{counter, single_counter};

pub struct ProxyMetrics {
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
    /// `weft_proxy_errors_total{direction,reason}`: requests and connections the proxy failed.
    pub proxy_errors: IntCounterVec,
    /// `weft_protocol_detections_total{direction,protocol}`.
    pub detections: IntCounterVec,
}

impl ProxyMetrics {
    pub fn new(registry: &Registry) -> Self {
        Self {
            inbound_connections: counter(
                registry,
                "weft_inbound_connections_total",
                "Connections accepted by the inbound listener, by how they were secured.",
                &["tls"],
            ),
            inbound_policy_unknown: single_counter(
                registry,
                "weft_inbound_policy_unknown_total",
                "Inbound connections served before the control plane answered for their port's server policy.",
            ),
            inbound_refused: counter(
                registry,
                "weft_inbound_connections_refused_total",
                "Inbound connections refused before reaching the app, by reason.",
                &["reason"],
            ),
            outbound_connections: counter(
                registry,
                "weft_outbound_connections_total",
                "Connections accepted from the local app, by detected protocol.",
                &["protocol"],
            ),
            proxy_errors: counter(
                registry,
                "weft_proxy_errors_total",
                "Requests and connections the proxy could not carry, by direction and reason.",
                &["direction", "reason"],
            ),
            detections: counter(
                registry,
                "weft_protocol_detections_total",
                "Protocol detection results on accepted connections.",
                &["direction", "protocol"],
            ),
        }
    }
}

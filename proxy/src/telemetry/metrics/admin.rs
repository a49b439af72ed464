//! What the admin server closed and refused.

use prometheus::{IntCounterVec, Registry};

use super::counter;

pub struct AdminMetrics {
    /// `weft_admin_connections_closed_total{reason}`: admin connections the proxy closed
    /// (header_timeout, idle, stalled, tls_handshake, tls_no_certificate).
    pub connections_closed: IntCounterVec,
    /// `weft_admin_requests_refused_total{reason}`: admin requests refused (not_loopback).
    pub requests_refused: IntCounterVec,
}

impl AdminMetrics {
    pub fn new(registry: &Registry) -> Self {
        Self {
            connections_closed: counter(
                registry,
                "weft_admin_connections_closed_total",
                "Admin connections the proxy closed, by reason: header_timeout, idle, stalled, tls_handshake or tls_no_certificate.",
                &["reason"],
            ),
            requests_refused: counter(
                registry,
                "weft_admin_requests_refused_total",
                "Admin requests refused, by reason (not_loopback: PUT from outside the pod).",
                &["reason"],
            ),
        }
    }
}

//! Connection-level telemetry: TCP connections and their bytes, mesh TLS handshakes, the proxy's
//! identity and build.
//!
//! Request metrics say how a service answers; these say what the proxy is carrying and with
//! whom, including opaque TCP that has no requests at all. A connection is counted where the
//! proxy knows who the peer is: on the inbound side once the caller is classified (its mutual
//! TLS handshake proved an identity, or it is plaintext), on the outbound side once the proxy's
//! own connection to a destination is up (a peer proxy's identity verified, or plain TCP
//! outside the mesh). Connections refused before that are in the refusal counters instead.
//!
//! Cost: the labelled series of a (direction, tls, peer) are resolved once and cached here, so a
//! new connection takes one map lookup; each read or write then adds to one atomic counter (see
//! [`crate::transport::CountedIo`]). Labels come from bounded sets: directions, TLS status and
//! peer identities, never addresses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Registry,
};

use super::{counter, gauge, register};

/// The `peer_identity` of a connection whose peer proved no identity.
pub const UNAUTHENTICATED: &str = "unauthenticated";

/// Which way traffic goes, from the proxy's point of view (connections here, requests in
/// `crate::telemetry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// To this pod's app, from a caller (accepted on the inbound listener).
    Inbound,
    /// From the local app to a destination (opened by the proxy).
    Outbound,
}

impl Direction {
    pub fn label(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// How a connection is secured, from the mesh's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsStatus {
    /// Mutual TLS between proxies, the peer's identity proven.
    Mtls,
    /// Not secured by the mesh: carried as the app sent it (which may be the app's own TLS).
    Plaintext,
}

impl TlsStatus {
    pub fn label(self) -> &'static str {
        match self {
            TlsStatus::Mtls => "mtls",
            TlsStatus::Plaintext => "plaintext",
        }
    }
}

/// Every (direction, tls) pair, the index of its cache in [`ConnectionMetrics`].
const KINDS: [(Direction, TlsStatus); 4] = [
    (Direction::Inbound, TlsStatus::Mtls),
    (Direction::Inbound, TlsStatus::Plaintext),
    (Direction::Outbound, TlsStatus::Mtls),
    (Direction::Outbound, TlsStatus::Plaintext),
];

fn kind_index(direction: Direction, tls: TlsStatus) -> usize {
    KINDS
        .iter()
        .position(|&kind| kind == (direction, tls))
        .expect("KINDS lists every pair")
}

pub struct ConnectionMetrics {
    /// `weft_tcp_connections_opened_total{direction,peer_identity,tls}`.
    opened: IntCounterVec,
    /// `weft_tcp_connections_closed_total{direction,peer_identity,tls}`.
    closed: IntCounterVec,
    /// `weft_tcp_connections_open{direction,peer_identity,tls}`.
    open: IntGaugeVec,
    /// `weft_tcp_received_bytes_total{direction,peer_identity,tls}`.
    received: IntCounterVec,
    /// `weft_tcp_sent_bytes_total{direction,peer_identity,tls}`.
    sent: IntCounterVec,
    /// `weft_tcp_connection_duration_seconds{direction,tls}`.
    duration: HistogramVec,
    /// Resolved series by peer, one map per entry of [`KINDS`].
    series: [Mutex<HashMap<String, Arc<ConnectionSeries>>>; 4],
    /// `weft_tls_handshakes_total{direction}`: successful mesh handshakes (failures are in
    /// `weft_tls_handshake_errors_total`).
    tls_handshakes: IntCounterVec,
    /// `weft_tls_handshake_errors_total{direction,reason}`.
    pub tls_handshake_errors: IntCounterVec,
    /// `weft_identity_info{identity}`: 1 for the identity this proxy serves as.
    identity_info: IntGaugeVec,
    /// `weft_build_info{version}`: 1.
    build_info: IntGaugeVec,
}

const CONNECTION_LABELS: [&str; 3] = ["direction", "peer_identity", "tls"];

impl ConnectionMetrics {
    pub fn new(registry: &Registry) -> Self {
        let metrics = Self {
            opened: counter(
                registry,
                "weft_tcp_connections_opened_total",
                "TCP connections opened, by direction, peer identity and TLS status (inbound: accepted from callers; outbound: opened to destinations).",
                &CONNECTION_LABELS,
            ),
            closed: counter(
                registry,
                "weft_tcp_connections_closed_total",
                "TCP connections closed, by direction, peer identity and TLS status.",
                &CONNECTION_LABELS,
            ),
            open: gauge(
                registry,
                "weft_tcp_connections_open",
                "TCP connections open now, by direction, peer identity and TLS status.",
                &CONNECTION_LABELS,
            ),
            received: counter(
                registry,
                "weft_tcp_received_bytes_total",
                "Payload bytes the proxy read from the peer of a connection (after TLS decryption: records and handshakes not counted).",
                &CONNECTION_LABELS,
            ),
            sent: counter(
                registry,
                "weft_tcp_sent_bytes_total",
                "Payload bytes the proxy wrote to the peer of a connection (before TLS encryption: records and handshakes not counted).",
                &CONNECTION_LABELS,
            ),
            duration: register(
                registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "weft_tcp_connection_duration_seconds",
                        "How long TCP connections were open, by direction and TLS status.",
                    )
                    .buckets(vec![
                        0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0,
                        900.0, 1800.0, 3600.0,
                    ]),
                    &["direction", "tls"],
                )
                .expect("metric definitions are valid"),
            ),
            series: Default::default(),
            tls_handshakes: counter(
                registry,
                "weft_tls_handshakes_total",
                "Successful mesh TLS handshakes (the peer's identity proven), by direction.",
                &["direction"],
            ),
            tls_handshake_errors: counter(
                registry,
                "weft_tls_handshake_errors_total",
                "Failed mesh TLS handshakes, by direction and reason.",
                &["direction", "reason"],
            ),
            identity_info: gauge(
                registry,
                "weft_identity_info",
                "1, labelled with the SPIFFE ID this proxy serves as.",
                &["identity"],
            ),
            build_info: gauge(
                registry,
                "weft_build_info",
                "1, labelled with the proxy's version.",
                &["version"],
            ),
        };
        metrics
            .build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        metrics
    }

    /// Counts a connection as opened now; the returned guard counts it closed when dropped.
    pub fn opened(&self, direction: Direction, tls: TlsStatus, peer: &str) -> OpenConnection {
        let series = self.series(direction, tls, peer);
        series.opened.inc();
        series.open.inc();
        OpenConnection {
            series,
            since: Instant::now(),
        }
    }

    /// Counts a successful mesh TLS handshake.
    pub fn handshake(&self, direction: Direction) {
        self.tls_handshakes
            .with_label_values(&[direction.label()])
            .inc();
    }

    /// Records that the proxy serves as `identity` (set once, at start).
    pub fn set_identity(&self, identity: &str) {
        self.identity_info.with_label_values(&[identity]).set(1);
    }

    fn series(&self, direction: Direction, tls: TlsStatus, peer: &str) -> Arc<ConnectionSeries> {
        let mut cache = self.series[kind_index(direction, tls)]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(series) = cache.get(peer) {
            return series.clone();
        }
        let labels = [direction.label(), peer, tls.label()];
        let series = Arc::new(ConnectionSeries {
            opened: self.opened.with_label_values(&labels),
            closed: self.closed.with_label_values(&labels),
            open: self.open.with_label_values(&labels),
            received: self.received.with_label_values(&labels),
            sent: self.sent.with_label_values(&labels),
            duration: self
                .duration
                .with_label_values(&[direction.label(), tls.label()]),
        });
        cache.insert(peer.to_owned(), series.clone());
        series
    }
}

/// The series of one (direction, peer, tls), resolved once.
struct ConnectionSeries {
    opened: IntCounter,
    closed: IntCounter,
    open: IntGauge,
    received: IntCounter,
    sent: IntCounter,
    duration: Histogram,
}

/// One open connection: counts its bytes, and counts it closed (with its duration) when
/// dropped, however the connection ends, so the open gauge cannot leak.
pub struct OpenConnection {
    series: Arc<ConnectionSeries>,
    since: Instant,
}

impl OpenConnection {
    pub fn received(&self, bytes: usize) {
        self.series.received.inc_by(bytes as u64);
    }

    pub fn sent(&self, bytes: usize) {
        self.series.sent.inc_by(bytes as u64);
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.series.closed.inc();
        self.series.open.dec();
        self.series
            .duration
            .observe(self.since.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(family: &IntCounterVec, peer: &str) -> u64 {
        family.with_label_values(&["inbound", peer, "mtls"]).get()
    }

    #[test]
    fn a_dropped_connection_is_closed_and_no_longer_open() {
        let metrics = ConnectionMetrics::new(&Registry::new());
        let peer = "spiffe://cluster.local/ns/demo/sa/web";
        let first = metrics.opened(Direction::Inbound, TlsStatus::Mtls, peer);
        let second = metrics.opened(Direction::Inbound, TlsStatus::Mtls, peer);
        first.received(10);
        second.sent(7);
        let open = metrics.open.with_label_values(&["inbound", peer, "mtls"]);
        assert_eq!(open.get(), 2);
        drop(first);
        assert_eq!(open.get(), 1);
        assert_eq!(value(&metrics.closed, peer), 1);
        drop(second);
        assert_eq!(open.get(), 0);
        assert_eq!(value(&metrics.opened, peer), 2);
        assert_eq!(value(&metrics.closed, peer), 2);
        assert_eq!(value(&metrics.received, peer), 10);
        assert_eq!(value(&metrics.sent, peer), 7);
        let duration = metrics.duration.with_label_values(&["inbound", "mtls"]);
        assert_eq!(duration.get_sample_count(), 2);
    }

    #[test]
    fn exposes_build_info_and_the_kinds_apart() {
        let registry = Registry::new();
        let metrics = ConnectionMetrics::new(&registry);
        drop(metrics.opened(Direction::Outbound, TlsStatus::Plaintext, UNAUTHENTICATED));
        let mut text = String::new();
        prometheus::TextEncoder::new()
            .encode_utf8(&registry.gather(), &mut text)
            .unwrap();
        let version = env!("CARGO_PKG_VERSION");
        assert!(
            text.contains(&format!("weft_build_info{{version=\"{version}\"}} 1")),
            "{text}"
        );
        assert!(
            text.contains("weft_tcp_connections_closed_total{direction=\"outbound\",peer_identity=\"unauthenticated\",tls=\"plaintext\"} 1"),
            "{text}"
        );
        assert!(!text.contains("direction=\"inbound\""), "{text}");
    }
}

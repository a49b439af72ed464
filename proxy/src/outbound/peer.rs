//! Connections to peer proxies for the HTTP/2 pool: mutual TLS offering `weft-h2`.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::destination::Endpoint;
use crate::http::client::h2_pool::Connector;
use crate::http::error::ProxyError;
use crate::http::link::client::LinkError;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::metrics::connections::{Direction, TlsStatus};
use crate::tls::{self, TlsStore, alpn};
use crate::transport::{CountedIo, PrefixedIo};

/// A mutual-TLS connection to a peer proxy, counted in `weft_tcp_*` until dropped.
pub type PeerIo = CountedIo<TlsStream<PrefixedIo<TcpStream>>>;

pub struct PeerConnector {
    pub store: Arc<TlsStore>,
    pub timeout: Duration,
    pub metrics: Arc<Metrics>,
}

impl PeerConnector {
    /// A TLS connection to `endpoint` offering `alpn`; failures are counted and logged here.
    pub async fn open(
        &self,
        endpoint: &Endpoint,
        protocol: &'static [u8],
    ) -> Result<PeerIo, ProxyError> {
        let tls = tls::connect(
            &self.store,
            endpoint.addr,
            &endpoint.identity,
            protocol,
            self.timeout,
        )
        .await
        .map_err(|e| {
            if let Some(reason) = e.handshake_reason() {
                self.metrics
                    .connections
                    .tls_handshake_errors
                    .with_label_values(&["outbound", reason])
                    .inc();
            }
            tracing::warn!(%endpoint, "{e}");
            ProxyError::from(e)
        })?;
        let connections = &self.metrics.connections;
        connections.handshake(Direction::Outbound);
        let peer = endpoint.identity.to_string();
        let connection = connections.opened(Direction::Outbound, TlsStatus::Mtls, &peer);
        Ok(CountedIo::new(tls, connection))
    }
}

impl Connector for PeerConnector {
    type Key = Endpoint;
    type Io = PeerIo;

    async fn connect(&self, endpoint: &Endpoint) -> Result<Self::Io, ProxyError> {
        self.open(endpoint, alpn::MESH_H2).await
    }

    fn http_error(&self, endpoint: &Endpoint, source: h2::Error) -> ProxyError {
        ProxyError::PeerHttp {
            addr: endpoint.addr,
            source: source.into(),
        }
    }

    fn unreachable(
        &self,
        endpoint: &Endpoint,
        reason: &'static str,
        detail: String,
        retry_in: Duration,
    ) -> ProxyError {
        ProxyError::PeerDown {
            reason,
            peer: endpoint.to_string(),
            detail,
            retry_in,
        }
    }

    /// Connections follow certificate rotations.
    fn generation(&self) -> u64 {
        self.store.generation()
    }

    const LINK: bool = true;

    fn link_error(&self, endpoint: &Endpoint, source: LinkError) -> ProxyError {
        ProxyError::PeerHttp {
            addr: endpoint.addr,
            source: source.into(),
        }
    }
}

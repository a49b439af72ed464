//! The outbound side: connections from the local app to other services.
//!
//! Each connection's destination is known up front (an explicit forward listener now; the
//! original destination once traffic is intercepted). HTTP is detected and carried over the
//! pooled HTTP/2 connection to the destination's peer proxy; anything else is carried as an
//! opaque stream over its own mutual-TLS connection.

pub mod destination;
mod http;
mod peer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::detect::{self, Protocol};
use crate::http_server::HttpVersion;
use crate::metrics::Metrics;
use crate::pool::H2Pool;
use crate::tls::alpn;
use crate::transport::{PrefixedIo, accept_loop, splice};
pub use destination::{Destination, Endpoint};
use peer::PeerConnector;

pub struct Outbound {
    pool: H2Pool<PeerConnector>,
    detect_timeout: Duration,
    metrics: Arc<Metrics>,
}

impl Outbound {
    pub fn new(
        store: Arc<crate::tls::TlsStore>,
        connect_timeout: Duration,
        detect_timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            pool: H2Pool::new(PeerConnector {
                store,
                timeout: connect_timeout,
                metrics: metrics.clone(),
            }),
            detect_timeout,
            metrics,
        }
    }

    /// Accepts app connections on `listener`, all bound for `destination`.
    pub async fn serve_forward(
        self: Arc<Self>,
        listener: TcpListener,
        destination: Arc<Destination>,
        stop: CancellationToken,
    ) {
        let accepting = stop.clone();
        accept_loop(listener, "outbound", accepting, move |tcp, client| {
            self.clone()
                .handle(tcp, client, destination.clone(), stop.clone())
        })
        .await
    }

    async fn handle(
        self: Arc<Self>,
        tcp: TcpStream,
        client: SocketAddr,
        destination: Arc<Destination>,
        stop: CancellationToken,
    ) {
        let Some((protocol, io)) =
            detect::accepted(tcp, self.detect_timeout, "outbound", &self.metrics).await
        else {
            return;
        };
        match protocol {
            Protocol::Http1 => {
                self.count("http1");
                http::serve(self, io, HttpVersion::Http1, destination, stop).await
            }
            Protocol::Http2 => {
                self.count("http2");
                http::serve(self, io, HttpVersion::Http2, destination, stop).await
            }
            Protocol::Tls { .. } | Protocol::Opaque => {
                self.count("opaque");
                self.forward_opaque(io, client, &destination).await
            }
        }
    }

    async fn forward_opaque(
        &self,
        io: PrefixedIo<TcpStream>,
        client: SocketAddr,
        destination: &Destination,
    ) {
        let Some(endpoint) = destination.pick() else {
            self.error("no_endpoints");
            tracing::warn!(%client, destination = %destination.name, "no endpoint to forward to");
            return;
        };
        match self.pool_connector().open(endpoint, alpn::MESH_TCP).await {
            Ok(tls) => {
                splice(io, tls).await;
            }
            Err(e) => self.error(e.reason()),
        }
    }

    fn pool_connector(&self) -> &PeerConnector {
        self.pool.connector()
    }

    fn count(&self, protocol: &str) {
        self.metrics
            .outbound_connections
            .with_label_values(&[protocol])
            .inc();
    }

    fn error(&self, reason: &str) {
        self.metrics
            .proxy_errors
            .with_label_values(&["outbound", reason])
            .inc();
    }
}

//! Opening a mutually authenticated connection to a peer proxy.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use weft_certs::SpiffeId;

use super::error::{HandshakeFailure, classify};
use super::store::TlsStore;

/// Why a peer connection could not be established.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("no certificate yet: this proxy is still waiting for its identity")]
    NoIdentity,
    #[error("cannot connect to {addr}: {source}")]
    Tcp {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("connecting to {addr} timed out after {timeout:?}{}", if *in_handshake { " (in the TLS handshake)" } else { "" })]
    Timeout {
        addr: SocketAddr,
        timeout: Duration,
        /// The TCP connection was up: the peer did not finish the TLS handshake in time.
        in_handshake: bool,
    },
    #[error("TLS handshake with {addr} failed: {failure}")]
    Handshake {
        addr: SocketAddr,
        failure: HandshakeFailure,
    },
}

impl ConnectError {
    /// A stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ConnectError::NoIdentity => "no_identity",
            ConnectError::Tcp { .. } => "connect_failed",
            ConnectError::Timeout { .. } => "connect_timeout",
            ConnectError::Handshake { failure, .. } => failure.reason,
        }
    }

    /// The `weft_tls_handshake_errors_total` reason, if the TLS handshake is what failed.
    pub fn handshake_reason(&self) -> Option<&'static str> {
        match self {
            ConnectError::Handshake { failure, .. } => Some(failure.reason),
            ConnectError::Timeout {
                in_handshake: true, ..
            } => Some("timeout"),
            _ => None,
        }
    }
}

/// TCP (no Nagle) then TLS 1.3 to `addr`, presenting our certificate, offering `alpn`, and
/// accepting only a server that proves `expected`. `timeout` covers both steps.
pub async fn connect(
    store: &TlsStore,
    addr: SocketAddr,
    expected: &SpiffeId,
    alpn: &'static [u8],
    timeout: Duration,
) -> Result<TlsStream<TcpStream>, ConnectError> {
    let credentials = store.current().ok_or(ConnectError::NoIdentity)?;
    let connector = TlsConnector::from(credentials.client_config(expected, alpn));
    let in_handshake = AtomicBool::new(false);
    let attempt = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|source| ConnectError::Tcp { addr, source })?;
        in_handshake.store(true, Ordering::Relaxed);
        let _ = tcp.set_nodelay(true);
        connector
            .connect(ServerName::IpAddress(addr.ip().into()), tcp)
            .await
            .map_err(|e| ConnectError::Handshake {
                addr,
                failure: classify(&e),
            })
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| ConnectError::Timeout {
            addr,
            timeout,
            in_handshake: in_handshake.load(Ordering::Relaxed),
        })?
}

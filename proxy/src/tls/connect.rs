//! Opening a mutually authenticated connection to a peer proxy.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use weft_certs::SpiffeId;

use super::error::{HandshakeFailure, classify};
use super::store::TlsStore;
use crate::transport::PrefixedIo;

/// Why a peer connection could not be established.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("no certificate yet: this proxy is still waiting for its identity")]
    NoIdentity,
    #[error("cannot connect to {addr}: {source}{}", if is_local_errno(source) { " (this proxy is out of file descriptors, memory or local ports)" } else { "" })]
    Tcp {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("connecting to {addr} timed out after {timeout:?}{}{}",
        if *in_handshake { " (in the TLS handshake)" } else { "" },
        late.map(|l| format!(": this proxy noticed the deadline {l:?} late, too busy to serve the connect")).unwrap_or_default())]
    Timeout {
        addr: SocketAddr,
        timeout: Duration,
        /// The TCP connection was up: the peer did not finish the TLS handshake in time.
        in_handshake: bool,
        /// How late this proxy noticed the deadline, when late enough to say that it was itself
        /// too busy to serve the connect (see [`ConnectError::is_local`]).
        late: Option<Duration>,
    },
    #[error("TLS handshake with {addr} failed: {failure}")]
    Handshake {
        addr: SocketAddr,
        failure: HandshakeFailure,
    },
}

/// The reasons of connect failures that are this proxy's own (see [`ConnectError::is_local`]).
const LOCAL_REASONS: [&str; 3] = ["no_identity", "local_resources", "local_overload"];

impl ConnectError {
    /// A stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ConnectError::NoIdentity => "no_identity",
            ConnectError::Tcp { source, .. } if is_local_errno(source) => "local_resources",
            ConnectError::Tcp { .. } => "connect_failed",
            ConnectError::Timeout { late: Some(_), .. } => "local_overload",
            ConnectError::Timeout { .. } => "connect_timeout",
            ConnectError::Handshake { failure, .. } => failure.reason,
        }
    }

    /// Whether this proxy, not the peer, is why the connect failed: it has no certificate yet,
    /// it is out of file descriptors, memory or ephemeral ports, or it timed out but noticed its
    /// deadline more than [`LATE_FRACTION`] of the timeout late: its runtime was too busy to
    /// serve the connect (a flood of handshakes on its own CPU), so the time ran out on this
    /// side. A circuit breaker must not hold these against the endpoint. A timeout noticed in
    /// time is the endpoint's: no SYN-ACK, or no handshake answer, within the timeout.
    pub fn is_local(&self) -> bool {
        is_local_reason(self.reason())
    }

    /// The `weft_tls_handshake_errors_total` reason, if the TLS handshake is what failed.
    pub fn handshake_reason(&self) -> Option<&'static str> {
        match self {
            ConnectError::Handshake { failure, .. } => Some(failure.reason),
            ConnectError::Timeout {
                in_handshake: true,
                late: None,
                ..
            } => Some("timeout"),
            _ => None,
        }
    }
}

/// Whether a connect failure's `reason` names one of this proxy's own failures (a failure the
/// pool repeats while it backs off keeps only its reason).
pub fn is_local_reason(reason: &str) -> bool {
    LOCAL_REASONS.contains(&reason)
}

/// Errors that say this host ran out of something, whatever the peer.
fn is_local_errno(error: &std::io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EADDRNOTAVAIL)
    )
}

/// TCP (no Nagle) then TLS 1.3 to `addr`, presenting our certificate, offering `alpn`, and
/// accepting only a server that proves `expected`. `timeout` covers both steps.
pub async fn connect(
    store: &TlsStore,
    addr: SocketAddr,
    expected: &SpiffeId,
    alpn: &'static [u8],
    timeout: Duration,
) -> Result<TlsStream<PrefixedIo<TcpStream>>, ConnectError> {
    let credentials = store.current().ok_or(ConnectError::NoIdentity)?;
    let connector = TlsConnector::from(credentials.client_config(expected, alpn));
    let deadline = Instant::now() + timeout;
    let timed_out = |in_handshake| ConnectError::Timeout {
        addr,
        timeout,
        in_handshake,
        late: noticed_late(deadline, timeout),
    };
    let tcp = match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(source)) => return Err(ConnectError::Tcp { addr, source }),
        Err(_) => return Err(timed_out(false)),
    };
    let _ = tcp.set_nodelay(true);
    let handshake = connector.connect(
        ServerName::IpAddress(addr.ip().into()),
        PrefixedIo::new(Bytes::new(), tcp).reading_ahead(),
    );
    match tokio::time::timeout_at(deadline, handshake).await {
        Ok(done) => done.map_err(|e| ConnectError::Handshake {
            addr,
            failure: classify(&e),
        }),
        Err(_) => Err(timed_out(true)),
    }
}

/// The share of the connect timeout by which a deadline noticed late says that this proxy, not
/// the peer, ran out the time (see [`ConnectError::is_local`]).
const LATE_FRACTION: u32 = 4;

/// How late `deadline` is noticed now, if by more than a [`LATE_FRACTION`] of `timeout`.
fn noticed_late(deadline: Instant, timeout: Duration) -> Option<Duration> {
    let late = Instant::now().saturating_duration_since(deadline);
    (late > timeout / LATE_FRACTION).then_some(late)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use weft_certs::CertificateAuthority;

    use super::*;

    const TIMEOUT: Duration = Duration::from_millis(200);

    fn certified_store(identity: &SpiffeId) -> TlsStore {
        let ca = CertificateAuthority::generate("cluster.local", Duration::from_secs(3600))
            .expect("a CA");
        let store = TlsStore::new(
            identity.clone(),
            ca.trust_bundle().clone(),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .expect("a store");
        let issued = ca
            .certify(
                &store.csr().expect("a CSR"),
                identity,
                Duration::from_secs(3600),
            )
            .expect("a certificate");
        store
            .install(issued.leaf, issued.intermediates, ca.trust_bundle().clone())
            .expect("installed");
        store
    }

    /// A peer that takes connections (the kernel's backlog does) and never answers a handshake:
    /// the timeout is its fault, unless this proxy's own runtime held the connect up (here its
    /// only thread is kept busy past the deadline, as a flood of handshakes would keep it).
    #[tokio::test]
    async fn a_silent_peer_times_out_by_its_fault_and_a_stalled_proxy_by_its_own() {
        let identity: SpiffeId = "spiffe://cluster.local/ns/demo/sa/web"
            .parse()
            .expect("an id");
        let store = certified_store(&identity);
        let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
        let addr = silent.local_addr().expect("its address");

        let error = connect(&store, addr, &identity, b"weft-h2", TIMEOUT)
            .await
            .expect_err("no handshake answer");
        assert_eq!(error.reason(), "connect_timeout", "{error}");
        assert!(!error.is_local(), "{error}");

        let busy = tokio::spawn(async { std::thread::sleep(TIMEOUT * 3) });
        let error = connect(&store, addr, &identity, b"weft-h2", TIMEOUT)
            .await
            .expect_err("no handshake answer");
        assert_eq!(error.reason(), "local_overload", "{error}");
        assert!(error.is_local(), "{error}");
        assert!(error.to_string().contains("late"), "{error}");
        busy.await.expect("the busy task ends");
    }
}

//! TLS on the admin port, for callers that prove a mesh identity (`--tap-allow`).
//!
//! Probes and scrapes speak plain HTTP to the admin port, and keep doing so. A connection whose
//! first byte opens a TLS handshake is answered with the proxy's own mesh certificate and must
//! present one too, verified exactly as the inbound listener verifies peers (the mesh's trust
//! bundle, TLS 1.3, a SPIFFE identity in this trust domain). Its requests then carry that
//! identity, which `GET /tap` checks against `--tap-allow`. Before the proxy holds a
//! certificate, such connections are closed (`weft_admin_connections_closed_total{reason=
//! "tls_no_certificate"}`); a failed handshake is `tls_handshake`.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use weft_certs::SpiffeId;

use crate::tls::TlsStore;
use crate::tls::peer_identity;

/// The first byte of a TLS record carrying a handshake message.
const TLS_HANDSHAKE: u8 = 0x16;

pub(super) enum FirstByte {
    Tls,
    Plain,
    /// Nothing within the wait for a request head.
    Silent,
    /// Closed, or failed, before a byte.
    Gone,
}

/// Looks at the connection's first byte without taking it.
pub(super) async fn first_byte(tcp: &TcpStream, within: Duration) -> FirstByte {
    let mut first = [0u8; 1];
    match tokio::time::timeout(within, tcp.peek(&mut first)).await {
        Err(_) => FirstByte::Silent,
        Ok(Ok(0) | Err(_)) => FirstByte::Gone,
        Ok(Ok(_)) if first[0] == TLS_HANDSHAKE => FirstByte::Tls,
        Ok(Ok(_)) => FirstByte::Plain,
    }
}

/// Completes the handshake within `within`: the stream and the identity the caller proved, or
/// the reason the connection is closed.
pub(super) async fn accept(
    store: &TlsStore,
    tcp: TcpStream,
    within: Duration,
) -> Result<(TlsStream<TcpStream>, SpiffeId), &'static str> {
    let Some(credentials) = store.current() else {
        return Err("tls_no_certificate");
    };
    // The inbound listener's config, without its mesh ALPN protocols: an admin client offers
    // none, or http/1.1.
    let mut config = rustls::ServerConfig::clone(&credentials.server_config());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let stream = match tokio::time::timeout(within, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(_)) | Err(_) => return Err("tls_handshake"),
    };
    let identity = peer_identity(stream.get_ref().1).map_err(|_| "tls_handshake")?;
    Ok((stream, identity))
}

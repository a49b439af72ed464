//! A hand-built TLS client for acting as a misbehaving peer: no certificate, a certificate from
//! another CA, an expired one. It reports how the proxy answered.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateParams, DistinguishedName, ExtendedKeyUsagePurpose, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use weft_certs::{CertificateAuthority, SpiffeId, TrustBundle, WorkloadKey};

/// A client certificate chain and its key.
pub struct ClientCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl ClientCert {
    /// Writes `<name>.pem` (chain) and `<name>-key.pem` into `dir`, for programs like openssl.
    pub fn write_pem(&self, dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}-key.pem"));
        std::fs::write(&cert, weft_certs::certificates_to_pem(&self.chain)).unwrap();
        let key_pem = pem::encode(&pem::Pem::new(
            "PRIVATE KEY",
            self.key.secret_der().to_vec(),
        ));
        std::fs::write(&key, key_pem).unwrap();
        (cert, key)
    }
}

/// A certificate for `identity` from a CA that has nothing to do with the mesh.
pub fn foreign_cert(identity: &SpiffeId) -> ClientCert {
    let ca = CertificateAuthority::generate("cluster.local", Duration::from_secs(3600)).unwrap();
    let key = WorkloadKey::generate().unwrap();
    let issued = ca
        .certify(
            &key.csr_der(identity).unwrap(),
            identity,
            Duration::from_secs(3600),
        )
        .unwrap();
    ClientCert {
        chain: vec![issued.leaf],
        key: key.private_key_der().into(),
    }
}

/// A certificate for `identity` signed by the mesh's own CA (read from the control plane's data
/// directory) with the given validity, which the CA's API would never issue if it is in the past.
pub fn mesh_cert_valid(
    ca_dir: &Path,
    identity: &SpiffeId,
    not_before: SystemTime,
    not_after: SystemTime,
) -> ClientCert {
    let ca_pem = std::fs::read_to_string(ca_dir.join("ca.pem")).unwrap();
    let ca_key =
        KeyPair::from_pem(&std::fs::read_to_string(ca_dir.join("ca-key.pem")).unwrap()).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![SanType::URI(identity.to_string().try_into().unwrap())];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ClientAuth,
        ExtendedKeyUsagePurpose::ServerAuth,
    ];
    params.not_before = not_before.into();
    params.not_after = not_after.into();
    let cert = params.signed_by(&key, &issuer).unwrap();
    ClientCert {
        chain: vec![cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

/// How a proxy answered a TLS client.
#[derive(Debug)]
pub enum Answer {
    /// The handshake completed and the server spoke first (HTTP/2 settings).
    Accepted {
        server_identity: SpiffeId,
        serial: String,
    },
    /// The server refused; the error as the client saw it (an alert, usually).
    Refused(String),
}

/// Connects to `addr` offering `alpn`, with or without a client certificate, verifying the server
/// against `bundle` as `server_identity` (or any identity of the mesh if `None`).
pub async fn probe(
    addr: SocketAddr,
    alpn: &[u8],
    bundle: &TrustBundle,
    server_identity: &SpiffeId,
    client: Option<ClientCert>,
) -> Answer {
    let mut tls = match connect(addr, alpn, bundle, server_identity, client).await {
        Ok(tls) => tls,
        Err(e) => return Answer::Refused(e),
    };
    // In TLS 1.3 the server judges the client certificate after the client thinks the
    // handshake is done: its verdict arrives as an alert on the first read.
    let _ = tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(5), tls.read(&mut byte)).await {
        Ok(Ok(n)) if n > 0 => {
            let leaf = &tls.get_ref().1.peer_certificates().unwrap()[0];
            let info = weft_certs::inspect(leaf).unwrap();
            Answer::Accepted {
                server_identity: info.identity.unwrap(),
                serial: info.serial,
            }
        }
        Ok(Ok(_)) => Answer::Refused("closed without a word".to_owned()),
        Ok(Err(e)) => Answer::Refused(e.to_string()),
        Err(_) => Answer::Refused("no answer within 5s".to_owned()),
    }
}

/// A TLS connection to `addr` as [`probe`] makes it (the client's side of the handshake done),
/// for a test that then speaks the negotiated protocol itself; the error as the client saw it.
pub async fn connect(
    addr: SocketAddr,
    alpn: &[u8],
    bundle: &TrustBundle,
    server_identity: &SpiffeId,
    client: Option<ClientCert>,
) -> Result<TlsStream<TcpStream>, String> {
    // ring's own groups only (no post-quantum key exchange): a classical TLS 1.3 client.
    let provider = rustls::crypto::ring::default_provider();
    connect_with(provider, addr, alpn, bundle, server_identity, client).await
}

/// [`connect`] with the key exchange groups, ciphers and algorithms of `provider`.
pub async fn connect_with(
    provider: rustls::crypto::CryptoProvider,
    addr: SocketAddr,
    alpn: &[u8],
    bundle: &TrustBundle,
    server_identity: &SpiffeId,
    client: Option<ClientCert>,
) -> Result<TlsStream<TcpStream>, String> {
    let provider = Arc::new(provider);
    let mut roots = RootCertStore::empty();
    for root in bundle.roots() {
        roots.add(root.clone()).unwrap();
    }
    let verifier = weft_proxy::tls::SpiffeServerVerifier::new(
        Arc::new(roots),
        server_identity.clone(),
        provider.signature_verification_algorithms,
    );
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match client {
        Some(cert) => builder.with_client_auth_cert(cert.chain, cert.key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let name = ServerName::IpAddress(addr.ip().into());
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())
}

//! The webhook's serving certificate: issued by the weft CA for the Service's DNS names, since
//! the API server connects to `weft-control-plane.weft-system.svc` and checks the name against
//! the `caBundle` (the weft roots). It lives a day and is replaced at half-life in memory;
//! rustls asks for the current one at every handshake.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use weft_certs::CertificateAuthority;

use crate::serving_tls::ServingCert;

const LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The names the API server may use for the webhook Service.
pub const WEBHOOK_DNS_NAMES: [&str; 2] = [
    "weft-control-plane.weft-system.svc",
    "weft-control-plane.weft-system.svc.cluster.local",
];

/// The webhook's certificate resolver: issued for [`WEBHOOK_DNS_NAMES`], renewed at half-life.
pub fn start(
    ca: Arc<CertificateAuthority>,
    provider: Arc<CryptoProvider>,
) -> anyhow::Result<Arc<ServingCert>> {
    ServingCert::renewing(
        "the injection webhook's serving certificate".to_owned(),
        Box::new(move || issue(&ca, &provider)),
    )
}

fn issue(
    ca: &CertificateAuthority,
    provider: &CryptoProvider,
) -> anyhow::Result<(CertifiedKey, SystemTime)> {
    let server = ca.issue_dns_server(&WEBHOOK_DNS_NAMES, LIFETIME)?;
    let mut chain = vec![server.issued.leaf];
    chain.extend(server.issued.intermediates);
    let key = CertifiedKey::from_der(chain, server.key_der.into(), provider)?;
    Ok((key, server.issued.not_after))
}

/// TLS 1.2 and 1.3 (the API server's client offers both), HTTP/1.1 and HTTP/2.
pub fn server_config(
    cert: Arc<ServingCert>,
    provider: Arc<CryptoProvider>,
) -> anyhow::Result<rustls::ServerConfig> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

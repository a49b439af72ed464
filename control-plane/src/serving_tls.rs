//! The control plane's own TLS identity on the gRPC port.
//!
//! The control plane certifies itself with its own CA, as
//! `spiffe://<trust-domain>/ns/weft-system/sa/weft-control-plane` by default, so proxies verify
//! it exactly like they verify each other: chain to the trust bundle, then the SPIFFE ID. The
//! certificate lives a day (never past the CA) and is replaced at half-life in memory; rustls asks
//! the resolver for the current one on every handshake, so existing connections are unaffected.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use weft_certs::{CertificateAuthority, RequestedCertificate, SpiffeId, TrustBundle, WorkloadKey};

const SERVING_CERT_LIFETIME: Duration = Duration::from_secs(24 * 3600);
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);

/// Hands rustls the current serving certificate.
#[derive(Debug)]
pub struct ServingCert {
    current: ArcSwap<CertifiedKey>,
}

impl ResolvesServerCert for ServingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// What issues one serving certificate: the key with its chain, and its expiry.
pub type Issue = Box<dyn Fn() -> anyhow::Result<(CertifiedKey, SystemTime)> + Send + Sync>;

impl ServingCert {
    /// The control plane's own SPIFFE certificate for the gRPC port, renewed in the background.
    pub fn start(
        ca: Arc<CertificateAuthority>,
        identity: SpiffeId,
        provider: Arc<CryptoProvider>,
    ) -> anyhow::Result<Arc<Self>> {
        let what = format!("the serving certificate of {identity}");
        Self::renewing(what, Box::new(move || issue(&ca, &identity, &provider)))
    }

    /// Issues the first certificate with `issue` and replaces it at half-life (retrying every
    /// 30 s after a failure) until the resolver is dropped.
    pub fn renewing(what: String, issue: Issue) -> anyhow::Result<Arc<Self>> {
        let (key, not_after) = issue()?;
        let serving = Arc::new(Self {
            current: ArcSwap::from_pointee(key),
        });
        let weak = Arc::downgrade(&serving);
        tokio::spawn(async move {
            let mut not_after = not_after;
            loop {
                let remaining = not_after
                    .duration_since(SystemTime::now())
                    .unwrap_or_default();
                tokio::time::sleep(remaining / 2).await;
                let Some(serving) = weak.upgrade() else {
                    return;
                };
                match issue() {
                    Ok((key, expiry)) => {
                        serving.current.store(Arc::new(key));
                        not_after = expiry;
                        tracing::info!("renewed {what}");
                    }
                    Err(e) => {
                        tracing::error!("cannot renew {what}: {e:#}");
                        tokio::time::sleep(RETRY_AFTER_FAILURE).await;
                    }
                }
            }
        });
        Ok(serving)
    }
}

fn issue(
    ca: &CertificateAuthority,
    identity: &SpiffeId,
    provider: &CryptoProvider,
) -> anyhow::Result<(CertifiedKey, SystemTime)> {
    let key = WorkloadKey::generate()?;
    let request = RequestedCertificate::from_csr(&key.csr_der(identity)?, identity)?;
    let issued = ca.sign(&request, SERVING_CERT_LIFETIME)?;
    let mut chain = vec![issued.leaf];
    chain.extend(issued.intermediates);
    let certified = CertifiedKey::from_der(chain, key.private_key_der().into(), provider)?;
    Ok((certified, issued.not_after))
}

/// TLS 1.3 only, HTTP/2 only. A client certificate is optional: Identity/Certify callers have
/// none yet (they authenticate with tokens), discovery callers present their mesh certificate.
/// One that is presented must chain to `client_roots` (every root of the CA's trust bundle), or
/// the handshake fails; whether a call needs one is decided per service
/// ([`crate::discovery::caller`]).
pub fn server_config(
    serving: Arc<ServingCert>,
    provider: Arc<CryptoProvider>,
    client_roots: &TrustBundle,
) -> anyhow::Result<rustls::ServerConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for root in client_roots.roots() {
        roots.add(root.clone())?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(serving);
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

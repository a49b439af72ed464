//! The seam between whoever fetches certificates and whoever serves TLS.
//!
//! The identity client [`TlsStore::install`]s each certificate it receives; listeners and
//! connectors [`TlsStore::current`] the credentials for every new connection. Installing builds
//! the rustls configs once (not per connection) and swaps them in atomically: handshakes already
//! under way finish on the old configs, established connections are untouched, and the next
//! handshake uses the new certificate and trust bundle. The private key is generated here and
//! never leaves this struct; only CSRs do.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::{CertifiedKey, SigningKey};
use rustls::{ClientConfig, RootCertStore, ServerConfig, SignatureScheme};
use tokio::sync::watch;
use weft_certs::{CertificateInfo, SpiffeId, TrustBundle, WorkloadKey};

use super::alpn;
use super::verify::{MeshClientVerifier, SpiffeServerVerifier, identity_of};

/// Why a certificate from the control plane was not installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("the certificate names {presented}, but this proxy is {expected}")]
    WrongIdentity {
        expected: SpiffeId,
        presented: String,
    },
    #[error("the certificate is not for this proxy's key")]
    WrongKey,
    #[error("the certificate does not chain to the trust bundle it came with: {0}")]
    Untrusted(String),
    #[error("unusable certificate: {0}")]
    Invalid(String),
}

/// Which client config: the identity the server must prove, and the protocol offered.
type ClientKey = (SpiffeId, &'static [u8]);

/// The current certificate with everything built from it.
pub struct Credentials {
    /// Increases by one with every installed certificate.
    pub generation: u64,
    pub info: CertificateInfo,
    pub bundle: TrustBundle,
    certified: Arc<CertifiedKey>,
    roots: Arc<RootCertStore>,
    server: Arc<ServerConfig>,
    /// Client configs per (expected server identity, ALPN), built on first use.
    clients: Mutex<HashMap<ClientKey, Arc<ClientConfig>>>,
    provider: Arc<CryptoProvider>,
}

impl Credentials {
    /// The inbound listener's config: TLS 1.3, client certificate required and verified.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.server.clone()
    }

    /// A config that presents this proxy's certificate and accepts only a server proving
    /// `expected`, offering `alpn`.
    pub fn client_config(&self, expected: &SpiffeId, alpn: &'static [u8]) -> Arc<ClientConfig> {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        clients
            .entry((expected.clone(), alpn))
            .or_insert_with(|| {
                let verifier = SpiffeServerVerifier::new(
                    self.roots.clone(),
                    expected.clone(),
                    self.provider.signature_verification_algorithms,
                );
                let mut config = tls13_client(&self.provider)
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(verifier))
                    .with_client_cert_resolver(Arc::new(Fixed(self.certified.clone())));
                config.alpn_protocols = vec![alpn.to_vec()];
                config.enable_sni = false;
                Arc::new(config)
            })
            .clone()
    }

    pub fn not_after(&self) -> SystemTime {
        self.info.not_after
    }
}

pub struct TlsStore {
    identity: SpiffeId,
    key: WorkloadKey,
    signing_key: Arc<dyn SigningKey>,
    provider: Arc<CryptoProvider>,
    /// Configured trust anchors: used to verify the control plane, with the latest bundle.
    anchors: TrustBundle,
    current: ArcSwapOption<Credentials>,
    generation: watch::Sender<u64>,
    /// The generation of `current`, readable without a lock (the pool asks per request).
    installed: AtomicU64,
}

impl TlsStore {
    /// A store for `identity` with a freshly generated P-256 key and no certificate yet.
    pub fn new(
        identity: SpiffeId,
        anchors: TrustBundle,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, InstallError> {
        let key = WorkloadKey::generate().map_err(|e| InstallError::Invalid(e.to_string()))?;
        let signing_key = provider
            .key_provider
            .load_private_key(key.private_key_der().into())
            .map_err(|e| InstallError::Invalid(e.to_string()))?;
        Ok(Self {
            identity,
            key,
            signing_key,
            provider,
            anchors,
            current: ArcSwapOption::empty(),
            generation: watch::Sender::new(0),
            installed: AtomicU64::new(0),
        })
    }

    pub fn identity(&self) -> &SpiffeId {
        &self.identity
    }

    /// A CSR for this proxy's identity, signed by its key.
    pub fn csr(&self) -> Result<Vec<u8>, InstallError> {
        self.key
            .csr_der(&self.identity)
            .map_err(|e| InstallError::Invalid(e.to_string()))
    }

    /// The credentials in force, or `None` before the first certificate.
    pub fn current(&self) -> Option<Arc<Credentials>> {
        self.current.load_full()
    }

    /// The generation of the credentials in force (0 before the first certificate).
    pub fn generation(&self) -> u64 {
        self.installed.load(Ordering::Acquire)
    }

    /// Notified with the generation number whenever a certificate is installed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// `Ok` while a valid certificate is installed; otherwise why not.
    pub fn readiness(&self, now: SystemTime) -> Result<(), String> {
        match self.current() {
            None => Err("waiting for a certificate from the control plane".to_owned()),
            Some(c) if c.not_after() <= now => Err(format!(
                "certificate expired at {} and no new one arrived",
                weft_certs::format_time(c.not_after())
            )),
            Some(_) => Ok(()),
        }
    }

    /// Checks a certificate from the control plane and makes it the one in use.
    pub fn install(
        &self,
        leaf: CertificateDer<'static>,
        intermediates: Vec<CertificateDer<'static>>,
        bundle: TrustBundle,
    ) -> Result<Arc<Credentials>, InstallError> {
        let info = weft_certs::inspect(&leaf).map_err(|e| InstallError::Invalid(e.to_string()))?;
        match identity_of(&leaf) {
            Ok(id) if id == self.identity => {}
            Ok(id) => {
                return Err(InstallError::WrongIdentity {
                    expected: self.identity.clone(),
                    presented: id.to_string(),
                });
            }
            Err(presented) => {
                return Err(InstallError::WrongIdentity {
                    expected: self.identity.clone(),
                    presented,
                });
            }
        }
        if info.public_key_der != self.key.public_key_der() {
            return Err(InstallError::WrongKey);
        }
        let roots = Arc::new(root_store(&bundle)?);
        let chain_verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), self.provider.clone())
                .build()
                .map_err(|e| InstallError::Invalid(e.to_string()))?;
        let client_verifier = Arc::new(MeshClientVerifier::new(
            chain_verifier,
            self.identity.trust_domain(),
        ));
        // Check our own chain the way peers will, so a bad bundle fails here and not in them.
        let mut chain = vec![leaf.clone()];
        chain.extend(intermediates);
        client_verifier
            .verify_client_cert(&chain[0], &chain[1..], rustls::pki_types::UnixTime::now())
            .map_err(|e| InstallError::Untrusted(e.to_string()))?;

        let certified = Arc::new(CertifiedKey::new(chain, self.signing_key.clone()));
        let mut server = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| InstallError::Invalid(e.to_string()))?
            .with_client_cert_verifier(client_verifier)
            .with_cert_resolver(Arc::new(Fixed(certified.clone())));
        server.alpn_protocols = alpn::SERVER_PROTOCOLS.iter().map(|p| p.to_vec()).collect();

        let generation = self.generation.borrow().wrapping_add(1);
        let credentials = Arc::new(Credentials {
            generation,
            info,
            bundle,
            certified,
            roots,
            server: Arc::new(server),
            clients: Mutex::new(HashMap::new()),
            provider: self.provider.clone(),
        });
        self.current.store(Some(credentials.clone()));
        self.installed.store(generation, Ordering::Release);
        self.generation.send_replace(generation);
        Ok(credentials)
    }

    /// A config for talking to the control plane: verify `expected` against the configured
    /// anchors plus the latest bundle, present no certificate (the token authenticates), HTTP/2.
    pub fn control_plane_config(&self, expected: &SpiffeId) -> Result<ClientConfig, InstallError> {
        self.control_plane_config_for(expected, self.current(), false)
    }

    /// [`Self::control_plane_config`] presenting this proxy's current certificate, as discovery
    /// watches must; an error before the first certificate.
    pub fn control_plane_config_presenting(
        &self,
        expected: &SpiffeId,
    ) -> Result<ClientConfig, InstallError> {
        self.control_plane_config_for(expected, self.current(), true)
    }

    fn control_plane_config_for(
        &self,
        expected: &SpiffeId,
        current: Option<Arc<Credentials>>,
        present: bool,
    ) -> Result<ClientConfig, InstallError> {
        let bundle = match &current {
            Some(c) => self.anchors.merged(&c.bundle),
            None => self.anchors.clone(),
        };
        let verifier = SpiffeServerVerifier::new(
            Arc::new(root_store(&bundle)?),
            expected.clone(),
            self.provider.signature_verification_algorithms,
        );
        let builder = tls13_client(&self.provider)
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let mut config = match (present, current) {
            (false, _) => builder.with_no_client_auth(),
            (true, Some(c)) => {
                builder.with_client_cert_resolver(Arc::new(Fixed(c.certified.clone())))
            }
            (true, None) => {
                return Err(InstallError::Invalid(
                    "no certificate yet to present to the control plane".to_owned(),
                ));
            }
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }
}

fn tls13_client(
    provider: &Arc<CryptoProvider>,
) -> rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier> {
    ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        // The ring provider supports TLS 1.3; this cannot fail.
        .expect("the ring provider supports TLS 1.3")
}

fn root_store(bundle: &TrustBundle) -> Result<RootCertStore, InstallError> {
    let mut roots = RootCertStore::empty();
    for root in bundle.roots() {
        roots
            .add(root.clone())
            .map_err(|e| InstallError::Invalid(format!("bad root in trust bundle: {e}")))?;
    }
    Ok(roots)
}

/// Always the same certificate, for both sides of a connection.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

impl ResolvesClientCert for Fixed {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _schemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

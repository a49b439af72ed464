//! Verifying the other side of a mesh connection by SPIFFE identity.
//!
//! WebPKI verifies server names (DNS names and IP addresses); weft certificates carry only a URI
//! SAN. So the client side checks the chain with rustls' own WebPKI routine and then compares the
//! SPIFFE ID with the identity expected for the destination, failing the handshake (before the
//! client certificate is sent) when they differ. The server side uses rustls' stock client
//! verifier for the chain, refuses a SPIFFE ID of another trust domain ([`MeshClientVerifier`]),
//! and reads the caller's identity after the handshake.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    SignatureScheme,
};
use weft_certs::SpiffeId;

/// The server presented a valid certificate for the wrong workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityMismatch {
    pub expected: SpiffeId,
    /// What the certificate says, or a description when it has no weft identity.
    pub presented: String,
}

impl fmt::Display for IdentityMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "peer presented identity {}, expected {}",
            self.presented, self.expected
        )
    }
}

impl std::error::Error for IdentityMismatch {}

/// Accepts a server certificate that chains to `roots` and names exactly `expected`.
#[derive(Debug)]
pub struct SpiffeServerVerifier {
    roots: Arc<RootCertStore>,
    expected: SpiffeId,
    algorithms: WebPkiSupportedAlgorithms,
}

impl SpiffeServerVerifier {
    pub fn new(
        roots: Arc<RootCertStore>,
        expected: SpiffeId,
        algorithms: WebPkiSupportedAlgorithms,
    ) -> Self {
        Self {
            roots,
            expected,
            algorithms,
        }
    }
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        let presented = identity_of(end_entity);
        match presented {
            Ok(id) if id == self.expected => Ok(ServerCertVerified::assertion()),
            Ok(id) => Err(mismatch(&self.expected, id.to_string())),
            Err(description) => Err(mismatch(&self.expected, description)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A client presented a certificate the mesh's CA signed for a SPIFFE ID of another trust
/// domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignTrustDomain {
    pub presented: SpiffeId,
    pub trust_domain: String,
}

impl fmt::Display for ForeignTrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the client's identity {} is not of this mesh's trust domain {}",
            self.presented, self.trust_domain
        )
    }
}

impl std::error::Error for ForeignTrustDomain {}

/// Accepts a client certificate that `inner` (WebPKI over the mesh's roots) accepts and whose
/// SPIFFE ID, if it has one, is of `trust_domain`.
///
/// Why a chain to our roots is not enough: a root can be shared with another trust domain (a
/// corporate CA, a federation, a CA moved between meshes) or can have signed a foreign name by
/// mistake, and the caller's identity goes on to the app and to authorization as-is — a
/// `spiffe://evil.example/ns/prod/sa/payments` must not pass for anyone here. Discovery refuses
/// such names the same way. A certificate without a SPIFFE ID passes here and is refused after
/// the handshake, with its own reason (`no_identity`).
#[derive(Debug)]
pub struct MeshClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    trust_domain: String,
}

impl MeshClientVerifier {
    pub fn new(inner: Arc<dyn ClientCertVerifier>, trust_domain: &str) -> Self {
        Self {
            inner,
            trust_domain: trust_domain.to_owned(),
        }
    }
}

impl ClientCertVerifier for MeshClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        match identity_of(end_entity) {
            Ok(id) if id.trust_domain() != self.trust_domain => {
                let foreign = ForeignTrustDomain {
                    presented: id,
                    trust_domain: self.trust_domain.clone(),
                };
                Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                    OtherError(Arc::new(foreign)),
                )))
            }
            _ => Ok(verified),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn mismatch(expected: &SpiffeId, presented: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
        IdentityMismatch {
            expected: expected.clone(),
            presented,
        },
    ))))
}

/// The SPIFFE identity in a certificate, or a description of why there is none.
pub fn identity_of(cert: &CertificateDer<'_>) -> Result<SpiffeId, String> {
    let info = weft_certs::inspect(cert).map_err(|e| format!("an unreadable certificate ({e})"))?;
    match (info.identity, info.uri_sans.as_slice()) {
        (Some(id), _) => Ok(id),
        (None, []) => Err(format!(
            "no SPIFFE identity (certificate subject {})",
            info.subject
        )),
        (None, uris) => Err(format!("no weft identity (URI SANs {})", uris.join(", "))),
    }
}

/// The caller's identity on an established server-side connection.
pub fn peer_identity(conn: &rustls::CommonState) -> Result<SpiffeId, String> {
    match conn.peer_certificates().and_then(|chain| chain.first()) {
        Some(leaf) => identity_of(leaf),
        None => Err("no client certificate".to_owned()),
    }
}

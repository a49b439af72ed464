//! The certificate authority: a signing certificate, its key, the chain above it and the roots.
//!
//! Two ways in: [`CertificateAuthority::generate`] makes a self-signed root (the embedded default
//! the control plane persists in its data directory), and [`CertificateAuthority::from_pem`] loads
//! an operator's root, or an intermediate signed by an offline root. Either way a leaf never
//! outlives any certificate above it, so a proxy never holds a certificate that validates past
//! the point where its chain stops validating.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData, SerialNumber,
    SubjectPublicKeyInfo,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls_pki_types::CertificateDer;

use crate::bundle::TrustBundle;
use crate::csr::RequestedCertificate;
use crate::error::{CaError, CsrError};
use crate::identity::SpiffeId;
use crate::inspect::{CertificateInfo, inspect};
use crate::key::uri_san;
use crate::pem_io::{certificates_from_pem, certificates_to_pem};

/// Leaves start this far in the past so a peer whose clock is slightly behind still accepts them.
const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(10);

/// The shortest leaf lifetime the CA issues; tests use a few seconds.
pub const MIN_LEAF_LIFETIME: Duration = Duration::from_secs(1);

/// A signing certificate with its key, able to certify workload identities.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    key_pem: String,
    /// The signing certificate first, then each certificate above it (the root last, if included).
    chain: Vec<CertificateDer<'static>>,
    /// The earliest expiry of any certificate in `chain`: no leaf may outlive it.
    chain_not_after: SystemTime,
    chain_not_before: SystemTime,
    trust_bundle: TrustBundle,
    subject: String,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("subject", &self.subject)
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// A signed leaf with what a peer needs to validate it.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    pub leaf: CertificateDer<'static>,
    /// Intermediates from the leaf's issuer upward, roots excluded (peers have them in the bundle).
    pub intermediates: Vec<CertificateDer<'static>>,
    pub not_after: SystemTime,
    pub serial: String,
}

/// The parameters every weft CA certificate shares: `O=weft, CN=weft <kind> CA <td> <tag>`, CA
/// key usages, the serial. Each CA gets its own name (the tag is from its serial): certificate
/// paths are built by matching names, so two roots with one name (during a rotation, or a
/// foreign weft mesh) would be confused.
fn ca_params(
    kind: &str,
    trust_domain: &str,
    constraints: BasicConstraints,
    serial: rcgen::SerialNumber,
) -> CertificateParams {
    let tag = crate::inspect::hex(&serial.to_bytes()[..4]);
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "weft");
    params.distinguished_name.push(
        DnType::CommonName,
        format!("weft {kind} CA {trust_domain} {tag}"),
    );
    params.is_ca = IsCa::Ca(constraints);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(serial);
    params
}

impl CertificateAuthority {
    /// A new self-signed ECDSA P-256 root for `trust_domain`, valid for `lifetime`.
    pub fn generate(trust_domain: &str, lifetime: Duration) -> Result<Self, CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let now = SystemTime::now();
        let mut params = ca_params(
            "root",
            trust_domain,
            BasicConstraints::Unconstrained,
            random_serial()?,
        );
        params.not_before = (now - CLOCK_SKEW_ALLOWANCE).into();
        params.not_after = (now + lifetime).into();
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();
        Self::from_pem(cert_pem.as_bytes(), &key.serialize_pem(), None)
    }

    /// A new intermediate CA for `trust_domain` signed by this CA, valid for `lifetime` (never
    /// past this CA). Its chain is the intermediate, then this CA's chain, so leaves it signs
    /// chain through it to the same roots: proxies keep trusting only the roots, and the
    /// intermediate can be replaced (or moved under a new root) without touching them.
    pub fn generate_intermediate(
        &self,
        trust_domain: &str,
        lifetime: Duration,
    ) -> Result<Self, CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let now = SystemTime::now();
        // Path length 0: it signs workload leaves only, never another CA.
        let mut params = ca_params(
            "intermediate",
            trust_domain,
            BasicConstraints::Constrained(0),
            random_serial()?,
        );
        params.use_authority_key_identifier_extension = true;
        params.not_before = (now - CLOCK_SKEW_ALLOWANCE)
            .max(self.chain_not_before)
            .into();
        params.not_after = (now + lifetime).min(self.chain_not_after).into();
        let cert = params.signed_by(&key, &self.issuer)?;
        let mut chain = vec![cert.der().clone()];
        chain.extend(self.chain.iter().cloned());
        Self::from_pem(
            certificates_to_pem(&chain).as_bytes(),
            &key.serialize_pem(),
            Some(self.trust_bundle.clone()),
        )
    }

    /// Loads a CA from PEM: `chain_pem` holds the signing certificate first, then optionally the
    /// certificates above it up to the root; `key_pem` the signing certificate's private key.
    /// Self-signed certificates in the chain become trust roots, and `extra_roots` adds more (a
    /// root being rotated in or out). It is an error if no root is known.
    pub fn from_pem(
        chain_pem: &[u8],
        key_pem: &str,
        extra_roots: Option<TrustBundle>,
    ) -> Result<Self, CaError> {
        let chain = certificates_from_pem(chain_pem, "CA certificate")?;
        let key = KeyPair::from_pem(key_pem).map_err(|e| CaError::Key(e.to_string()))?;
        let infos = chain
            .iter()
            .map(inspect)
            .collect::<Result<Vec<CertificateInfo>, _>>()
            .map_err(|e| CaError::Parse(e.to_string()))?;
        // `certificates_from_pem` never returns an empty list, so there is a first certificate.
        let signing = &infos[0];
        if signing.public_key_der != key.subject_public_key_info() {
            return Err(CaError::KeyMismatch {
                subject: signing.subject.clone(),
            });
        }
        if let Some(not_ca) = infos.iter().find(|i| !i.is_ca) {
            return Err(CaError::NotACa {
                subject: not_ca.subject.clone(),
            });
        }
        let now = SystemTime::now();
        if let Some(expired) = infos.iter().find(|i| i.not_after <= now) {
            return Err(CaError::Expired {
                subject: expired.subject.clone(),
                not_after: crate::inspect::format_time(expired.not_after),
            });
        }
        let mut roots: Vec<CertificateDer<'static>> = chain
            .iter()
            .zip(&infos)
            .filter(|(_, i)| i.self_signed)
            .map(|(c, _)| c.clone())
            .collect();
        if let Some(extra) = extra_roots {
            roots.extend(extra.roots().iter().cloned());
        }
        let trust_bundle = TrustBundle::new(roots).map_err(|e| match e {
            CaError::EmptyBundle => CaError::NoRoot {
                last_subject: infos.last().map(|i| i.subject.clone()).unwrap_or_default(),
            },
            other => other,
        })?;
        let issuer = Issuer::from_ca_cert_der(&chain[0], key)?;
        let key_pem = key_pem.to_owned();
        Ok(Self {
            issuer,
            key_pem,
            chain_not_after: infos.iter().map(|i| i.not_after).min().unwrap_or(now),
            chain_not_before: infos.iter().map(|i| i.not_before).max().unwrap_or(now),
            subject: signing.subject.clone(),
            chain,
            trust_bundle,
        })
    }

    /// Checks `csr_der` against `authorized` and signs a leaf valid for `lifetime`, or less if the
    /// CA itself expires sooner.
    pub fn certify(
        &self,
        csr_der: &[u8],
        authorized: &SpiffeId,
        lifetime: Duration,
    ) -> Result<IssuedCertificate, CertifyError> {
        let request = RequestedCertificate::from_csr(csr_der, authorized)?;
        self.sign(&request, lifetime).map_err(CertifyError::Ca)
    }

    /// Signs a leaf for an already checked request.
    pub fn sign(
        &self,
        request: &RequestedCertificate,
        lifetime: Duration,
    ) -> Result<IssuedCertificate, CaError> {
        let now = SystemTime::now();
        let lifetime = lifetime.max(MIN_LEAF_LIFETIME);
        let not_before = (now - CLOCK_SKEW_ALLOWANCE).max(self.chain_not_before);
        let not_after = (now + lifetime).min(self.chain_not_after);
        let serial = random_serial()?;
        let serial_hex = crate::inspect::hex(&serial.to_bytes());

        let mut params = CertificateParams::default();
        // An empty subject makes rcgen mark the SAN extension critical, as RFC 5280 requires.
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = vec![uri_san(request.identity())?];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        params.serial_number = Some(serial);
        let public_key = SubjectPublicKeyInfo::from_der(request.public_key_der())?;
        let leaf = params.signed_by(&public_key, &self.issuer)?;

        Ok(IssuedCertificate {
            leaf: leaf.der().clone(),
            intermediates: self.intermediates(),
            not_after,
            serial: serial_hex,
        })
    }

    /// A TLS server certificate for `dns_names` with a key generated here, for servers that
    /// clients reach by a DNS name rather than a SPIFFE ID: the sidecar-injection webhook, which
    /// the Kubernetes API server calls as `weft-control-plane.weft-system.svc`. Only
    /// `serverAuth`; no URI SAN, so it can never pass as a workload identity.
    pub fn issue_dns_server(
        &self,
        dns_names: &[&str],
        lifetime: Duration,
    ) -> Result<DnsServerCertificate, CaError> {
        if dns_names.is_empty() {
            return Err(CaError::Key(
                "a DNS server certificate needs at least one name".to_owned(),
            ));
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let now = SystemTime::now();
        let not_before = (now - CLOCK_SKEW_ALLOWANCE).max(self.chain_not_before);
        let not_after = (now + lifetime.max(MIN_LEAF_LIFETIME)).min(self.chain_not_after);
        let serial = random_serial()?;
        let serial_hex = crate::inspect::hex(&serial.to_bytes());
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, dns_names[0]);
        params.subject_alt_names = dns_names
            .iter()
            .map(|name| Ok(rcgen::SanType::DnsName((*name).try_into()?)))
            .collect::<Result<_, rcgen::Error>>()?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        params.serial_number = Some(serial);
        let leaf = params.signed_by(&key, &self.issuer)?;
        Ok(DnsServerCertificate {
            issued: IssuedCertificate {
                leaf: leaf.der().clone(),
                intermediates: self.intermediates(),
                not_after,
                serial: serial_hex,
            },
            key_der: rustls_pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()),
        })
    }

    /// Certificates a peer needs between a leaf and a root: the chain without its roots.
    pub fn intermediates(&self) -> Vec<CertificateDer<'static>> {
        self.chain
            .iter()
            .filter(|c| !self.trust_bundle.contains(c))
            .cloned()
            .collect()
    }

    pub fn trust_bundle(&self) -> &TrustBundle {
        &self.trust_bundle
    }

    /// The signing certificate's subject, for logs.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// When the CA (or a certificate above it) expires.
    pub fn not_after(&self) -> SystemTime {
        self.chain_not_after
    }

    /// The chain as PEM (signing certificate first), to persist next to [`Self::key_pem`].
    pub fn chain_pem(&self) -> String {
        certificates_to_pem(&self.chain)
    }

    /// The signing key as PKCS#8 PEM. Only for persisting the CA; never log it.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }
}

/// A server certificate for DNS names and its private key (see
/// [`CertificateAuthority::issue_dns_server`]).
pub struct DnsServerCertificate {
    pub issued: IssuedCertificate,
    /// The key, for this process's TLS stack only. Do not log or persist it.
    pub key_der: rustls_pki_types::PrivatePkcs8KeyDer<'static>,
}

impl std::fmt::Debug for DnsServerCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServerCertificate")
            .field("serial", &self.issued.serial)
            .finish_non_exhaustive()
    }
}

/// A refusal to certify: either the request is wrong or the CA cannot sign.
#[derive(Debug, thiserror::Error)]
pub enum CertifyError {
    #[error(transparent)]
    Csr(#[from] CsrError),
    #[error(transparent)]
    Ca(#[from] CaError),
}

/// 127 random bits: the top bit is cleared so the DER INTEGER is positive, and the first byte is
/// kept non-zero so the encoding stays 16 bytes long.
fn random_serial() -> Result<SerialNumber, CaError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| CaError::Key("the system random source failed".to_owned()))?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

#[cfg(test)]
mod tests {
    use rcgen::CertifiedIssuer;
    use webpki::{EndEntityCert, KeyUsage, anchor_from_trusted_cert};

    use super::*;
    use crate::key::WorkloadKey;

    const HOUR: Duration = Duration::from_secs(3600);

    fn web() -> SpiffeId {
        "spiffe://cluster.local/ns/default/sa/web".parse().unwrap()
    }

    /// Validates `issued` the way rustls would, for client authentication, at `now`.
    fn chains_to(issued: &IssuedCertificate, bundle: &TrustBundle) -> Result<(), webpki::Error> {
        let anchors: Vec<_> = bundle
            .roots()
            .iter()
            .map(|r| anchor_from_trusted_cert(r).unwrap().to_owned())
            .collect();
        let leaf = EndEntityCert::try_from(&issued.leaf)?;
        leaf.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &issued.intermediates,
            rustls_pki_types::UnixTime::now(),
            KeyUsage::client_auth(),
            None,
            None,
        )
        .map(|_| ())
    }

    fn intermediate_of(root: &CertificateAuthority) -> (String, String) {
        let root_key = KeyPair::from_pem(root.key_pem()).unwrap();
        let root_issuer = Issuer::from_ca_cert_der(&root.chain[0], root_key).unwrap();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let key_pem = key.serialize_pem();
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "weft intermediate");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = (SystemTime::now() - HOUR).into();
        params.not_after = (SystemTime::now() + 2 * HOUR).into();
        let cert = CertifiedIssuer::signed_by(params, key, &root_issuer).unwrap();
        (cert.pem(), key_pem)
    }

    #[test]
    fn a_generated_intermediate_signs_leaves_that_chain_to_the_root_only() {
        let root = CertificateAuthority::generate("cluster.local", 24 * HOUR).unwrap();
        let intermediate = root
            .generate_intermediate("cluster.local", 48 * HOUR)
            .unwrap();
        assert_eq!(intermediate.trust_bundle(), root.trust_bundle());
        assert!(
            intermediate
                .subject()
                .contains("weft intermediate CA cluster.local")
        );
        assert!(
            intermediate.not_after() <= root.not_after(),
            "never past the root"
        );
        let key = WorkloadKey::generate().unwrap();
        let issued = intermediate
            .certify(&key.csr_der(&web()).unwrap(), &web(), HOUR)
            .unwrap();
        assert_eq!(
            issued.intermediates.len(),
            1,
            "the intermediate, not the root"
        );
        chains_to(&issued, root.trust_bundle()).unwrap();
        // Reloaded from its PEM (as a Secret would hold it) it is the same CA.
        let reloaded = CertificateAuthority::from_pem(
            intermediate.chain_pem().as_bytes(),
            intermediate.key_pem(),
            None,
        )
        .unwrap();
        assert_eq!(reloaded.trust_bundle(), root.trust_bundle());
    }

    #[test]
    fn a_dns_server_certificate_names_only_its_dns_names_and_chains_to_the_root() {
        let ca = CertificateAuthority::generate("cluster.local", 24 * HOUR).unwrap();
        let names = [
            "weft-control-plane.weft-system.svc",
            "weft-control-plane.weft-system.svc.cluster.local",
        ];
        let server = ca.issue_dns_server(&names, HOUR).unwrap();
        let info = inspect(&server.issued.leaf).unwrap();
        assert_eq!(info.dns_sans, names.map(String::from).to_vec());
        assert!(info.uri_sans.is_empty() && info.identity.is_none());
        assert!(!info.is_ca);
        let anchors: Vec<_> = ca
            .trust_bundle()
            .roots()
            .iter()
            .map(|r| anchor_from_trusted_cert(r).unwrap().to_owned())
            .collect();
        let leaf = EndEntityCert::try_from(&server.issued.leaf).unwrap();
        leaf.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &server.issued.intermediates,
            rustls_pki_types::UnixTime::now(),
            KeyUsage::server_auth(),
            None,
            None,
        )
        .unwrap();
        let name = rustls_pki_types::ServerName::try_from(names[0]).unwrap();
        leaf.verify_is_valid_for_subject_name(&name).unwrap();
        let other = rustls_pki_types::ServerName::try_from("weft-control-plane.other.svc").unwrap();
        assert!(leaf.verify_is_valid_for_subject_name(&other).is_err());
        assert!(ca.issue_dns_server(&[], HOUR).is_err());
    }

    #[test]
    fn a_generated_root_certifies_exactly_the_authorized_identity() {
        let ca = CertificateAuthority::generate("cluster.local", 24 * HOUR).unwrap();
        let key = WorkloadKey::generate().unwrap();
        let issued = ca
            .certify(&key.csr_der(&web()).unwrap(), &web(), HOUR)
            .unwrap();
        let info = inspect(&issued.leaf).unwrap();
        assert_eq!(info.identity, Some(web()));
        assert_eq!(info.uri_sans, vec![web().to_string()]);
        assert!(info.dns_sans.is_empty());
        assert!(!info.is_ca);
        assert_eq!(info.public_key_der, key.public_key_der());
        assert_eq!(info.serial, issued.serial);
        assert!(
            issued.intermediates.is_empty(),
            "a root CA has no intermediates"
        );
        chains_to(&issued, ca.trust_bundle()).unwrap();
    }

    #[test]
    fn leaf_lifetime_follows_the_request_and_never_outlives_the_ca() {
        let ca = CertificateAuthority::generate("cluster.local", 2 * HOUR).unwrap();
        let csr = WorkloadKey::generate().unwrap().csr_der(&web()).unwrap();
        let now = SystemTime::now();
        let short = ca.certify(&csr, &web(), Duration::from_secs(5)).unwrap();
        let remaining = short.not_after.duration_since(now).unwrap();
        assert!(remaining <= Duration::from_secs(6), "{remaining:?}");
        let long = ca.certify(&csr, &web(), 100 * HOUR).unwrap();
        assert_eq!(long.not_after, ca.not_after());
        assert!(inspect(&long.leaf).unwrap().not_after <= ca.not_after());
    }

    #[test]
    fn a_loaded_intermediate_signs_leaves_that_chain_to_the_offline_root() {
        let root = CertificateAuthority::generate("cluster.local", 24 * HOUR).unwrap();
        let (intermediate_pem, intermediate_key) = intermediate_of(&root);
        let chain = format!("{intermediate_pem}{}", root.chain_pem());
        let ca = CertificateAuthority::from_pem(chain.as_bytes(), &intermediate_key, None).unwrap();
        assert_eq!(ca.trust_bundle(), root.trust_bundle());
        let csr = WorkloadKey::generate().unwrap().csr_der(&web()).unwrap();
        let issued = ca.certify(&csr, &web(), HOUR).unwrap();
        assert_eq!(issued.intermediates.len(), 1);
        chains_to(&issued, root.trust_bundle()).unwrap();
        // The intermediate expires in two hours, so no leaf may go past that.
        let long = ca.certify(&csr, &web(), 10 * HOUR).unwrap();
        assert!(long.not_after <= SystemTime::now() + 2 * HOUR);

        // Without the root in the chain and without a bundle, nothing says what to trust.
        let err =
            CertificateAuthority::from_pem(intermediate_pem.as_bytes(), &intermediate_key, None)
                .unwrap_err();
        assert!(matches!(err, CaError::NoRoot { .. }), "{err}");
        let with_bundle = CertificateAuthority::from_pem(
            intermediate_pem.as_bytes(),
            &intermediate_key,
            Some(root.trust_bundle().clone()),
        )
        .unwrap();
        assert_eq!(with_bundle.intermediates().len(), 1);
    }

    #[test]
    fn a_reloaded_ca_keeps_its_identity() {
        let ca = CertificateAuthority::generate("cluster.local", 24 * HOUR).unwrap();
        let again =
            CertificateAuthority::from_pem(ca.chain_pem().as_bytes(), ca.key_pem(), None).unwrap();
        assert_eq!(again.trust_bundle(), ca.trust_bundle());
        let csr = WorkloadKey::generate().unwrap().csr_der(&web()).unwrap();
        chains_to(
            &again.certify(&csr, &web(), HOUR).unwrap(),
            ca.trust_bundle(),
        )
        .unwrap();
    }

    #[test]
    fn refuses_a_key_that_does_not_match_and_a_leaf_posing_as_a_ca() {
        let ca = CertificateAuthority::generate("cluster.local", 24 * HOUR).unwrap();
        let other = CertificateAuthority::generate("cluster.local", 24 * HOUR).unwrap();
        let err = CertificateAuthority::from_pem(ca.chain_pem().as_bytes(), other.key_pem(), None)
            .unwrap_err();
        assert!(matches!(err, CaError::KeyMismatch { .. }), "{err}");

        let key = WorkloadKey::generate().unwrap();
        let leaf = ca
            .certify(&key.csr_der(&web()).unwrap(), &web(), HOUR)
            .unwrap();
        let leaf_pem = crate::certificates_to_pem([&leaf.leaf]);
        let key_pem =
            crate::pem_io::encode("PRIVATE KEY", key.private_key_der().secret_pkcs8_der());
        let err = CertificateAuthority::from_pem(leaf_pem.as_bytes(), &key_pem, None).unwrap_err();
        assert!(matches!(err, CaError::NotACa { .. }), "{err}");
    }
}

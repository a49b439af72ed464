//! What a certificate says, read with x509-parser (a maintained, pure-Rust X.509 parser).
//!
//! Used by `weft cert inspect`, by the proxy to learn its own expiry and a peer's identity, and
//! by the CA to check what it loads.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::digest::{SHA256, digest};
use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use crate::error::{CaError, PemError};
use crate::identity::SpiffeId;
use crate::pem_io::certificates_from_pem;

/// The parts of a certificate an operator or a peer cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    pub subject: String,
    pub issuer: String,
    /// Lowercase hex, as `openssl x509 -serial` prints it (without the colons).
    pub serial: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// The SPIFFE identity, when the certificate has exactly one URI SAN and it is a weft ID.
    pub identity: Option<SpiffeId>,
    pub uri_sans: Vec<String>,
    pub dns_sans: Vec<String>,
    pub is_ca: bool,
    /// Subject equals issuer and the signature verifies with the certificate's own key.
    pub self_signed: bool,
    /// DER SubjectPublicKeyInfo.
    pub public_key_der: Vec<u8>,
    /// SHA-256 of the DER certificate, lowercase hex.
    pub sha256_fingerprint: String,
}

impl CertificateInfo {
    /// Whether `now` falls inside the validity period.
    pub fn is_valid_at(&self, now: SystemTime) -> bool {
        self.not_before <= now && now < self.not_after
    }

    /// The whole validity period.
    pub fn lifetime(&self) -> Duration {
        self.not_after
            .duration_since(self.not_before)
            .unwrap_or_default()
    }
}

/// Reads one DER certificate.
pub fn inspect(der: &CertificateDer<'_>) -> Result<CertificateInfo, CaError> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| CaError::Parse(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CaError::Parse(format!(
            "{} trailing bytes after the certificate",
            rest.len()
        )));
    }
    let mut uri_sans = Vec::new();
    let mut dns_sans = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::URI(uri) => uri_sans.push((*uri).to_owned()),
                GeneralName::DNSName(dns) => dns_sans.push((*dns).to_owned()),
                _ => {}
            }
        }
    }
    let identity = match uri_sans.as_slice() {
        [only] => only.parse().ok(),
        _ => None,
    };
    let self_signed =
        cert.subject().as_raw() == cert.issuer().as_raw() && cert.verify_signature(None).is_ok();
    Ok(CertificateInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: hex(cert.raw_serial()),
        not_before: to_system_time(cert.validity().not_before.timestamp()),
        not_after: to_system_time(cert.validity().not_after.timestamp()),
        identity,
        uri_sans,
        dns_sans,
        is_ca: cert.is_ca(),
        self_signed,
        public_key_der: cert.public_key().raw.to_vec(),
        sha256_fingerprint: hex(digest(&SHA256, der).as_ref()),
    })
}

/// Reads every certificate in a PEM text; `what` names the source in errors.
pub fn inspect_pem(text: &[u8], what: &str) -> Result<Vec<CertificateInfo>, CaError> {
    certificates_from_pem(text, what)
        .map_err(|e: PemError| CaError::Pem(e))?
        .iter()
        .map(inspect)
        .collect()
}

/// RFC 3339 in UTC, second precision: `2026-11-21T16:57:08Z`.
pub fn format_time(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_else(|e| -(e.duration().as_secs() as i64));
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("@{secs}"))
}

fn to_system_time(unix: i64) -> SystemTime {
    if unix >= 0 {
        UNIX_EPOCH + Duration::from_secs(unix as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(unix.unsigned_abs())
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

//! The workload's private key and the CSR that asks for its identity.
//!
//! The key is generated in memory by the process that will use it and is never written out or
//! sent anywhere: only the CSR (public key + requested identity, signed by the key) leaves.

use rcgen::{
    CertificateParams, DistinguishedName, KeyPair, PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType,
};
use rustls_pki_types::PrivatePkcs8KeyDer;

use crate::error::CaError;
use crate::identity::SpiffeId;

/// An ECDSA P-256 key pair held in memory.
pub struct WorkloadKey {
    key_pair: KeyPair,
}

impl std::fmt::Debug for WorkloadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkloadKey(ECDSA P-256, private)")
    }
}

impl WorkloadKey {
    /// A fresh P-256 key from the system's secure random source.
    pub fn generate() -> Result<Self, CaError> {
        let key_pair = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        Ok(Self { key_pair })
    }

    /// A DER-encoded PKCS#10 request whose only subject-alternative name is `identity`.
    pub fn csr_der(&self, identity: &SpiffeId) -> Result<Vec<u8>, CaError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = vec![uri_san(identity)?];
        let csr = params.serialize_request(&self.key_pair)?;
        Ok(csr.der().to_vec())
    }

    /// The private key for this process's TLS stack. Do not log or persist it.
    pub fn private_key_der(&self) -> PrivatePkcs8KeyDer<'static> {
        PrivatePkcs8KeyDer::from(self.key_pair.serialize_der())
    }

    /// The DER SubjectPublicKeyInfo, to match a certificate against this key.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.key_pair.subject_public_key_info()
    }
}

pub(crate) fn uri_san(identity: &SpiffeId) -> Result<SanType, CaError> {
    let uri = identity.to_string().try_into()?;
    Ok(SanType::URI(uri))
}

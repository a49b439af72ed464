//! Checking a certificate signing request before anything is signed.
//!
//! The CA never copies what a CSR asks for into a certificate. It takes only the public key, after
//! checking that the request is well formed, that the key is P-256, that the request is signed by
//! that key (so the caller holds the private half), and that the one identity it asks for is the
//! identity the caller was authenticated as. Everything else in the leaf comes from the CA.

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_DSA, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION, OID_SIG_ED448, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::error::CsrError;
use crate::identity::SpiffeId;

/// A CSR that passed every check: the identity to certify and the key to certify it for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedCertificate {
    identity: SpiffeId,
    public_key_der: Vec<u8>,
}

impl RequestedCertificate {
    /// Parses `csr_der` and checks it against the identity the caller was authenticated as.
    pub fn from_csr(csr_der: &[u8], authorized: &SpiffeId) -> Result<Self, CsrError> {
        let (rest, csr) = X509CertificationRequest::from_der(csr_der)
            .map_err(|e| CsrError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(CsrError::Malformed(format!(
                "{} trailing bytes after the request",
                rest.len()
            )));
        }
        let key = &csr.certification_request_info.subject_pki;
        check_p256(key)?;
        csr.verify_signature().map_err(|_| CsrError::BadSignature)?;
        let identity = requested_identity(&csr, authorized)?;
        Ok(Self {
            identity,
            public_key_der: key.raw.to_vec(),
        })
    }

    pub fn identity(&self) -> &SpiffeId {
        &self.identity
    }

    /// DER SubjectPublicKeyInfo of the requesting workload's key.
    pub fn public_key_der(&self) -> &[u8] {
        &self.public_key_der
    }
}

fn check_p256(key: &SubjectPublicKeyInfo<'_>) -> Result<(), CsrError> {
    let algorithm = &key.algorithm.algorithm;
    let curve = key
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok());
    if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY && curve.as_ref() == Some(&OID_EC_P256) {
        return Ok(());
    }
    let found = if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        match curve {
            Some(c) if c == OID_NIST_EC_P384 => "ECDSA P-384".to_owned(),
            Some(c) if c == OID_NIST_EC_P521 => "ECDSA P-521".to_owned(),
            Some(c) => format!("EC key on curve {c}"),
            None => "EC key without a named curve".to_owned(),
        }
    } else if *algorithm == OID_PKCS1_RSAENCRYPTION {
        "RSA".to_owned()
    } else if *algorithm == OID_SIG_ED25519 {
        "Ed25519".to_owned()
    } else if *algorithm == OID_SIG_ED448 {
        "Ed448".to_owned()
    } else if *algorithm == OID_KEY_TYPE_DSA {
        "DSA".to_owned()
    } else {
        format!("key algorithm {algorithm}")
    };
    Err(CsrError::UnsupportedKey { found })
}

fn requested_identity(
    csr: &X509CertificationRequest<'_>,
    authorized: &SpiffeId,
) -> Result<SpiffeId, CsrError> {
    let names: Vec<&GeneralName<'_>> = csr
        .requested_extensions()
        .into_iter()
        .flatten()
        .filter_map(|ext| match ext {
            ParsedExtension::SubjectAlternativeName(san) => Some(san.general_names.iter()),
            _ => None,
        })
        .flatten()
        .collect();
    let mismatch = |requested: String| CsrError::IdentityMismatch {
        requested,
        authorized: authorized.clone(),
    };
    match names.as_slice() {
        [] => Err(CsrError::MissingIdentity {
            authorized: authorized.clone(),
        }),
        [GeneralName::URI(uri)] => match uri.parse::<SpiffeId>() {
            Ok(id) if id == *authorized => Ok(id),
            _ => Err(mismatch((*uri).to_owned())),
        },
        names => Err(mismatch(
            names
                .iter()
                .map(|n| describe(n))
                .collect::<Vec<_>>()
                .join(", "),
        )),
    }
}

fn describe(name: &GeneralName<'_>) -> String {
    match name {
        GeneralName::URI(uri) => (*uri).to_owned(),
        GeneralName::DNSName(dns) => format!("DNS:{dns}"),
        GeneralName::RFC822Name(email) => format!("email:{email}"),
        GeneralName::IPAddress(ip) => format!("IP address ({} bytes)", ip.len()),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{
        CertificateParams, DistinguishedName, KeyPair, PKCS_ECDSA_P384_SHA384, PKCS_ED25519,
        SanType,
    };

    use super::*;
    use crate::key::WorkloadKey;

    fn web() -> SpiffeId {
        "spiffe://cluster.local/ns/default/sa/web".parse().unwrap()
    }

    fn csr_with(key: &KeyPair, sans: Vec<SanType>) -> Vec<u8> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = sans;
        params.serialize_request(key).unwrap().der().to_vec()
    }

    #[test]
    fn accepts_a_workload_csr_for_its_own_identity() {
        let key = WorkloadKey::generate().unwrap();
        let req = RequestedCertificate::from_csr(&key.csr_der(&web()).unwrap(), &web()).unwrap();
        assert_eq!(req.identity(), &web());
        assert_eq!(req.public_key_der(), key.public_key_der());
    }

    #[test]
    fn refuses_another_identity() {
        let key = WorkloadKey::generate().unwrap();
        let db: SpiffeId = "spiffe://cluster.local/ns/default/sa/db".parse().unwrap();
        let err = RequestedCertificate::from_csr(&key.csr_der(&db).unwrap(), &web()).unwrap_err();
        assert_eq!(
            err,
            CsrError::IdentityMismatch {
                requested: db.to_string(),
                authorized: web()
            }
        );
    }

    #[test]
    fn refuses_extra_names_and_missing_names() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let extra = csr_with(
            &key,
            vec![
                SanType::URI(web().to_string().try_into().unwrap()),
                SanType::DnsName("evil.example".try_into().unwrap()),
            ],
        );
        let err = RequestedCertificate::from_csr(&extra, &web()).unwrap_err();
        assert!(
            err.to_string()
                .contains("asks for spiffe://cluster.local/ns/default/sa/web, DNS:evil.example"),
            "{err}"
        );
        let none = csr_with(&key, vec![]);
        assert!(matches!(
            RequestedCertificate::from_csr(&none, &web()),
            Err(CsrError::MissingIdentity { .. })
        ));
    }

    #[test]
    fn refuses_keys_other_than_p256_by_name() {
        for (alg, name) in [
            (&PKCS_ECDSA_P384_SHA384, "ECDSA P-384"),
            (&PKCS_ED25519, "Ed25519"),
        ] {
            let key = KeyPair::generate_for(alg).unwrap();
            let csr = csr_with(
                &key,
                vec![SanType::URI(web().to_string().try_into().unwrap())],
            );
            assert_eq!(
                RequestedCertificate::from_csr(&csr, &web()).unwrap_err(),
                CsrError::UnsupportedKey {
                    found: name.to_owned()
                }
            );
        }
    }

    #[test]
    fn refuses_garbage_and_tampered_requests() {
        assert!(matches!(
            RequestedCertificate::from_csr(b"not a csr", &web()),
            Err(CsrError::Malformed(_))
        ));
        let key = WorkloadKey::generate().unwrap();
        let mut csr = key.csr_der(&web()).unwrap();
        // Flip a bit in the signature, which is the last field of the request.
        let last = csr.len() - 1;
        csr[last] ^= 0x01;
        assert_eq!(
            RequestedCertificate::from_csr(&csr, &web()).unwrap_err(),
            CsrError::BadSignature
        );
    }
}

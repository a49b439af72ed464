//! Errors, one enum per thing that can go wrong, each message readable by an operator.

use crate::identity::SpiffeId;

/// Why a string is not a weft SPIFFE ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("SPIFFE ID \"{id}\" must start with \"spiffe://\"")]
    Scheme { id: String },
    #[error("SPIFFE ID is {len} bytes long; at most 2048 are allowed")]
    TooLong { len: usize },
    #[error("a SPIFFE ID cannot contain '{character}' (no query or fragment)")]
    QueryOrFragment { character: char },
    #[error(
        "the trust domain is empty (expected spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>)"
    )]
    EmptyTrustDomain,
    #[error(
        "trust domain \"{trust_domain}\" contains '{character}' (use lowercase letters, digits, '.', '-' and '_')"
    )]
    TrustDomainCharacter {
        trust_domain: String,
        character: char,
    },
    #[error("path \"{path}\" is not /ns/<namespace>/sa/<service-account>")]
    Path { path: String },
    #[error("the {what} is empty")]
    EmptySegment { what: &'static str },
    #[error("{what} is {len} characters long; at most {max} are allowed")]
    SegmentTooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error(
        "{what} \"{name}\" contains '{character}', which is not allowed (use lowercase letters, digits and '-')"
    )]
    SegmentCharacter {
        what: &'static str,
        name: String,
        character: char,
    },
    #[error("{what} \"{name}\" must start and end with a letter or digit")]
    SegmentEdge { what: &'static str, name: String },
}

/// Why the CA refuses to sign a certificate signing request.
///
/// Each variant is a different refusal the control plane reports with its own status, so a
/// misconfigured workload learns exactly what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    #[error("malformed CSR: {0}")]
    Malformed(String),
    #[error("the CSR's signature does not verify with its own public key")]
    BadSignature,
    #[error("unsupported key in CSR: {found}; weft issues certificates only for ECDSA P-256 keys")]
    UnsupportedKey { found: String },
    #[error("the CSR names no identity: it must carry exactly one URI SAN, {authorized}")]
    MissingIdentity { authorized: SpiffeId },
    #[error(
        "the CSR asks for {requested}, but the caller is authenticated as {authorized}; a workload can only get a certificate for its own identity"
    )]
    IdentityMismatch {
        requested: String,
        authorized: SpiffeId,
    },
}

/// Problems creating, loading or using the certificate authority itself.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error(transparent)]
    Pem(#[from] PemError),
    #[error("the CA private key is not usable: {0}")]
    Key(String),
    #[error("the CA private key does not belong to the CA certificate (subject {subject})")]
    KeyMismatch { subject: String },
    #[error("certificate {subject} is not a CA (basicConstraints cA is not true)")]
    NotACa { subject: String },
    #[error(
        "no root certificate: the chain ends at {last_subject}, which is not self-signed; add the root to the chain file or give a trust bundle"
    )]
    NoRoot { last_subject: String },
    #[error("a trust bundle needs at least one root certificate")]
    EmptyBundle,
    #[error("the CA certificate {subject} expired at {not_after}")]
    Expired { subject: String, not_after: String },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot parse certificate: {0}")]
    Parse(String),
}

/// A PEM input that does not hold what it should.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    #[error("{what}: not valid PEM: {reason}")]
    Invalid { what: String, reason: String },
    #[error("{what}: no {label} block found")]
    Missing { what: String, label: &'static str },
}

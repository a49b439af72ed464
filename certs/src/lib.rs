//! weft's identity layer, with no runtime and no network.
//!
//! Every workload in a weft mesh is named by a SPIFFE ID
//! (`spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`) carried as the only URI
//! subject-alternative name of a short-lived X.509 certificate. This crate holds everything needed
//! to create, check and read those certificates, so that the control plane (which signs) and the
//! proxy (which requests and verifies) agree on one definition:
//!
//! - [`SpiffeId`]: the parsed identity, rejecting malformed ids with a message saying what is
//!   wrong;
//! - [`WorkloadKey`]: an ECDSA P-256 key generated in memory, and the CSR that asks for an
//!   identity;
//! - [`CertificateAuthority`]: a self-signed root or a loaded root/intermediate that turns a CSR
//!   into a leaf for exactly the identity the caller was authenticated as;
//! - [`TrustBundle`]: several roots at once, so a root can be rotated with overlap;
//! - [`inspect`]: what a certificate says (identity, validity, issuer) for humans and for checks;
//! - [`tls_provider`]: the cryptography every weft TLS connection uses (post-quantum key exchange
//!   first).

mod authority;
mod bundle;
mod csr;
mod error;
mod identity;
mod inspect;
mod key;
mod pem_io;
mod tls_provider;

pub use authority::{
    CertificateAuthority, CertifyError, DnsServerCertificate, IssuedCertificate, MIN_LEAF_LIFETIME,
};
pub use bundle::TrustBundle;
pub use csr::RequestedCertificate;
pub use error::{CaError, CsrError, IdentityError, PemError};
pub use identity::{DEFAULT_TRUST_DOMAIN, SpiffeId};
pub use inspect::{CertificateInfo, format_time, inspect, inspect_pem};
pub use key::WorkloadKey;
pub use pem_io::{certificates_from_pem, certificates_to_pem};
pub use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
pub use tls_provider::{install_tls_provider, tls_provider};

//! Trust bundles: the set of root certificates a peer's chain must end in.
//!
//! A bundle holds several roots so a root can be rotated with overlap: add the new root to every
//! bundle first, switch the CA to it, and drop the old root once no certificate it signed is live.

use rustls_pki_types::CertificateDer;

use crate::error::CaError;
use crate::inspect::inspect;
use crate::pem_io::{certificates_from_pem, certificates_to_pem};

/// A non-empty, duplicate-free list of CA certificates trusted as roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustBundle {
    roots: Vec<CertificateDer<'static>>,
}

impl TrustBundle {
    /// A bundle of `roots`, each checked to be a parsable CA certificate; duplicates are dropped.
    pub fn new(roots: Vec<CertificateDer<'static>>) -> Result<Self, CaError> {
        let mut unique: Vec<CertificateDer<'static>> = Vec::with_capacity(roots.len());
        for root in roots {
            let info = inspect(&root).map_err(|e| CaError::Parse(e.to_string()))?;
            if !info.is_ca {
                return Err(CaError::NotACa {
                    subject: info.subject,
                });
            }
            if !unique.contains(&root) {
                unique.push(root);
            }
        }
        if unique.is_empty() {
            return Err(CaError::EmptyBundle);
        }
        Ok(Self { roots: unique })
    }

    /// Parses every certificate in a PEM text; `what` names the source in errors.
    pub fn from_pem(text: &[u8], what: &str) -> Result<Self, CaError> {
        Self::new(certificates_from_pem(text, what)?)
    }

    pub fn roots(&self) -> &[CertificateDer<'static>] {
        &self.roots
    }

    pub fn contains(&self, cert: &CertificateDer<'_>) -> bool {
        self.roots.iter().any(|r| r.as_ref() == cert.as_ref())
    }

    /// This bundle plus the roots of `other` it does not have yet.
    pub fn merged(&self, other: &TrustBundle) -> TrustBundle {
        let mut roots = self.roots.clone();
        roots.extend(other.roots.iter().filter(|r| !self.contains(r)).cloned());
        TrustBundle { roots }
    }

    pub fn to_pem(&self) -> String {
        certificates_to_pem(&self.roots)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::CertificateAuthority;

    #[test]
    fn holds_several_roots_without_duplicates() {
        let a = CertificateAuthority::generate("td", Duration::from_secs(3600)).unwrap();
        let b = CertificateAuthority::generate("td", Duration::from_secs(3600)).unwrap();
        let both = a.trust_bundle().merged(b.trust_bundle());
        assert_eq!(both.roots().len(), 2);
        assert_eq!(both.merged(a.trust_bundle()), both);
        let reparsed = TrustBundle::from_pem(both.to_pem().as_bytes(), "test").unwrap();
        assert_eq!(reparsed, both);
    }

    #[test]
    fn refuses_an_empty_bundle() {
        assert!(matches!(
            TrustBundle::new(vec![]),
            Err(CaError::EmptyBundle)
        ));
    }
}

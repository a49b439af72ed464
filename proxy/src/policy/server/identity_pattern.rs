//! Which callers a rule names: one SPIFFE ID, every service account of a namespace
//! (`spiffe://<td>/ns/<ns>/*`) or a whole trust domain (`spiffe://<td>/*`).
//!
//! A wildcard is a prefix that ends at a `/`, so `spiffe://td/ns/web/*` never admits
//! `spiffe://td/ns/web-admin/sa/x`.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityPattern {
    Exact(String),
    /// Everything after this prefix, which ends with `/`.
    Prefix(String),
}

impl IdentityPattern {
    pub fn parse(text: &str) -> Self {
        match text.strip_suffix('*') {
            Some(prefix) if prefix.ends_with('/') => Self::Prefix(prefix.to_owned()),
            _ => Self::Exact(text.to_owned()),
        }
    }

    pub fn matches(&self, identity: &str) -> bool {
        match self {
            Self::Exact(id) => id == identity,
            Self::Prefix(prefix) => identity.starts_with(prefix.as_str()),
        }
    }
}

/// Whether any of `patterns` names `identity`.
pub fn any_matches(patterns: &[IdentityPattern], identity: &str) -> bool {
    patterns.iter().any(|p| p.matches(identity))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_ends_at_a_path_segment() {
        let namespace = IdentityPattern::parse("spiffe://cluster.local/ns/web/*");
        assert!(namespace.matches("spiffe://cluster.local/ns/web/sa/frontend"));
        assert!(!namespace.matches("spiffe://cluster.local/ns/web-admin/sa/x"));
        assert!(!namespace.matches("spiffe://other.td/ns/web/sa/frontend"));
        let domain = IdentityPattern::parse("spiffe://cluster.local/*");
        assert!(domain.matches("spiffe://cluster.local/ns/billing/sa/x"));
        assert!(!domain.matches("spiffe://cluster.local.evil/ns/billing/sa/x"));
        let exact = IdentityPattern::parse("spiffe://cluster.local/ns/web/sa/frontend");
        assert!(exact.matches("spiffe://cluster.local/ns/web/sa/frontend"));
        assert!(!exact.matches("spiffe://cluster.local/ns/web/sa/frontend2"));
    }
}

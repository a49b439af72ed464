//! The workload identity: a SPIFFE ID of the shape weft issues.
//!
//! weft only ever issues `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`, mirroring
//! the Kubernetes namespace and service account a pod runs as. Parsing is strict and explains the
//! first problem it finds, because an identity typed into a flag or a policy file that silently
//! means something else would be a security bug.

use std::fmt;
use std::str::FromStr;

use crate::error::IdentityError;

/// The trust domain used when none is configured, as in Kubernetes' default cluster domain.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

const SCHEME: &str = "spiffe://";
/// The SPIFFE specification caps a whole ID at 2048 bytes.
const MAX_ID_LEN: usize = 2048;
/// Kubernetes namespaces are DNS labels.
const MAX_NAMESPACE_LEN: usize = 63;
/// Kubernetes service-account names are DNS subdomains.
const MAX_SERVICE_ACCOUNT_LEN: usize = 253;

/// A parsed `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>` identity.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    trust_domain: String,
    namespace: String,
    service_account: String,
}

impl SpiffeId {
    /// Builds an identity from its parts, checking each the way [`FromStr`] does.
    pub fn new(
        trust_domain: &str,
        namespace: &str,
        service_account: &str,
    ) -> Result<Self, IdentityError> {
        // The length of the ID as displayed, so that what `new` builds always parses.
        let len = SCHEME.len() + trust_domain.len() + namespace.len() + service_account.len() + 8;
        if len > MAX_ID_LEN {
            return Err(IdentityError::TooLong { len });
        }
        check_trust_domain(trust_domain)?;
        check_name("namespace", namespace, MAX_NAMESPACE_LEN, false)?;
        check_name(
            "service account",
            service_account,
            MAX_SERVICE_ACCOUNT_LEN,
            true,
        )?;
        Ok(Self {
            trust_domain: trust_domain.to_owned(),
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
        })
    }

    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn service_account(&self) -> &str {
        &self.service_account
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SCHEME}{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

impl FromStr for SpiffeId {
    type Err = IdentityError;

    fn from_str(id: &str) -> Result<Self, Self::Err> {
        if id.len() > MAX_ID_LEN {
            return Err(IdentityError::TooLong { len: id.len() });
        }
        let rest = id
            .strip_prefix(SCHEME)
            .ok_or_else(|| IdentityError::Scheme { id: id.to_owned() })?;
        if let Some(c) = rest.chars().find(|c| matches!(c, '?' | '#')) {
            return Err(IdentityError::QueryOrFragment { character: c });
        }
        let (trust_domain, path) = rest.split_once('/').unwrap_or((rest, ""));
        let segments: Vec<&str> = path.split('/').collect();
        match segments.as_slice() {
            ["ns", namespace, "sa", service_account] => {
                Self::new(trust_domain, namespace, service_account)
            }
            _ => {
                check_trust_domain(trust_domain)?;
                Err(IdentityError::Path {
                    path: format!("/{path}"),
                })
            }
        }
    }
}

impl serde::Serialize for SpiffeId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Deserializing parses, so a bad identity in a YAML file is reported at its line.
impl<'de> serde::Deserialize<'de> for SpiffeId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

fn check_trust_domain(trust_domain: &str) -> Result<(), IdentityError> {
    if trust_domain.is_empty() {
        return Err(IdentityError::EmptyTrustDomain);
    }
    if let Some(c) = trust_domain
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_')))
    {
        return Err(IdentityError::TrustDomainCharacter {
            trust_domain: trust_domain.to_owned(),
            character: c,
        });
    }
    Ok(())
}

/// Namespaces are DNS labels; service accounts are DNS subdomains (dots allowed).
fn check_name(
    what: &'static str,
    name: &str,
    max_len: usize,
    dots_allowed: bool,
) -> Result<(), IdentityError> {
    if name.is_empty() {
        return Err(IdentityError::EmptySegment { what });
    }
    if name.len() > max_len {
        return Err(IdentityError::SegmentTooLong {
            what,
            len: name.len(),
            max: max_len,
        });
    }
    let allowed = |c: char| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (dots_allowed && c == '.')
    };
    if let Some(c) = name.chars().find(|c| !allowed(*c)) {
        return Err(IdentityError::SegmentCharacter {
            what,
            name: name.to_owned(),
            character: c,
        });
    }
    let edges_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !edges_ok(name.chars().next()) || !edges_ok(name.chars().last()) {
        return Err(IdentityError::SegmentEdge {
            what,
            name: name.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_well_formed_id() {
        let id: SpiffeId = "spiffe://cluster.local/ns/default/sa/web".parse().unwrap();
        assert_eq!(id.trust_domain(), "cluster.local");
        assert_eq!(id.namespace(), "default");
        assert_eq!(id.service_account(), "web");
        assert_eq!(id.to_string(), "spiffe://cluster.local/ns/default/sa/web");
        assert_eq!(
            SpiffeId::new("cluster.local", "default", "web").unwrap(),
            id
        );
    }

    #[test]
    fn service_accounts_may_contain_dots_but_namespaces_may_not() {
        assert!("spiffe://td/ns/a/sa/b.c".parse::<SpiffeId>().is_ok());
        let err = "spiffe://td/ns/a.b/sa/c".parse::<SpiffeId>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "namespace \"a.b\" contains '.', which is not allowed (use lowercase letters, digits and '-')"
        );
    }

    #[test]
    fn each_malformation_is_named() {
        let cases = [
            (
                "http://cluster.local/ns/a/sa/b",
                "SPIFFE ID \"http://cluster.local/ns/a/sa/b\" must start with \"spiffe://\"",
            ),
            (
                "spiffe:///ns/a/sa/b",
                "the trust domain is empty (expected spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>)",
            ),
            (
                "spiffe://Cluster.local/ns/a/sa/b",
                "trust domain \"Cluster.local\" contains 'C' (use lowercase letters, digits, '.', '-' and '_')",
            ),
            (
                "spiffe://cluster.local/ns/a",
                "path \"/ns/a\" is not /ns/<namespace>/sa/<service-account>",
            ),
            (
                "spiffe://cluster.local/ns/a/sa/b/",
                "path \"/ns/a/sa/b/\" is not /ns/<namespace>/sa/<service-account>",
            ),
            ("spiffe://cluster.local/ns//sa/b", "the namespace is empty"),
            (
                "spiffe://cluster.local/ns/a/sa/-b",
                "service account \"-b\" must start and end with a letter or digit",
            ),
            (
                "spiffe://cluster.local/ns/a/sa/b?x=1",
                "a SPIFFE ID cannot contain '?' (no query or fragment)",
            ),
            (
                "spiffe://cluster.local:8080/ns/a/sa/b",
                "trust domain \"cluster.local:8080\" contains ':' (use lowercase letters, digits, '.', '-' and '_')",
            ),
        ];
        for (input, message) in cases {
            let err = input.parse::<SpiffeId>().unwrap_err();
            assert_eq!(err.to_string(), message, "for {input}");
        }
    }

    #[test]
    fn length_limits_follow_kubernetes_names() {
        let long_ns = "a".repeat(64);
        let err = format!("spiffe://td/ns/{long_ns}/sa/b")
            .parse::<SpiffeId>()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "namespace is 64 characters long; at most 63 are allowed"
        );
        let long_domain = "a".repeat(2040);
        assert_eq!(
            SpiffeId::new(&long_domain, "ns", "sa"),
            Err(IdentityError::TooLong { len: 2061 }),
            "an ID that would not parse back from its display"
        );
        let longest = SpiffeId::new(&"a".repeat(2048 - 21), "ns", "sa").unwrap();
        assert_eq!(longest.to_string().parse::<SpiffeId>().unwrap(), longest);
        let too_long = format!("spiffe://td/ns/a/sa/{}", "b".repeat(2100));
        assert!(matches!(
            too_long.parse::<SpiffeId>(),
            Err(IdentityError::TooLong { .. })
        ));
    }
}

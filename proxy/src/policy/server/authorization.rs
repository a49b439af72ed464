//! Who may call: allow rules by caller identity, optionally per route.
//!
//! Evaluated before the rate limit, so a refused request costs no tokens. A rule with routes
//! admits only requests of those routes; an opaque TCP connection has no route, so only rules
//! without routes admit it. Callers without a mesh certificate match no rule: they are let in
//! only by `unauthenticated: true` (or `default: allow`).

use weft_api::policy as proto;

use super::identity_pattern::{IdentityPattern, any_matches};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub default_allow: bool,
    pub unauthenticated: bool,
    pub allow: Vec<Allow>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allow {
    pub from: Vec<IdentityPattern>,
    /// Empty: every request and opaque connections.
    pub routes: Vec<String>,
}

impl Authorization {
    pub fn from_proto(authz: proto::Authorization) -> Self {
        Self {
            default_allow: authz.default_allow,
            unauthenticated: authz.unauthenticated,
            allow: authz
                .allow
                .into_iter()
                .map(|rule| Allow {
                    from: rule
                        .from
                        .iter()
                        .map(|f| IdentityPattern::parse(f))
                        .collect(),
                    routes: rule.routes,
                })
                .collect(),
        }
    }

    /// Whether `caller` (`None`: no mesh certificate) may make a request of `route` (`None`:
    /// an opaque connection).
    pub fn allows(&self, caller: Option<&str>, route: Option<&str>) -> bool {
        if self.default_allow {
            return true;
        }
        let Some(caller) = caller else {
            return self.unauthenticated;
        };
        self.allow.iter().any(|rule| {
            any_matches(&rule.from, caller)
                && (rule.routes.is_empty()
                    || route.is_some_and(|r| rule.routes.iter().any(|name| name == r)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authz(unauthenticated: bool) -> Authorization {
        Authorization::from_proto(proto::Authorization {
            default_allow: false,
            unauthenticated,
            allow: vec![
                proto::Allow {
                    from: vec!["spiffe://cluster.local/ns/web/sa/frontend".into()],
                    routes: vec!["read".into()],
                },
                proto::Allow {
                    from: vec!["spiffe://cluster.local/ns/billing/*".into()],
                    routes: vec![],
                },
            ],
        })
    }

    #[test]
    fn rules_admit_by_identity_and_route() {
        let a = authz(false);
        let frontend = Some("spiffe://cluster.local/ns/web/sa/frontend");
        assert!(a.allows(frontend, Some("read")));
        assert!(!a.allows(frontend, Some("write")));
        assert!(!a.allows(frontend, None), "opaque: no route, no admission");
        let billing = Some("spiffe://cluster.local/ns/billing/sa/any");
        assert!(a.allows(billing, Some("write")));
        assert!(a.allows(billing, None));
        assert!(!a.allows(Some("spiffe://cluster.local/ns/web/sa/other"), Some("read")));
        assert!(!a.allows(None, Some("read")));
        assert!(authz(true).allows(None, Some("read")));
    }
}

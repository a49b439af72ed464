//! The server half of a checked document as its service's sidecars receive it: one
//! `weft.policy.v1.ServerPolicy` per port, with `mtls` resolved for that port (a `ports` entry
//! beats `server.mtls`, which beats the proxy's `--inbound-mode`).

use std::time::UNIX_EPOCH;

use weft_api::policy as pb;

use super::model::{Abort, Bucket, Mode, Mtls, Server, ServicePolicy};

/// The server half of one document, ready to be specialised per port.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerHalf {
    /// Everything but `mtls`, which [`ServerHalf::for_port`] fills in.
    policy: pb::ServerPolicy,
    default_mtls: Option<Mtls>,
    ports: Vec<(u16, Mtls)>,
}

impl ServerHalf {
    /// `None` when the document has no `server` section.
    pub fn of(doc: &ServicePolicy) -> Option<Self> {
        let server = doc.server.as_ref()?;
        Some(Self {
            policy: without_mtls(doc, server),
            default_mtls: server.mtls,
            ports: server.ports.clone(),
        })
    }

    /// What the sidecar of an endpoint listening on `port` enforces there.
    pub fn for_port(&self, port: u16) -> pb::ServerPolicy {
        let mtls = self
            .ports
            .iter()
            .find(|(p, _)| *p == port)
            .map(|(_, m)| *m)
            .or(self.default_mtls);
        let mut policy = self.policy.clone();
        policy.mtls = match mtls {
            None => pb::Mtls::Unset,
            Some(Mtls::Strict) => pb::Mtls::Strict,
            Some(Mtls::Permissive) => pb::Mtls::Permissive,
        } as i32;
        policy
    }
}

fn without_mtls(doc: &ServicePolicy, server: &Server) -> pb::ServerPolicy {
    pb::ServerPolicy {
        version: format!("{}@{}", doc.key(), doc.hash),
        mode: match server.mode {
            Mode::Enforce => pb::Mode::Enforce,
            Mode::Audit => pb::Mode::Audit,
        } as i32,
        mtls: pb::Mtls::Unset as i32,
        routes: doc
            .routes
            .iter()
            .map(|r| pb::Route {
                name: r.name.value.clone(),
                r#match: Some(r.matches.clone()),
                rules: None,
            })
            .collect(),
        authorization: server.authorization.as_ref().map(|a| pb::Authorization {
            default_allow: a.default_allow,
            unauthenticated: a.unauthenticated,
            allow: a
                .allow
                .iter()
                .map(|rule| pb::Allow {
                    from: rule.from.clone(),
                    routes: rule.routes.clone(),
                })
                .collect(),
        }),
        rate_limit: server.rate_limit.as_ref().map(|r| pb::RateLimit {
            total: r.total.map(bucket),
            per_identity: r.per_identity.map(bucket),
            overrides: r
                .overrides
                .iter()
                .map(|(from, b)| pb::IdentityBucket {
                    from: from.clone(),
                    bucket: Some(bucket(*b)),
                })
                .collect(),
        }),
        faults: server
            .faults
            .iter()
            .map(|f| {
                let (abort_status, abort_grpc, abort_percent) = match f.abort {
                    Some((Abort::Status(s), p)) => (s, 0, p),
                    Some((Abort::Grpc(c), p)) => (0, c, p),
                    None => (0, 0, 0),
                };
                let (delay_ms, delay_percent) = f.delay.unwrap_or((0, 0));
                pb::Fault {
                    routes: f.routes.clone(),
                    from: f.from.clone(),
                    abort_status,
                    abort_grpc,
                    abort_percent,
                    delay_ms,
                    delay_percent,
                    until_unix_ms: f
                        .until
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
                }
            })
            .collect(),
    }
}

fn bucket(b: Bucket) -> pb::Bucket {
    pb::Bucket {
        rps: b.rps,
        burst: b.burst,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_document(yaml: &str) -> ServicePolicy {
        let files = [("pay.yaml".to_owned(), yaml.as_bytes().to_vec())];
        let mut loaded = crate::policy::load::check(&files).expect("the document is valid");
        loaded.remove(0).policy
    }

    #[test]
    fn mtls_is_resolved_per_port_and_faults_keep_their_expiry() {
        let yaml = "apiVersion: weft.dev/v1alpha1\nkind: ServicePolicy\nmetadata: {name: pay, namespace: prod}\nspec:\n  routes:\n    - name: read\n      match: {pathPrefix: /v1, methods: [GET]}\n  server:\n    mode: audit\n    mtls: strict\n    ports: [{port: 9090, mtls: permissive}]\n    authorization:\n      allow: [{from: [\"spiffe://cluster.local/ns/web/*\"], routes: [read]}]\n    rateLimit: {perIdentity: {rps: 10}}\n    faults:\n      - {routes: [read], abort: {grpc: unavailable, percent: 50}, until: 2026-12-02T00:00:00Z}\n";
        let doc = check_document(yaml);
        let half = ServerHalf::of(&doc).unwrap();
        let on_8080 = half.for_port(8080);
        assert_eq!(on_8080.mtls(), pb::Mtls::Strict);
        assert_eq!(half.for_port(9090).mtls(), pb::Mtls::Permissive);
        assert_eq!(on_8080.mode(), pb::Mode::Audit);
        assert_eq!(on_8080.routes[0].name, "read");
        let authz = on_8080.authorization.unwrap();
        assert!(!authz.default_allow && !authz.unauthenticated);
        assert_eq!(authz.allow[0].from, ["spiffe://cluster.local/ns/web/*"]);
        let limit = on_8080.rate_limit.unwrap().per_identity.unwrap();
        assert_eq!((limit.rps, limit.burst), (10, 10));
        let fault = &on_8080.faults[0];
        assert_eq!((fault.abort_grpc, fault.abort_percent), (14, 50));
        assert_eq!(fault.until_unix_ms, 1_796_169_600_000);
        assert!(on_8080.version.starts_with("pay.prod@"));
    }

    #[test]
    fn a_document_without_a_server_section_has_no_server_half() {
        let yaml = "apiVersion: weft.dev/v1alpha1\nkind: ServicePolicy\nmetadata: {name: pay, namespace: prod}\nspec: {}\n";
        assert!(ServerHalf::of(&check_document(yaml)).is_none());
    }
}

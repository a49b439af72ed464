//! Walking `spec.server`: the half the service's own sidecars enforce (mTLS mode,
//! authorization, rate limits, fault drills).

use std::time::SystemTime;

use weft_api::policy_defaults::GRPC_CODES;

use super::model::{Abort, Allow, Authorization, Bucket, Fault, Mode, Mtls, RateLimit, Server};
use super::node::{Node, Pos};
use super::walk::{Cx, index, join};

const MTLS: [(&str, Mtls); 2] = [("strict", Mtls::Strict), ("permissive", Mtls::Permissive)];

/// A route name referenced by an allow rule or a fault, to be checked against `spec.routes`.
pub struct RouteRef {
    pub name: String,
    pub at: Pos,
    pub path: String,
}

pub fn server(cx: &mut Cx, node: &Node, path: &str, refs: &mut Vec<RouteRef>) -> Option<Server> {
    let allowed = [
        "mode",
        "mtls",
        "ports",
        "authorization",
        "rateLimit",
        "faults",
    ];
    let f = cx.map(node, path, &allowed)?;
    let mut server = Server {
        mode: Mode::Enforce,
        mtls: None,
        ports: Vec::new(),
        authorization: None,
        rate_limit: None,
        faults: Vec::new(),
    };
    if let Some(n) = f.get("mode") {
        let modes = [("enforce", Mode::Enforce), ("audit", Mode::Audit)];
        server.mode = cx
            .choice(n, &join(path, "mode"), &modes)
            .unwrap_or(Mode::Enforce);
    }
    if let Some(n) = f.get("mtls") {
        server.mtls = cx.choice(n, &join(path, "mtls"), &MTLS);
    }
    if let Some(n) = f.get("ports") {
        let path = join(path, "ports");
        for (i, item) in cx.list(n, &path).unwrap_or_default().iter().enumerate() {
            let path = index(&path, i);
            let Some(p) = cx.map(item, &path, &["port", "mtls"]) else {
                continue;
            };
            let port = match p.get("port") {
                Some(n) => cx.integer(n, &join(&path, "port"), 1, 65535),
                None => {
                    cx.problem(item.at, &join(&path, "port"), "missing");
                    None
                }
            };
            let mtls = match p.get("mtls") {
                Some(n) => cx.choice(n, &join(&path, "mtls"), &MTLS),
                None => {
                    cx.problem(item.at, &join(&path, "mtls"), "missing");
                    None
                }
            };
            if let (Some(port), Some(mtls)) = (port, mtls) {
                let port = u16::try_from(port).unwrap_or_default();
                if server.ports.iter().any(|(p, _)| *p == port) {
                    cx.problem(
                        item.at,
                        &join(&path, "port"),
                        format!("port {port} is listed twice"),
                    );
                }
                server.ports.push((port, mtls));
            }
        }
    }
    if let Some(n) = f.get("authorization") {
        server.authorization = authorization(cx, n, &join(path, "authorization"), refs);
    }
    if let Some(n) = f.get("rateLimit") {
        server.rate_limit = rate_limit(cx, n, &join(path, "rateLimit"));
    }
    if let Some(n) = f.get("faults") {
        let path = join(path, "faults");
        for (i, item) in cx.list(n, &path).unwrap_or_default().iter().enumerate() {
            if let Some(fault) = fault(cx, item, &index(&path, i), refs) {
                server.faults.push(fault);
            }
        }
    }
    Some(server)
}

fn route_names(cx: &mut Cx, node: &Node, path: &str, refs: &mut Vec<RouteRef>) -> Vec<String> {
    let names = cx.strings(node, path).unwrap_or_default();
    names
        .into_iter()
        .map(|(name, at, path)| {
            refs.push(RouteRef {
                name: name.clone(),
                at,
                path,
            });
            name
        })
        .collect()
}

/// SPIFFE IDs (`spiffe://<trust-domain>/ns/<ns>/sa/<sa>`) or prefixes ending in `/*`.
fn identities(cx: &mut Cx, node: &Node, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (text, at, path) in cx.strings(node, path).unwrap_or_default() {
        if identity_pattern(cx, &text, at, &path) {
            out.push(text);
        }
    }
    out
}

/// An exact SPIFFE ID, `spiffe://<trust-domain>/ns/<namespace>/*` (every service account of the
/// namespace) or `spiffe://<trust-domain>/*` (the whole trust domain).
fn identity_pattern(cx: &mut Cx, text: &str, at: Pos, path: &str) -> bool {
    // A wildcard is valid when an identity it admits, with made-up remaining parts, is.
    let example = match text.strip_suffix("/*") {
        None => Some(text.to_owned()),
        Some(prefix) => {
            let rest = prefix.strip_prefix("spiffe://").unwrap_or_default();
            match rest.split('/').collect::<Vec<_>>().as_slice() {
                [_] => Some(format!("{prefix}/ns/x/sa/x")),
                [_, "ns", _] => Some(format!("{prefix}/sa/x")),
                _ => None,
            }
        }
    };
    let ok = example.is_some_and(|id| id.parse::<weft_certs::SpiffeId>().is_ok());
    if !ok {
        cx.problem(
            at,
            path,
            format!("`{text}` is not a SPIFFE ID (spiffe://<trust-domain>/ns/<namespace>/sa/<account>), spiffe://<trust-domain>/ns/<namespace>/* or spiffe://<trust-domain>/*"),
        );
    }
    ok
}

fn authorization(
    cx: &mut Cx,
    node: &Node,
    path: &str,
    refs: &mut Vec<RouteRef>,
) -> Option<Authorization> {
    let f = cx.map(node, path, &["default", "unauthenticated", "allow"])?;
    let mut authz = Authorization {
        default_allow: false,
        unauthenticated: false,
        allow: Vec::new(),
    };
    if let Some(n) = f.get("default") {
        authz.default_allow = cx
            .choice(
                n,
                &join(path, "default"),
                &[("allow", true), ("deny", false)],
            )
            .unwrap_or(false);
    }
    if let Some(n) = f.get("unauthenticated") {
        authz.unauthenticated = cx
            .boolean(n, &join(path, "unauthenticated"))
            .unwrap_or(false);
    }
    if let Some(n) = f.get("allow") {
        let path = join(path, "allow");
        for (i, item) in cx.list(n, &path).unwrap_or_default().iter().enumerate() {
            let path = index(&path, i);
            let Some(rule) = cx.map(item, &path, &["from", "routes"]) else {
                continue;
            };
            let from = match rule.get("from") {
                Some(n) => identities(cx, n, &join(&path, "from")),
                None => {
                    cx.problem(
                        item.at,
                        &join(&path, "from"),
                        "missing: name the callers this rule allows",
                    );
                    Vec::new()
                }
            };
            let routes = rule
                .get("routes")
                .map(|n| route_names(cx, n, &join(&path, "routes"), refs))
                .unwrap_or_default();
            authz.allow.push(Allow { from, routes });
        }
    }
    Some(authz)
}

fn bucket(cx: &mut Cx, node: &Node, path: &str, allowed: &[&str]) -> Option<Bucket> {
    let f = cx.map(node, path, allowed)?;
    let rps = match f.get("rps") {
        Some(n) => cx.integer_u32(n, &join(path, "rps"), 1, u32::MAX),
        None => {
            cx.problem(node.at, &join(path, "rps"), "missing");
            None
        }
    };
    let burst = f
        .get("burst")
        .map(|n| cx.integer_u32(n, &join(path, "burst"), 1, u32::MAX));
    let rps = rps?;
    Some(Bucket {
        rps,
        burst: match burst {
            Some(b) => b?,
            None => rps,
        },
    })
}

fn rate_limit(cx: &mut Cx, node: &Node, path: &str) -> Option<RateLimit> {
    let f = cx.map(node, path, &["total", "perIdentity", "overrides"])?;
    let mut limit = RateLimit {
        total: None,
        per_identity: None,
        overrides: Vec::new(),
    };
    if let Some(n) = f.get("total") {
        limit.total = bucket(cx, n, &join(path, "total"), &["rps", "burst"]);
    }
    if let Some(n) = f.get("perIdentity") {
        limit.per_identity = bucket(cx, n, &join(path, "perIdentity"), &["rps", "burst"]);
    }
    if let Some(n) = f.get("overrides") {
        let path = join(path, "overrides");
        for (i, item) in cx.list(n, &path).unwrap_or_default().iter().enumerate() {
            let path = index(&path, i);
            let from = match item.get("from") {
                Some(n) => cx
                    .string(n, &join(&path, "from"))
                    .filter(|text| identity_pattern(cx, text, n.at, &join(&path, "from"))),
                None => {
                    cx.problem(item.at, &join(&path, "from"), "missing");
                    None
                }
            };
            let bucket = bucket(cx, item, &path, &["from", "rps", "burst"]);
            if let (Some(from), Some(bucket)) = (from, bucket) {
                limit.overrides.push((from, bucket));
            }
        }
    }
    Some(limit)
}

fn fault(cx: &mut Cx, node: &Node, path: &str, refs: &mut Vec<RouteRef>) -> Option<Fault> {
    let f = cx.map(node, path, &["routes", "from", "abort", "delay", "until"])?;
    let routes = f
        .get("routes")
        .map(|n| route_names(cx, n, &join(path, "routes"), refs))
        .unwrap_or_default();
    let from = f
        .get("from")
        .map(|n| identities(cx, n, &join(path, "from")))
        .unwrap_or_default();
    let abort = f.get("abort").and_then(|n| {
        let path = join(path, "abort");
        let a = cx.map(n, &path, &["status", "grpc", "percent"])?;
        let kind = match (a.get("status"), a.get("grpc")) {
            (Some(s), None) => cx
                .integer_u32(s, &join(&path, "status"), 100, 599)
                .map(Abort::Status),
            (None, Some(g)) => {
                let names: Vec<(&str, u32)> = GRPC_CODES
                    .iter()
                    .filter(|(_, c)| *c != 0)
                    .copied()
                    .collect();
                cx.choice(g, &join(&path, "grpc"), &names).map(Abort::Grpc)
            }
            (Some(_), Some(g)) => {
                cx.problem(
                    g.at,
                    &join(&path, "grpc"),
                    "give either status or grpc, not both",
                );
                None
            }
            (None, None) => {
                cx.problem(
                    n.at,
                    &path,
                    "missing status (an HTTP status) or grpc (a gRPC code name)",
                );
                None
            }
        };
        let percent = percent_of(cx, n, a.get("percent"), &path);
        Some((kind?, percent?))
    });
    let delay = f.get("delay").and_then(|n| {
        let path = join(path, "delay");
        let d = cx.map(n, &path, &["duration", "percent"])?;
        let duration = match d.get("duration") {
            Some(n) => cx.duration(n, &join(&path, "duration"), false),
            None => {
                cx.problem(n.at, &join(&path, "duration"), "missing");
                None
            }
        };
        let percent = percent_of(cx, n, d.get("percent"), &path);
        Some((duration?, percent?))
    });
    if f.get("abort").is_none() && f.get("delay").is_none() {
        cx.problem(node.at, path, "a fault needs an abort, a delay or both");
    }
    let until = match f.get("until") {
        Some(n) => {
            let text = n.text().unwrap_or_default();
            match humantime::parse_rfc3339(text) {
                Ok(time) => Some(time),
                Err(_) => {
                    cx.problem(
                        n.at,
                        &join(path, "until"),
                        format!("`{text}` is not an RFC 3339 UTC time (e.g. 2026-12-02T00:00:00Z)"),
                    );
                    None
                }
            }
        }
        None => {
            cx.problem(
                node.at,
                &join(path, "until"),
                "missing: every fault must expire (an RFC 3339 UTC time, e.g. 2026-12-02T00:00:00Z)",
            );
            None
        }
    };
    Some(Fault {
        routes,
        from,
        abort,
        delay,
        until: until.unwrap_or(SystemTime::UNIX_EPOCH),
    })
}

fn percent_of(cx: &mut Cx, parent: &Node, node: Option<&Node>, path: &str) -> Option<u32> {
    match node {
        Some(n) => cx.percent(n, &join(path, "percent")),
        None => {
            cx.problem(parent.at, &join(path, "percent"), "missing");
            None
        }
    }
}

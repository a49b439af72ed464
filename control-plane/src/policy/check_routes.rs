//! Walking `spec.routes`: named request classes that both halves refer to by name.

use weft_api::policy::{GrpcMatch, HeaderMatch, Match};

use super::model::{At, Route};
use super::node::{Node, Pos};
use super::walk::{Cx, index, join};

/// Lower-case letters, digits and dashes, 1 to 63 of them, starting and ending alphanumeric.
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

pub fn routes(cx: &mut Cx, node: &Node, path: &str) -> Vec<Route> {
    let mut routes: Vec<Route> = Vec::new();
    for (i, item) in cx.list(node, path).unwrap_or_default().iter().enumerate() {
        let path = index(path, i);
        let Some(f) = cx.map(item, &path, &["name", "match"]) else {
            continue;
        };
        let name = match f.get("name") {
            Some(n) => {
                let here = join(&path, "name");
                cx.string(n, &here).and_then(|name| {
                    if !is_dns_label(&name) {
                        cx.problem(n.at, &here, format!("`{name}` is not a valid route name (lower-case letters, digits and -, at most 63)"));
                        return None;
                    }
                    if let Some(first) = routes.iter().find(|r| r.name.value == name) {
                        // A tree built from JSON (a custom resource) has no positions.
                        let first_at = if first.name.at == Pos::default() { first.name.path.clone() } else { format!("{} ({})", first.name.at, first.name.path) };
                        cx.problem(n.at, &here, format!("route `{name}` is already defined at {first_at}"));
                        return None;
                    }
                    Some(At { value: name, at: n.at, path: here })
                })
            }
            None => {
                cx.problem(item.at, &join(&path, "name"), "missing");
                None
            }
        };
        let (matches, methods) = match f.get("match") {
            Some(n) => route_match(cx, n, &join(&path, "match")),
            None => {
                cx.problem(
                    item.at,
                    &join(&path, "match"),
                    "missing: say which requests belong to the route",
                );
                (Match::default(), Vec::new())
            }
        };
        if let Some(name) = name {
            routes.push(Route {
                name,
                matches,
                methods,
            });
        }
    }
    routes
}

fn route_match(cx: &mut Cx, node: &Node, path: &str) -> (Match, Vec<At<String>>) {
    let mut m = Match::default();
    let mut methods = Vec::new();
    let allowed = ["path", "pathPrefix", "methods", "headers", "grpc"];
    let Some(f) = cx.map(node, path, &allowed) else {
        return (m, methods);
    };
    if allowed.iter().all(|name| f.get(name).is_none()) {
        cx.problem(
            node.at,
            path,
            "needs at least one condition (path, pathPrefix, methods, headers or grpc)",
        );
    }
    for (name, slot) in [("path", &mut m.path), ("pathPrefix", &mut m.path_prefix)] {
        if let Some(n) = f.get(name) {
            let here = join(path, name);
            if let Some(text) = cx.string(n, &here) {
                if !text.starts_with('/') {
                    cx.problem(n.at, &here, format!("`{text}` must start with /"));
                } else {
                    *slot = text;
                }
            }
        }
    }
    if let (Some(_), Some(n)) = (f.get("path"), f.get("pathPrefix")) {
        cx.problem(
            n.at,
            &join(path, "pathPrefix"),
            "give path or pathPrefix, not both",
        );
    }
    if let Some(n) = f.get("methods") {
        for (method, at, here) in cx.strings(n, &join(path, "methods")).unwrap_or_default() {
            let valid = !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase());
            if !valid {
                cx.problem(
                    at,
                    &here,
                    format!("`{method}` is not an upper-case HTTP method (GET, POST, ...)"),
                );
                continue;
            }
            m.methods.push(method.clone());
            methods.push(At {
                value: method,
                at,
                path: here,
            });
        }
    }
    if let Some(n) = f.get("headers") {
        let path = join(path, "headers");
        for (i, item) in cx.list(n, &path).unwrap_or_default().iter().enumerate() {
            let path = index(&path, i);
            let Some(h) = cx.map(item, &path, &["name", "exact"]) else {
                continue;
            };
            let name = match h.get("name") {
                Some(n) => cx.string(n, &join(&path, "name")).and_then(|name| {
                    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                        cx.problem(
                            n.at,
                            &join(&path, "name"),
                            format!("`{name}` is not a header name"),
                        );
                        return None;
                    }
                    Some(name.to_ascii_lowercase())
                }),
                None => {
                    cx.problem(item.at, &join(&path, "name"), "missing");
                    None
                }
            };
            let exact = h
                .get("exact")
                .and_then(|n| cx.string(n, &join(&path, "exact")))
                .unwrap_or_default();
            if let Some(name) = name {
                m.headers.push(HeaderMatch { name, exact });
            }
        }
    }
    if let Some(n) = f.get("grpc") {
        let here = join(path, "grpc");
        if let Some(g) = cx.map(n, &here, &["service", "method"]) {
            let service = match g.get("service") {
                Some(s) => cx.string(s, &join(&here, "service")),
                None => {
                    cx.problem(n.at, &join(&here, "service"), "missing");
                    None
                }
            };
            let method = g
                .get("method")
                .and_then(|s| cx.string(s, &join(&here, "method")))
                .unwrap_or_default();
            if let Some(service) = service {
                m.grpc = Some(GrpcMatch { service, method });
            }
        }
        for name in ["path", "pathPrefix"] {
            if f.get(name).is_some() {
                cx.problem(
                    n.at,
                    &here,
                    format!("a gRPC match names its own path; remove {name}"),
                );
            }
        }
    }
    (m, methods)
}

//! Checking one `HTTPRoute` or `GRPCRoute` document (`gateway.networking.k8s.io/v1`) with the
//! policy code's walker: every problem at once, as `line:column: field.path: what`.
//!
//! What the spec allows and weft does not do is a problem, never ignored: a route applied in
//! part would send traffic where its author did not mean it to go. The filters, backends,
//! timeouts and retry of a rule are in [`super::check_rule`], an HTTPRoute's matches in
//! [`super::check_match`], a GRPCRoute's in [`super::check_grpc`].

use weft_api::policy::{PathKind, PathMatch, RuleMatch};

use super::check_grpc;
use super::check_match::matches;
use super::check_rule::{backends, filters, retry, timeouts};
use super::model::{HttpRoute, Parent, Rule};
use crate::policy::effective;
use crate::policy::is_dns_label;
use crate::policy::node::{Node, Pos};
use crate::policy::walk::{Cx, Problem, index, join};

/// The API group and version of the routes weft reads.
pub const API_VERSION: &str = "gateway.networking.k8s.io/v1";
pub const KINDS: [&str; 2] = ["HTTPRoute", "GRPCRoute"];

/// The spec's limits (`MaxItems`).
const MAX_RULES: usize = 16;

/// Checks one document: the route, or every problem found. `order` is the document's position
/// in the set, the route's age when it has no `metadata.creationTimestamp`.
pub fn document(node: &Node, order: usize) -> Result<HttpRoute, Vec<Problem>> {
    let mut cx = Cx::default();
    let route = walk(&mut cx, node, order);
    match route {
        Some(route) if cx.problems.is_empty() => Ok(route),
        _ => {
            cx.problems.sort();
            Err(cx.problems)
        }
    }
}

fn walk(cx: &mut Cx, node: &Node, order: usize) -> Option<HttpRoute> {
    let f = cx.map(
        node,
        "",
        &["apiVersion", "kind", "metadata", "spec", "status"],
    )?;
    let kinds = KINDS.join(" or ");
    for (field, expected) in [("apiVersion", API_VERSION), ("kind", kinds.as_str())] {
        match f.get(field) {
            Some(n)
                if n.text()
                    .is_some_and(|t| expected.split(" or ").any(|e| e == t)) => {}
            Some(n) => {
                let found = n.text().unwrap_or(n.kind());
                cx.problem(n.at, field, format!("is `{found}`, expected {expected}"));
            }
            None => cx.problem(node.at, field, format!("missing (expected {expected})")),
        }
    }
    let grpc = f.get("kind").and_then(Node::text) == Some("GRPCRoute");
    let mut route = HttpRoute {
        kind: if grpc { "GRPCRoute" } else { "HTTPRoute" },
        hash: effective::hash_of(&node.get("spec").map(Node::canonical).unwrap_or_default()),
        order,
        ..HttpRoute::default()
    };
    metadata(cx, f.get("metadata"), node.at, &mut route);
    let Some(spec) = f.get("spec") else {
        cx.problem(node.at, "spec", "missing");
        return Some(route);
    };
    let s = cx.map(spec, "spec", &["parentRefs", "hostnames", "rules"])?;
    match s.get("parentRefs") {
        Some(n) => route.parents = parents(cx, n, "spec.parentRefs", &route.namespace),
        None => cx.problem(spec.at, "spec.parentRefs", "missing: name the Service"),
    }
    if let Some(n) = s.get("hostnames") {
        // Callers of a Service reach it by its address, whatever name they used: the mesh
        // profile of the spec ignores hostnames.
        let _ = cx.strings(n, "spec.hostnames");
    }
    match s.get("rules") {
        Some(n) => route.rules = rules(cx, n, "spec.rules", &route.namespace, grpc),
        // The spec's default: one rule, every request to the parent's backends... of which
        // there are none: say so instead.
        None => cx.problem(spec.at, "spec.rules", "missing: a route needs a rule"),
    }
    Some(route)
}

fn metadata(cx: &mut Cx, node: Option<&Node>, doc: Pos, route: &mut HttpRoute) {
    let Some(node) = node else {
        cx.problem(doc, "metadata", "missing: name and namespace of the route");
        return;
    };
    // What Kubernetes adds to an object, so that `kubectl get -o yaml` output is read as is.
    let allowed = [
        "name",
        "namespace",
        "labels",
        "annotations",
        "creationTimestamp",
        "generation",
        "resourceVersion",
        "uid",
        "managedFields",
    ];
    let Some(f) = cx.map(node, "metadata", &allowed) else {
        return;
    };
    route.at = node.at;
    for field in ["name", "namespace"] {
        let path = join("metadata", field);
        let Some(n) = f.get(field) else {
            cx.problem(node.at, &path, "missing");
            continue;
        };
        let Some(text) = cx.string(n, &path) else {
            continue;
        };
        if !is_dns_label(&text) {
            let why = format!("`{text}` is not a DNS label (lower-case letters, digits and -)");
            cx.problem(n.at, &path, why);
        }
        match field {
            "name" => {
                route.at = n.at;
                route.name = text;
            }
            _ => route.namespace = text,
        }
    }
    if let Some(n) = f.get("creationTimestamp") {
        route.created = cx.string(n, "metadata.creationTimestamp");
    }
}

fn parents(cx: &mut Cx, node: &Node, path: &str, namespace: &str) -> Vec<Parent> {
    let mut out = Vec::new();
    let items = cx.list(node, path).unwrap_or_default();
    if items.is_empty() {
        cx.problem(node.at, path, "empty: name the Service the route is for");
    }
    for (i, item) in items.iter().enumerate() {
        let path = index(path, i);
        let fields = ["group", "kind", "name", "namespace", "port", "sectionName"];
        let Some(f) = cx.map(item, &path, &fields) else {
            continue;
        };
        let text =
            |cx: &mut Cx, field: &str| f.get(field).and_then(|n| cx.string(n, &join(&path, field)));
        let group = text(cx, "group").unwrap_or_default();
        let kind = text(cx, "kind").unwrap_or_else(|| "Gateway".to_owned());
        if !group.is_empty() || kind != "Service" {
            // Attached to a Gateway (or another kind): not the mesh's to serve.
            continue;
        }
        if let Some(n) = f.get("sectionName") {
            cx.problem(
                n.at,
                &join(&path, "sectionName"),
                "not supported for a Service parent: name its port with `port`",
            );
        }
        let Some(name) = text(cx, "name") else {
            cx.problem(item.at, &join(&path, "name"), "missing");
            continue;
        };
        let parent_namespace = text(cx, "namespace").unwrap_or_else(|| namespace.to_owned());
        let port = f
            .get("port")
            .and_then(|n| cx.integer(n, &join(&path, "port"), 1, 65_535))
            .map(|p| p as u16);
        out.push(Parent {
            service: format!("{name}.{parent_namespace}"),
            port,
            at: item.at,
        });
    }
    out
}

fn rules(cx: &mut Cx, node: &Node, path: &str, namespace: &str, grpc: bool) -> Vec<Rule> {
    let items = cx.list(node, path).unwrap_or_default();
    if items.len() > MAX_RULES {
        let why = format!("{} rules, the spec allows at most {MAX_RULES}", items.len());
        cx.problem(node.at, path, why);
    }
    let mut out: Vec<Rule> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = index(path, i);
        // GRPCRoute rules have no timeouts or retry in the standard channel.
        let all = [
            "name",
            "matches",
            "filters",
            "backendRefs",
            "timeouts",
            "retry",
        ];
        let fields = if grpc { &all[..4] } else { &all[..] };
        let Some(f) = cx.map(item, &path, fields) else {
            continue;
        };
        let mut rule = Rule::default();
        rule.proto.name = format!("rule-{i}");
        if let Some(n) = f.get("name") {
            let here = join(&path, "name");
            if let Some(name) = cx.string(n, &here) {
                if !is_dns_label(&name) {
                    cx.problem(n.at, &here, format!("`{name}` is not a valid rule name (lower-case letters, digits and -, at most 63)"));
                } else if out.iter().any(|r| r.proto.name == name) {
                    cx.problem(n.at, &here, format!("rule `{name}` is named twice"));
                }
                rule.proto.name = name;
            }
        }
        rule.matches = match (f.get("matches"), grpc) {
            (Some(n), false) => matches(cx, n, &join(&path, "matches")),
            (Some(n), true) => check_grpc::matches(cx, n, &join(&path, "matches")),
            (None, _) => Vec::new(),
        };
        if rule.matches.is_empty() {
            rule.matches.push(RuleMatch {
                path: Some(PathMatch {
                    kind: PathKind::Prefix as i32,
                    value: "/".to_owned(),
                }),
                ..RuleMatch::default()
            });
        }
        if let Some(n) = f.get("filters") {
            filters(cx, n, &join(&path, "filters"), &mut rule, namespace, grpc);
        }
        if let Some(n) = f.get("backendRefs") {
            rule.proto.backends = backends(cx, n, &join(&path, "backendRefs"), namespace);
        }
        if let Some(n) = f.get("timeouts") {
            timeouts(cx, n, &join(&path, "timeouts"), &mut rule.proto);
        }
        if let Some(n) = f.get("retry") {
            rule.proto.retry = retry(cx, n, &join(&path, "retry"));
        }
        if rule.proto.redirect.is_some() && !rule.proto.backends.is_empty() {
            let here = join(&path, "backendRefs");
            cx.problem(item.at, &here, "a rule with a RequestRedirect filter sends nothing to backends: remove backendRefs or the redirect");
        }
        let prefix_rewrite =
            |r: &Option<weft_api::policy::PathRewrite>| r.as_ref().is_some_and(|p| !p.full);
        let rewrites_prefix =
            prefix_rewrite(&rule.proto.rewrite.as_ref().and_then(|r| r.path.clone()))
                || prefix_rewrite(&rule.proto.redirect.as_ref().and_then(|r| r.path.clone()));
        let all_prefix = rule.matches.iter().all(|m| {
            m.path
                .as_ref()
                .is_some_and(|p| p.kind == PathKind::Prefix as i32)
        });
        if rewrites_prefix && !all_prefix {
            cx.problem(
                item.at,
                &join(&path, "filters"),
                "ReplacePrefixMatch needs every match of the rule to have a PathPrefix path",
            );
        }
        out.push(rule);
    }
    out
}

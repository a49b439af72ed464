//! Checking one `ServicePolicy` document: the walk over its tree, then the rules that involve
//! several fields or levels (references to routes, timeouts that contradict each other on the
//! merged values, retries of methods that are not idempotent).
//!
//! Every problem is collected; the document is accepted only when there are none.

use std::collections::HashMap;

use super::check_client::{client, ms};
use super::check_routes::{is_dns_label, routes};
use super::check_server::{RouteRef, server};
use super::effective::{self, EffectiveRules, Source};
use super::model::{Client, ServicePolicy};
use super::node::{Node, Pos, Value};
use super::walk::{Cx, Problem, join};
use crate::yaml::API_VERSION;

/// The `kind` of a policy document.
pub const KIND: &str = "ServicePolicy";

/// Methods whose requests may change something each time they are sent.
const NON_IDEMPOTENT: [&str; 3] = ["POST", "PATCH", "CONNECT"];

/// Checks one document: the policy, or every problem found.
pub fn document(node: &Node) -> Result<ServicePolicy, Vec<Problem>> {
    let mut cx = Cx::default();
    let policy = walk(&mut cx, node);
    if let Some(policy) = &policy {
        cross_checks(&mut cx, policy);
    }
    match policy {
        Some(policy) if cx.problems.is_empty() => Ok(policy),
        _ => {
            cx.problems.sort();
            Err(cx.problems)
        }
    }
}

fn walk(cx: &mut Cx, node: &Node) -> Option<ServicePolicy> {
    let f = cx.map(node, "", &["apiVersion", "kind", "metadata", "spec"])?;
    for (field, expected) in [("apiVersion", API_VERSION), ("kind", KIND)] {
        match f.get(field) {
            Some(n) if n.text() == Some(expected) => {}
            Some(n) => {
                let found = n.text().unwrap_or(n.kind());
                cx.problem(n.at, field, format!("is `{found}`, expected {expected}"));
            }
            None => cx.problem(node.at, field, format!("missing (expected {expected})")),
        }
    }
    let (name, namespace, at) = metadata(cx, f.get("metadata"), node.at);
    let mut refs = Vec::new();
    let mut policy = ServicePolicy {
        name: name.unwrap_or_default(),
        namespace: namespace.unwrap_or_default(),
        at,
        hash: effective::hash_of(&node.canonical()),
        routes: Vec::new(),
        client: Client::default(),
        server: None,
    };
    let Some(spec) = f.get("spec") else {
        cx.problem(node.at, "spec", "missing");
        return Some(policy);
    };
    let Some(s) = cx.map(spec, "spec", &["routes", "client", "server"]) else {
        return Some(policy);
    };
    if let Some(n) = s.get("routes") {
        policy.routes = routes(cx, n, "spec.routes");
    }
    if let Some(n) = s.get("client") {
        policy.client = client(cx, n, "spec.client");
    }
    if let Some(n) = s.get("server") {
        policy.server = server(cx, n, "spec.server", &mut refs);
    }
    check_refs(cx, &policy, &refs);
    Some(policy)
}

fn metadata(cx: &mut Cx, node: Option<&Node>, doc: Pos) -> (Option<String>, Option<String>, Pos) {
    let Some(node) = node else {
        cx.problem(
            doc,
            "metadata",
            "missing: name and namespace of the service",
        );
        return (None, None, doc);
    };
    let Some(f) = cx.map(
        node,
        "metadata",
        &["name", "namespace", "labels", "annotations"],
    ) else {
        return (None, None, node.at);
    };
    // Read by Kubernetes and GitOps tools, not by weft: only their shape is checked.
    for field in ["labels", "annotations"] {
        if let Some(n) = f.get(field) {
            string_map(cx, n, &join("metadata", field));
        }
    }
    let mut at = node.at;
    let mut read = |cx: &mut Cx, field: &str| -> Option<String> {
        let path = join("metadata", field);
        let Some(n) = f.get(field) else {
            cx.problem(node.at, &path, "missing");
            return None;
        };
        if field == "name" {
            at = n.at;
        }
        let text = cx.string(n, &path)?;
        if !is_dns_label(&text) {
            cx.problem(
                n.at,
                &path,
                format!(
                    "`{text}` is not a DNS label (lower-case letters, digits and -, at most 63)"
                ),
            );
            return None;
        }
        Some(text)
    };
    let name = read(cx, "name");
    let namespace = read(cx, "namespace");
    (name, namespace, at)
}

/// A map of names to strings, like `metadata.labels`.
fn string_map(cx: &mut Cx, node: &Node, path: &str) {
    let Value::Map(entries) = &node.value else {
        if !node.is_null() {
            cx.problem(
                node.at,
                path,
                format!("expected a map of names to strings, found {}", node.kind()),
            );
        }
        return;
    };
    for (key, value) in entries {
        let name = key.text().unwrap_or_default();
        if !matches!(value.value, Value::Scalar { .. }) || value.is_null() {
            cx.problem(
                value.at,
                &join(path, name),
                format!("expected a string, found {}", value.kind()),
            );
        }
    }
}

/// Route names used by overrides, allow rules and faults must exist; a route may be overridden
/// only once.
fn check_refs(cx: &mut Cx, policy: &ServicePolicy, refs: &[RouteRef]) {
    let known = |name: &str| policy.routes.iter().any(|r| r.name.value == name);
    let mut overridden: HashMap<&str, &str> = HashMap::new();
    for o in &policy.client.overrides {
        for r in &o.routes {
            if !known(&r.value) {
                cx.problem(r.at, &r.path, unknown_route(policy, &r.value));
            } else if let Some(first) = overridden.get(r.value.as_str()) {
                cx.problem(
                    r.at,
                    &r.path,
                    format!("route `{}` is already overridden at {first}", r.value),
                );
            } else {
                overridden.insert(&r.value, &r.path);
            }
        }
    }
    let mut rules_overridden: HashMap<String, &str> = HashMap::new();
    for r in policy
        .client
        .overrides
        .iter()
        .flat_map(|o| &o.gateway_rules)
    {
        let key = policy.gateway_rule_key(&r.value);
        if let Some(first) = rules_overridden.get(&key) {
            let why = format!("rule `{key}` is already overridden at {first}");
            cx.problem(r.at, &r.path, why);
        } else {
            rules_overridden.insert(key, &r.path);
        }
    }
    for r in refs {
        if !known(&r.name) {
            cx.problem(r.at, &r.path, unknown_route(policy, &r.name));
        }
    }
}

fn unknown_route(policy: &ServicePolicy, name: &str) -> String {
    let names: Vec<&str> = policy
        .routes
        .iter()
        .map(|r| r.name.value.as_str())
        .collect();
    match super::walk::did_you_mean(name, &names) {
        Some(close) => format!("no route named `{name}` in spec.routes; did you mean `{close}`?"),
        None if names.is_empty() => format!("no route named `{name}`: spec.routes defines none"),
        None => format!(
            "no route named `{name}` in spec.routes (defined: {})",
            names.join(", ")
        ),
    }
}

/// Contradictions on the merged values, for the defaults and for every overridden route.
fn cross_checks(cx: &mut Cx, policy: &ServicePolicy) {
    let effective = effective::effective(policy);
    contradictions(cx, &effective.default_rules, None);
    for route in &effective.routes {
        let name = route.route.name.value.as_str();
        if route.override_index.is_some() {
            contradictions(cx, &route.rules, Some(name));
        }
        let r = &route.rules;
        let beyond_unseen = {
            let on = &r.on.value;
            on.reset || !on.statuses.is_empty() || !on.grpc_codes.is_empty()
        };
        if r.limit.value > 0 && beyond_unseen && !r.non_idempotent.value {
            for method in &route.route.methods {
                if NON_IDEMPOTENT.contains(&method.value.as_str()) {
                    cx.problem(
                        method.at,
                        &method.path,
                        format!(
                            "{} is not idempotent, but route `{name}` retries it on responses the app may have acted on ({}); set retries.nonIdempotent: true in its override to acknowledge, or retries.limit: 0, or retry only on connect-failure and refused-stream",
                            method.value,
                            from_where(&r.on.from, &r.on.at)
                        ),
                    );
                }
            }
        }
    }
}

fn from_where(source: &Source, at: &Option<(Pos, String)>) -> String {
    match at {
        // A tree built from JSON (a custom resource) has no positions: the path says it all.
        Some((pos, path)) if *pos == Pos::default() => path.clone(),
        Some((pos, path)) => format!("{path} at {pos}"),
        None => source.to_string(),
    }
}

/// Where to report a problem made of several values: the most specific one written.
/// For a route, only a value of its override: otherwise the defaults' own check reports it.
fn blame<'a>(
    candidates: &[&'a Option<(Pos, String)>],
    sources: &[Source],
    route: bool,
) -> Option<&'a (Pos, String)> {
    let levels: &[Source] = if route {
        &[Source::Override]
    } else {
        &[Source::Override, Source::Defaults]
    };
    for &wanted in levels {
        for (at, source) in candidates.iter().zip(sources) {
            if *source == wanted
                && let Some(at) = at
            {
                return Some(at);
            }
        }
    }
    None
}

fn contradictions(cx: &mut Cx, r: &EffectiveRules, route: Option<&str>) {
    let context = route.map(|n| format!(" (route `{n}`)")).unwrap_or_default();
    let attempts = u64::from(r.limit.value) + 1;
    let (per_try, request) = (r.per_try_ms.value, r.request_ms.value);
    if per_try > 0 && request > 0 && per_try.saturating_mul(attempts) > request {
        let at = blame(
            &[&r.per_try_ms.at, &r.limit.at, &r.request_ms.at],
            &[r.per_try_ms.from, r.limit.from, r.request_ms.from],
            route.is_some(),
        );
        if let Some((pos, path)) = at {
            cx.problem(
                *pos,
                path,
                format!(
                    "perTry {} × {attempts} attempts (limit {} + 1) = {} is longer than the request timeout {}{context}; the last attempts could never run",
                    ms(per_try),
                    r.limit.value,
                    ms(per_try * attempts),
                    ms(request)
                ),
            );
        }
    }
    let (base, max) = (r.backoff_base_ms.value, r.backoff_max_ms.value);
    if base > max {
        let at = blame(
            &[&r.backoff_base_ms.at, &r.backoff_max_ms.at],
            &[r.backoff_base_ms.from, r.backoff_max_ms.from],
            route.is_some(),
        );
        if let Some((pos, path)) = at {
            cx.problem(
                *pos,
                path,
                format!(
                    "backoff base {} is longer than backoff max {}{context}",
                    ms(base),
                    ms(max)
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::node;

    fn problems(spec: &str) -> Vec<String> {
        let text = format!(
            "apiVersion: weft.dev/v1alpha1\nkind: ServicePolicy\nmetadata: {{name: payments, namespace: prod}}\nspec:\n{spec}"
        );
        let docs = node::parse(&text).unwrap();
        match document(&docs[0]) {
            Ok(_) => Vec::new(),
            Err(found) => found.iter().map(ToString::to_string).collect(),
        }
    }

    const ROUTES: &str = "  routes:\n    - name: create\n      match: {path: /v1/charges, methods: [GET, POST]}\n    - name: call\n      match: {grpc: {service: pay.v1.Charges}, methods: [POST]}\n";

    #[test]
    fn retrying_a_post_needs_an_acknowledgement() {
        let retry_5xx = "  client:\n    defaults:\n      retries: {limit: 2, on: [5xx]}\n";
        let found = problems(&format!("{ROUTES}{retry_5xx}"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("7:49: spec.routes[0].match.methods[1]: POST is not idempotent, but route `create` retries it"),
            "{found:?}"
        );
        // Acknowledged in the override, or retrying only what the app never saw, or not at all.
        let acknowledged = "    overrides: [{routes: [create], retries: {nonIdempotent: true}}]\n";
        assert!(problems(&format!("{ROUTES}{retry_5xx}{acknowledged}")).is_empty());
        let unseen = "  client:\n    defaults:\n      retries: {limit: 2, on: [connect-failure, refused-stream]}\n";
        assert!(problems(&format!("{ROUTES}{unseen}")).is_empty());
        let once = "    overrides: [{routes: [create], retries: {limit: 0}}]\n";
        assert!(problems(&format!("{ROUTES}{retry_5xx}{once}")).is_empty());
    }

    #[test]
    fn a_route_contradiction_points_at_its_override() {
        let spec = "  routes:\n    - name: slow\n      match: {pathPrefix: /slow}\n  client:\n    defaults:\n      timeouts: {request: 10s, perTry: 2s}\n    overrides:\n      - routes: [slow]\n        timeouts: {request: 3s}\n        retries: {backoff: {max: 10ms}}\n";
        assert_eq!(
            problems(spec),
            [
                "13:29: spec.client.overrides[0].timeouts.request: perTry 2s × 2 attempts (limit 1 + 1) = 4s is longer than the request timeout 3s (route `slow`); the last attempts could never run",
                "14:34: spec.client.overrides[0].retries.backoff.max: backoff base 25ms is longer than backoff max 10ms (route `slow`)",
            ]
        );
    }

    #[test]
    fn faults_and_allow_rules_name_existing_routes() {
        let spec = "  routes: [{name: read, match: {methods: [GET]}}]\n  server:\n    authorization:\n      allow: [{from: [\"spiffe://cluster.local/*\"], routes: [read, write]}]\n    faults:\n      - routes: [reed]\n        delay: {duration: 1s, percent: 1}\n        until: 2026-12-02T00:00:00Z\n";
        assert_eq!(
            problems(spec),
            [
                "8:67: spec.server.authorization.allow[0].routes[1]: no route named `write` in spec.routes (defined: read)",
                "10:18: spec.server.faults[0].routes[0]: no route named `reed` in spec.routes; did you mean `read`?",
            ]
        );
    }

    #[test]
    fn a_document_that_is_not_a_map_says_so() {
        let docs = node::parse("just text\n").unwrap();
        let found = document(&docs[0]).unwrap_err();
        assert_eq!(
            found[0].to_string(),
            "1:1: expected a map, found a string `just text`"
        );
    }
}

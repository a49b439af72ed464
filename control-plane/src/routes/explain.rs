//! `weft policy check --explain` for routes: for each Service port a route is attached to, the
//! table its callers get (the Service's own namespace's callers, and those of each namespace
//! with consumer routes), every match in the order the proxy tries them, and for each rule
//! where its requests go (the backends' shares) and which of its settings replace the backend's
//! ServicePolicy values, and which stay the policy's (the retry budget, always).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use weft_api::policy::{PathKind, RouteRule, RuleMatch};

use super::Routes;
use super::model::HttpRoute;

fn ms(value: u64) -> String {
    weft_api::duration::format(std::time::Duration::from_millis(value))
}

/// The explanation of every table `routes` make, ending with a newline.
pub fn explain(routes: &Routes) -> String {
    let mut out = String::new();
    for (service, port, caller) in tables(routes.all()) {
        let Some(table) = routes.table(&service, port, &caller) else {
            continue;
        };
        let port = match port {
            0 => " (every port)".to_owned(),
            port => format!(":{port}"),
        };
        let _ = writeln!(
            out,
            "{service}{port} for callers in namespace {caller}: routes {}",
            table.version
        );
        for (i, m) in table.matches.iter().enumerate() {
            let rule = &table.rules[m.rule as usize];
            let _ = writeln!(
                out,
                "  {}. {} -> rule {}/{}",
                i + 1,
                describe(m),
                rule.route,
                rule.name
            );
        }
        for rule in &table.rules {
            explain_rule(&mut out, rule);
        }
        let _ = writeln!(out, "  a request matching nothing: 404 no_route");
    }
    out
}

/// Every (Service, port, caller namespace) a route makes a table for; a route without `port`
/// is shown on port 0 (every port).
fn tables(routes: &[HttpRoute]) -> BTreeSet<(String, u16, String)> {
    let mut out = BTreeSet::new();
    for route in routes {
        for parent in &route.parents {
            let port = parent.port.unwrap_or(0);
            out.insert((parent.service.clone(), port, route.namespace.clone()));
        }
    }
    out
}

fn describe(m: &RuleMatch) -> String {
    let mut parts = Vec::new();
    if let Some(p) = &m.path {
        let kind = match p.kind {
            k if k == PathKind::Exact as i32 => "path",
            k if k == PathKind::Regex as i32 => "path matching",
            _ => "path prefix",
        };
        parts.push(format!("{kind} {}", p.value));
    }
    if !m.method.is_empty() {
        parts.push(format!("method {}", m.method));
    }
    for (what, list) in [("header", &m.headers), ("query", &m.query_params)] {
        for v in list {
            let op = if v.regex { "matching" } else { "=" };
            parts.push(format!("{what} {} {op} {}", v.name, v.value));
        }
    }
    parts.join(", ")
}

fn explain_rule(out: &mut String, rule: &RouteRule) {
    let _ = writeln!(out, "  rule {}/{}:", rule.route, rule.name);
    if let Some(redirect) = &rule.redirect {
        let _ = writeln!(
            out,
            "    answered by the caller's sidecar: redirect {}",
            redirect.status_code
        );
        return;
    }
    let total: u64 = rule.backends.iter().map(|b| u64::from(b.weight)).sum();
    if total == 0 {
        let _ = writeln!(
            out,
            "    every request: 500 no_backend (no backend with a weight above 0)"
        );
    }
    for b in &rule.backends {
        let share = match total {
            0 => 0.0,
            _ => f64::from(b.weight) * 100.0 / total as f64,
        };
        let what = match b.ref_not_permitted {
            true => "answered 500: in another namespace, and no ReferenceGrant there allows it",
            false => "its endpoints, breakers and ServicePolicy",
        };
        let _ = writeln!(
            out,
            "    {}:{} weight {} ({share:.1} % of the requests; {what})",
            b.service, b.port, b.weight
        );
    }
    for m in &rule.mirrors {
        let _ = writeln!(
            out,
            "    mirrored to {}:{} ({:.1} % of the requests; fire and forget, its answers discarded)",
            m.service,
            m.port,
            m.fraction * 100.0
        );
    }
    let from_rule = |set: bool, value: String| match set {
        true => format!("{value} (the rule's)"),
        false => "the backend's ServicePolicy".to_owned(),
    };
    let _ = writeln!(
        out,
        "    timeouts.request: {}; per attempt: {}",
        from_rule(rule.request_timeout_ms > 0, ms(rule.request_timeout_ms)),
        from_rule(rule.backend_timeout_ms > 0, ms(rule.backend_timeout_ms)),
    );
    let retry = rule.retry.as_ref().map(|r| {
        let codes: Vec<String> = r.codes.iter().map(u32::to_string).collect();
        format!("{} retries on [{}]", r.attempts, codes.join(", "))
    });
    let _ = writeln!(
        out,
        "    retries: {}; always within the backend's retry budget",
        from_rule(retry.is_some(), retry.unwrap_or_default())
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::examine;

    #[test]
    fn tables_list_matches_in_order_and_say_who_decides_what() {
        let yaml = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: hello, namespace: demo}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: hello, port: 8080}]\n  rules:\n    - name: canary\n      timeouts: {request: 3s}\n      filters: [{type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 80}, percent: 25}}]\n      backendRefs: [{name: v1, port: 80, weight: 90}, {name: v2, port: 80, weight: 10}]\n    - name: api\n      matches: [{path: {type: Exact, value: /api}, method: POST}]\n      retry: {attempts: 2, codes: [503]}\n      backendRefs: [{name: v1, port: 80}]\n";
        let routes =
            Routes::new(examine(&[("r.yaml".to_owned(), yaml.as_bytes().to_vec())]).unwrap());
        let text = explain(&routes);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0]
                .starts_with("hello.demo:8080 for callers in namespace demo: routes demo/hello@"),
            "{text}"
        );
        assert_eq!(
            lines[1],
            "  1. path /api, method POST -> rule demo/hello/api"
        );
        assert_eq!(lines[2], "  2. path prefix / -> rule demo/hello/canary");
        assert!(text.contains("    v2.demo:80 weight 10 (10.0 % of the requests; its endpoints, breakers and ServicePolicy)"), "{text}");
        assert!(text.contains("    mirrored to shadow.demo:80 (25.0 % of the requests; fire and forget, its answers discarded)"), "{text}");
        assert!(
            text.contains(
                "    timeouts.request: 3s (the rule's); per attempt: the backend's ServicePolicy"
            ),
            "{text}"
        );
        assert!(text.contains("    retries: 2 retries on [503] (the rule's); always within the backend's retry budget"), "{text}");
    }
}

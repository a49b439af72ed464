//! Checking what a rule does with the requests it matches: filters, backends, timeouts (GEP-1742)
//! and retry (GEP-1731).

use weft_api::policy::{
    Backend, Header, HeaderModifier, PathRewrite, Redirect, Rewrite, RouteRetry, RouteRule,
};
use weft_api::policy_defaults::MAX_RETRY_LIMIT;

use super::check_mirror;
use super::model::Rule;
use crate::policy::node::Node;
use crate::policy::walk::{Cx, index, join};

/// The spec's limits (`MaxItems`).
const MAX_BACKENDS: usize = 16;
const MAX_WEIGHT: u64 = 1_000_000;

/// The filter types of the spec, each with the field that holds its settings.
const FILTERS: [(&str, &str); 8] = [
    ("RequestHeaderModifier", "requestHeaderModifier"),
    ("ResponseHeaderModifier", "responseHeaderModifier"),
    ("RequestRedirect", "requestRedirect"),
    ("URLRewrite", "urlRewrite"),
    ("RequestMirror", "requestMirror"),
    ("ExtensionRef", "extensionRef"),
    ("CORS", "cors"),
    ("ExternalAuth", "externalAuth"),
];

/// A GRPCRoute's filters are the header modifiers, mirrors and extensions only.
const GRPC_FILTERS: [&str; 4] = [
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestMirror",
    "ExtensionRef",
];

pub fn filters(cx: &mut Cx, node: &Node, path: &str, rule: &mut Rule, ns: &str, grpc: bool) {
    let mut seen: Vec<String> = Vec::new();
    for (i, item) in cx.list(node, path).unwrap_or_default().iter().enumerate() {
        let path = index(path, i);
        let Some((kind, settings, here)) = filter(cx, item, &path, &mut seen) else {
            continue;
        };
        if grpc && !GRPC_FILTERS.contains(&kind) {
            let why = format!("{kind} is not a filter of GRPCRoute");
            cx.problem(item.at, &join(&path, "type"), why);
            continue;
        }
        let r = &mut rule.proto;
        match kind {
            "RequestHeaderModifier" => r.request_headers = header_modifier(cx, settings, &here),
            "ResponseHeaderModifier" => r.response_headers = header_modifier(cx, settings, &here),
            "RequestRedirect" => r.redirect = redirect(cx, settings, &here),
            "URLRewrite" => r.rewrite = rewrite(cx, settings, &here),
            "RequestMirror" => r
                .mirrors
                .extend(check_mirror::mirror(cx, settings, &here, ns)),
            _ => unsupported(cx, item, &path, kind),
        }
    }
    if rule.proto.redirect.is_some() && rule.proto.rewrite.is_some() {
        let why = "a rule cannot both redirect and rewrite (RequestRedirect and URLRewrite)";
        cx.problem(node.at, path, why);
    }
}

/// One filter's type and settings: `(type, settings, path of the settings)`.
fn filter<'n>(
    cx: &mut Cx,
    item: &'n Node,
    path: &str,
    seen: &mut Vec<String>,
) -> Option<(&'static str, &'n Node, String)> {
    let mut fields: Vec<&str> = FILTERS.iter().map(|(_, field)| *field).collect();
    fields.push("type");
    let f = cx.map(item, path, &fields)?;
    let Some(type_node) = f.get("type") else {
        cx.problem(item.at, &join(path, "type"), "missing");
        return None;
    };
    let choices: Vec<(&str, &'static str)> = FILTERS.iter().map(|(t, _)| (*t, *t)).collect();
    let kind = cx.choice(type_node, &join(path, "type"), &choices)?;
    if kind != "RequestMirror" && seen.iter().any(|s| s == kind) {
        let why = format!("a second {kind} filter: the spec allows one per rule");
        cx.problem(type_node.at, &join(path, "type"), why);
    }
    seen.push(kind.to_owned());
    let field = FILTERS.iter().find(|(t, _)| *t == kind).map(|(_, f)| *f)?;
    for (_, other) in FILTERS.iter().filter(|(_, f)| *f != field) {
        if let Some(at) = f.key_at(other) {
            let why = format!("belongs to a filter of another type than {kind}");
            cx.problem(at, &join(path, other), why);
        }
    }
    let here = join(path, field);
    match f.get(field) {
        Some(settings) => Some((kind, settings, here)),
        None => {
            cx.problem(
                item.at,
                &here,
                format!("missing: the {kind} filter's settings"),
            );
            None
        }
    }
}

fn unsupported(cx: &mut Cx, item: &Node, path: &str, kind: &str) {
    let why = match kind {
        "RequestMirror" => "not supported on a backend by weft: put the mirror on the rule",
        _ => "not supported by weft: the route is refused rather than applied without it",
    };
    cx.problem(item.at, &join(path, "type"), format!("{kind}: {why}"));
}

fn header_modifier(cx: &mut Cx, node: &Node, path: &str) -> Option<HeaderModifier> {
    let f = cx.map(node, path, &["set", "add", "remove"])?;
    let mut modifier = HeaderModifier::default();
    let mut named: Vec<String> = Vec::new();
    let mut name_once = |cx: &mut Cx, name: &str, at, here: &str| {
        let lower = name.to_ascii_lowercase();
        if http::HeaderName::from_bytes(lower.as_bytes()).is_err() {
            cx.problem(at, here, format!("`{name}` is not a header name"));
        } else if named.contains(&lower) {
            cx.problem(at, here, format!("`{name}` is modified twice"));
        }
        named.push(lower.clone());
        lower
    };
    for (field, out) in [("set", &mut modifier.set), ("add", &mut modifier.add)] {
        let Some(n) = f.get(field) else { continue };
        let path = join(path, field);
        for (i, item) in cx.list(n, &path).unwrap_or_default().iter().enumerate() {
            let path = index(&path, i);
            let Some(h) = cx.map(item, &path, &["name", "value"]) else {
                continue;
            };
            let (Some(name), Some(value)) = (h.get("name"), h.get("value")) else {
                cx.problem(item.at, &path, "needs a name and a value");
                continue;
            };
            let here = join(&path, "name");
            let name = cx
                .string(name, &here)
                .map(|t| name_once(cx, &t, name.at, &here));
            let value_path = join(&path, "value");
            let value_text = cx.string(value, &value_path).unwrap_or_default();
            if http::HeaderValue::from_str(&value_text).is_err() {
                cx.problem(value.at, &value_path, "not a valid header value");
            }
            if let Some(name) = name {
                out.push(Header {
                    name,
                    value: value_text,
                });
            }
        }
    }
    if let Some(n) = f.get("remove") {
        let path = join(path, "remove");
        for (name, at, here) in cx.strings(n, &path).unwrap_or_default() {
            let name = name_once(cx, &name, at, &here);
            modifier.remove.push(name);
        }
    }
    Some(modifier)
}

fn path_rewrite(cx: &mut Cx, node: &Node, path: &str) -> Option<PathRewrite> {
    let fields = ["type", "replaceFullPath", "replacePrefixMatch"];
    let f = cx.map(node, path, &fields)?;
    let kinds = [("ReplaceFullPath", true), ("ReplacePrefixMatch", false)];
    let Some(type_node) = f.get("type") else {
        cx.problem(node.at, &join(path, "type"), "missing");
        return None;
    };
    let full = cx.choice(type_node, &join(path, "type"), &kinds)?;
    let field = if full {
        "replaceFullPath"
    } else {
        "replacePrefixMatch"
    };
    let Some(n) = f.get(field) else {
        cx.problem(node.at, &join(path, field), "missing");
        return None;
    };
    let value = cx.string(n, &join(path, field))?;
    if !value.starts_with('/') {
        cx.problem(
            n.at,
            &join(path, field),
            format!("`{value}` does not start with /"),
        );
    }
    Some(PathRewrite { full, value })
}

fn redirect(cx: &mut Cx, node: &Node, path: &str) -> Option<Redirect> {
    let fields = ["scheme", "hostname", "path", "port", "statusCode"];
    let f = cx.map(node, path, &fields)?;
    let mut r = Redirect {
        status_code: 302,
        ..Redirect::default()
    };
    // Problems are recorded as they are found; the values stand in for the rest of the checks.
    if let Some(n) = f.get("scheme") {
        let schemes = [("http", "http"), ("https", "https")];
        let scheme = cx.choice(n, &join(path, "scheme"), &schemes);
        r.scheme = scheme.unwrap_or_default().to_owned();
    }
    if let Some(n) = f.get("hostname") {
        r.hostname = cx.string(n, &join(path, "hostname")).unwrap_or_default();
    }
    if let Some(n) = f.get("path") {
        r.path = path_rewrite(cx, n, &join(path, "path"));
    }
    if let Some(n) = f.get("port") {
        r.port = cx
            .integer_u32(n, &join(path, "port"), 1, 65_535)
            .unwrap_or_default();
    }
    if let Some(n) = f.get("statusCode") {
        let codes = [("301", 301), ("302", 302)];
        r.status_code = cx
            .choice(n, &join(path, "statusCode"), &codes)
            .unwrap_or(302);
    }
    Some(r)
}

fn rewrite(cx: &mut Cx, node: &Node, path: &str) -> Option<Rewrite> {
    let f = cx.map(node, path, &["hostname", "path"])?;
    let mut r = Rewrite::default();
    if let Some(n) = f.get("hostname") {
        r.hostname = cx.string(n, &join(path, "hostname"))?;
    }
    if let Some(n) = f.get("path") {
        r.path = path_rewrite(cx, n, &join(path, "path"));
    }
    Some(r)
}

pub fn backends(cx: &mut Cx, node: &Node, path: &str, namespace: &str) -> Vec<Backend> {
    let items = cx.list(node, path).unwrap_or_default();
    if items.len() > MAX_BACKENDS {
        let why = format!(
            "{} backends, the spec allows at most {MAX_BACKENDS}",
            items.len()
        );
        cx.problem(node.at, path, why);
    }
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = index(path, i);
        let fields = [
            "group",
            "kind",
            "name",
            "namespace",
            "port",
            "weight",
            "filters",
        ];
        let Some(f) = cx.map(item, &path, &fields) else {
            continue;
        };
        let text =
            |cx: &mut Cx, field: &str| f.get(field).and_then(|n| cx.string(n, &join(&path, field)));
        let group = text(cx, "group").unwrap_or_default();
        let kind = text(cx, "kind").unwrap_or_else(|| "Service".to_owned());
        if !group.is_empty() || kind != "Service" {
            let why = format!(
                "a backend of kind `{kind}` (group `{group}`): weft sends to Services only"
            );
            cx.problem(item.at, &join(&path, "kind"), why);
            continue;
        }
        let Some(name) = text(cx, "name") else {
            cx.problem(item.at, &join(&path, "name"), "missing");
            continue;
        };
        // A backend in another namespace needs a ReferenceGrant there: see `super::grant`.
        let backend_namespace = text(cx, "namespace").unwrap_or_else(|| namespace.to_owned());
        let Some(port) = f
            .get("port")
            .and_then(|n| cx.integer_u32(n, &join(&path, "port"), 1, 65_535))
        else {
            if f.get("port").is_none() {
                cx.problem(
                    item.at,
                    &join(&path, "port"),
                    "missing: a Service backend needs its port",
                );
            }
            continue;
        };
        let weight = match f.get("weight") {
            Some(n) => cx
                .integer(n, &join(&path, "weight"), 0, MAX_WEIGHT)
                .unwrap_or(0) as u32,
            None => 1,
        };
        let mut backend = Backend {
            service: format!("{name}.{backend_namespace}"),
            port,
            weight,
            ..Backend::default()
        };
        if let Some(n) = f.get("filters") {
            backend_filters(cx, n, &join(&path, "filters"), &mut backend);
        }
        out.push(backend);
    }
    out
}

fn backend_filters(cx: &mut Cx, node: &Node, path: &str, backend: &mut Backend) {
    let mut seen = Vec::new();
    for (i, item) in cx.list(node, path).unwrap_or_default().iter().enumerate() {
        let path = index(path, i);
        let Some((kind, settings, here)) = filter(cx, item, &path, &mut seen) else {
            continue;
        };
        match kind {
            "RequestHeaderModifier" => {
                backend.request_headers = header_modifier(cx, settings, &here)
            }
            "ResponseHeaderModifier" => {
                backend.response_headers = header_modifier(cx, settings, &here)
            }
            _ => unsupported(cx, item, &path, kind),
        }
    }
}

pub fn timeouts(cx: &mut Cx, node: &Node, path: &str, rule: &mut RouteRule) {
    let Some(f) = cx.map(node, path, &["request", "backendRequest"]) else {
        return;
    };
    if let Some(n) = f.get("request") {
        rule.request_timeout_ms = cx.duration(n, &join(path, "request"), true).unwrap_or(0);
    }
    if let Some(n) = f.get("backendRequest") {
        let here = join(path, "backendRequest");
        rule.backend_timeout_ms = cx.duration(n, &here, true).unwrap_or(0);
        let (request, backend) = (rule.request_timeout_ms, rule.backend_timeout_ms);
        if request > 0 && (backend == 0 || backend > request) {
            let why = "longer than timeouts.request, which bounds every attempt together";
            cx.problem(n.at, &here, why);
        }
    }
}

pub fn retry(cx: &mut Cx, node: &Node, path: &str) -> Option<RouteRetry> {
    let f = cx.map(node, path, &["attempts", "codes", "backoff"])?;
    let mut r = RouteRetry::default();
    if let Some(n) = f.get("attempts") {
        let attempts = cx.integer_u32(n, &join(path, "attempts"), 0, MAX_RETRY_LIMIT);
        r.attempts = attempts.unwrap_or_default();
    }
    if let Some(n) = f.get("codes") {
        let path = join(path, "codes");
        for (i, item) in cx.list(n, &path).unwrap_or_default().iter().enumerate() {
            if let Some(code) = cx.integer_u32(item, &index(&path, i), 400, 599) {
                r.codes.push(code);
            }
        }
    }
    if let Some(n) = f.get("backoff") {
        r.backoff_ms = cx
            .duration(n, &join(path, "backoff"), false)
            .unwrap_or_default();
    }
    Some(r)
}

//! An HTTPRoute's matches (path, method, headers, query parameters), and the header and
//! expression checks a GRPCRoute's matches share.

use weft_api::policy::{PathKind, PathMatch, RuleMatch, ValueMatch};

use crate::policy::node::{Node, Pos};
use crate::policy::walk::{Cx, index, join};

/// The spec's limit (`MaxItems`).
const MAX_MATCHES: usize = 64;

const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

pub fn matches(cx: &mut Cx, node: &Node, path: &str) -> Vec<RuleMatch> {
    let items = cx.list(node, path).unwrap_or_default();
    if items.len() > MAX_MATCHES {
        let why = format!(
            "{} matches, the spec allows at most {MAX_MATCHES}",
            items.len()
        );
        cx.problem(node.at, path, why);
    }
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = index(path, i);
        let fields = ["path", "headers", "queryParams", "method"];
        let Some(f) = cx.map(item, &path, &fields) else {
            continue;
        };
        let mut m = RuleMatch {
            path: Some(PathMatch {
                kind: PathKind::Prefix as i32,
                value: "/".to_owned(),
            }),
            ..RuleMatch::default()
        };
        if let Some(n) = f.get("path") {
            m.path = path_match(cx, n, &join(&path, "path"));
        }
        if let Some(n) = f.get("method") {
            let here = join(&path, "method");
            if let Some(method) = cx.string(n, &here) {
                if !METHODS.contains(&method.as_str()) {
                    let why = format!("`{method}` is not one of {}", METHODS.join(", "));
                    cx.problem(n.at, &here, why);
                }
                m.method = method;
            }
        }
        if let Some(n) = f.get("headers") {
            m.headers = value_matches(cx, n, &join(&path, "headers"), true);
        }
        if let Some(n) = f.get("queryParams") {
            m.query_params = value_matches(cx, n, &join(&path, "queryParams"), false);
        }
        out.push(m);
    }
    out
}

fn path_match(cx: &mut Cx, node: &Node, path: &str) -> Option<PathMatch> {
    let f = cx.map(node, path, &["type", "value"])?;
    let kinds = [
        ("PathPrefix", PathKind::Prefix),
        ("Exact", PathKind::Exact),
        ("RegularExpression", PathKind::Regex),
    ];
    let kind = match f.get("type") {
        Some(n) => cx.choice(n, &join(path, "type"), &kinds)?,
        None => PathKind::Prefix,
    };
    let value = match f.get("value") {
        Some(n) => {
            let here = join(path, "value");
            let value = cx.string(n, &here)?;
            if kind == PathKind::Regex {
                check_regex(cx, n.at, &here, &value);
            } else if !value.starts_with('/') {
                cx.problem(n.at, &here, format!("`{value}` does not start with /"));
            } else if value.contains("//") || value.contains("/./") || value.contains("/../") {
                let why = format!("`{value}` is not a normalized path (//, /./ or /../)");
                cx.problem(n.at, &here, why);
            }
            value
        }
        None => "/".to_owned(),
    };
    Some(PathMatch {
        kind: kind as i32,
        value,
    })
}

pub fn value_matches(cx: &mut Cx, node: &Node, path: &str, header: bool) -> Vec<ValueMatch> {
    let mut out: Vec<ValueMatch> = Vec::new();
    for (i, item) in cx.list(node, path).unwrap_or_default().iter().enumerate() {
        let path = index(path, i);
        let Some(f) = cx.map(item, &path, &["type", "name", "value"]) else {
            continue;
        };
        let kinds = [("Exact", false), ("RegularExpression", true)];
        let regex = match f.get("type") {
            Some(n) => cx.choice(n, &join(&path, "type"), &kinds).unwrap_or(false),
            None => false,
        };
        let name = match f.get("name") {
            Some(n) => {
                let here = join(&path, "name");
                let name = cx.string(n, &here).unwrap_or_default();
                if header && http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    cx.problem(n.at, &here, format!("`{name}` is not a header name"));
                }
                let same = |m: &ValueMatch| match header {
                    true => m.name.eq_ignore_ascii_case(&name),
                    false => m.name == name,
                };
                if out.iter().any(same) {
                    cx.problem(n.at, &here, format!("`{name}` is matched twice"));
                }
                match header {
                    true => name.to_ascii_lowercase(),
                    false => name,
                }
            }
            None => {
                cx.problem(item.at, &join(&path, "name"), "missing");
                continue;
            }
        };
        let value = match f.get("value") {
            Some(n) => {
                let here = join(&path, "value");
                let value = cx.string(n, &here).unwrap_or_default();
                if regex {
                    check_regex(cx, n.at, &here, &value);
                }
                value
            }
            None => {
                cx.problem(item.at, &join(&path, "value"), "missing");
                continue;
            }
        };
        out.push(ValueMatch { name, value, regex });
    }
    out
}

pub fn check_regex(cx: &mut Cx, at: Pos, path: &str, pattern: &str) {
    if let Err(e) = regex::Regex::new(pattern) {
        let first = e.to_string();
        let why = first.lines().last().unwrap_or("invalid").trim().to_owned();
        cx.problem(
            at,
            path,
            format!("`{pattern}` is not a regular expression: {why}"),
        );
    }
}

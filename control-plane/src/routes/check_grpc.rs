//! A `GRPCRoute`'s matches, as the paths they are: a gRPC call is a `POST` to
//! `/<service>/<method>`, so a service and method match becomes a path match and the proxy needs
//! nothing of its own for gRPC. `Exact` with both names is an exact path, a service alone a
//! prefix (every method of the service), a method alone or `RegularExpression` a regular
//! expression over the whole path.

use weft_api::policy::{PathKind, PathMatch, RuleMatch};

use super::check_match::{check_regex, value_matches};
use crate::policy::node::Node;
use crate::policy::walk::{Cx, index, join};

pub fn matches(cx: &mut Cx, node: &Node, path: &str) -> Vec<RuleMatch> {
    let mut out = Vec::new();
    for (i, item) in cx.list(node, path).unwrap_or_default().iter().enumerate() {
        let path = index(path, i);
        let Some(f) = cx.map(item, &path, &["method", "headers"]) else {
            continue;
        };
        let mut m = RuleMatch {
            path: Some(PathMatch {
                kind: PathKind::Prefix as i32,
                value: "/".to_owned(),
            }),
            ..RuleMatch::default()
        };
        if let Some(n) = f.get("method") {
            m.path = method(cx, n, &join(&path, "method"));
        }
        if let Some(n) = f.get("headers") {
            m.headers = value_matches(cx, n, &join(&path, "headers"), true);
        }
        out.push(m);
    }
    out
}

fn method(cx: &mut Cx, node: &Node, path: &str) -> Option<PathMatch> {
    let f = cx.map(node, path, &["type", "service", "method"])?;
    let kinds = [("Exact", false), ("RegularExpression", true)];
    let regex = match f.get("type") {
        Some(n) => cx.choice(n, &join(path, "type"), &kinds)?,
        None => false,
    };
    let mut name = |field: &str| -> Option<String> {
        let n = f.get(field)?;
        let here = join(path, field);
        let text = cx.string(n, &here)?;
        if regex {
            check_regex(cx, n.at, &here, &text);
        } else if text.is_empty() || text.contains('/') {
            cx.problem(n.at, &here, format!("`{text}` is not a gRPC {field} name"));
        }
        Some(text)
    };
    let (service, method) = (name("service"), name("method"));
    let (kind, value) = match (regex, service, method) {
        (_, None, None) => {
            cx.problem(node.at, path, "names neither a service nor a method");
            return None;
        }
        (false, Some(service), None) => (PathKind::Prefix, format!("/{service}")),
        (false, Some(service), Some(method)) => (PathKind::Exact, format!("/{service}/{method}")),
        (false, None, Some(method)) => (
            PathKind::Regex,
            format!("/[^/]+/{}", regex::escape(&method)),
        ),
        (true, service, method) => {
            let part = |p: Option<String>| p.unwrap_or_else(|| "[^/]+".to_owned());
            (
                PathKind::Regex,
                format!("/(?:{})/(?:{})", part(service), part(method)),
            )
        }
    };
    Some(PathMatch {
        kind: kind as i32,
        value,
    })
}

#[cfg(test)]
mod tests {
    use crate::policy::node;
    use crate::routes::check;

    fn paths(matches: &str) -> Result<Vec<String>, Vec<String>> {
        let yaml = format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {{name: g, namespace: demo}}\nspec:\n  parentRefs: [{{group: \"\", kind: Service, name: hello}}]\n  rules:\n    - matches: {matches}\n      backendRefs: [{{name: hello, port: 80}}]\n"
        );
        let route = check::document(&node::parse(&yaml).unwrap()[0], 0)
            .map_err(|p| p.iter().map(ToString::to_string).collect::<Vec<_>>())?;
        Ok(route.rules[0]
            .matches
            .iter()
            .map(|m| {
                let p = m.path.as_ref().unwrap();
                format!("{} {}", p.kind, p.value)
            })
            .collect())
    }

    #[test]
    fn services_and_methods_become_paths() {
        let matches = "[{method: {service: a.B, method: C}}, {method: {service: a.B}}, {method: {method: C.d}}, {method: {type: RegularExpression, service: \"a\\\\..*\"}}]";
        assert_eq!(
            paths(matches).unwrap(),
            [
                "1 /a.B/C",
                "0 /a.B",
                "2 /[^/]+/C\\.d",
                "2 /(?:a\\..*)/(?:[^/]+)"
            ]
        );
        assert_eq!(
            paths("[{method: {type: Exact}}]").unwrap_err(),
            ["7:26: spec.rules[0].matches[0].method: names neither a service nor a method"]
        );
        let http_only = "[{path: {value: /x}}]";
        assert!(paths(http_only).unwrap_err()[0].contains("matches[0].path: unknown field"));
    }
}

//! From the routes in force to the table one caller's proxy gets for one Service port.
//!
//! Which routes: those attached to the Service (and to that port, or to every port). A
//! *consumer* route lives in the caller's namespace and names a Service elsewhere; a *producer*
//! route lives in the Service's namespace. When the caller's namespace has consumer routes for
//! the Service, they alone apply to its callers (that namespace chose how it calls the Service);
//! otherwise the producer routes do. Routes in any third namespace apply to nobody.
//!
//! In what order: the spec's precedence over every match of every rule of those routes. A match
//! with an `Exact` path first, then a regular expression, then the longest `PathPrefix`; then
//! one that names a method; then the most header matches; then the most query parameter
//! matches; ties go to the oldest route (`metadata.creationTimestamp`, else the earlier in the
//! files), then to `<namespace>/<name>` in alphabetical order, then to the rule and match
//! written first. The proxy takes the first match that holds.

use std::cmp::Reverse;

use weft_api::policy::{PathKind, RouteTable, RuleMatch};

use super::model::HttpRoute;

/// The table of `service`'s `port` for callers in `caller_namespace`, if any route applies.
pub fn table(
    routes: &[HttpRoute],
    service: &str,
    port: u16,
    caller_namespace: &str,
) -> Option<RouteTable> {
    let service_namespace = HttpRoute::service_namespace(service);
    let attached = |namespace: &str| -> Vec<&HttpRoute> {
        routes
            .iter()
            .filter(|r| r.namespace == namespace && r.is_for(service, port))
            .collect()
    };
    let mut chosen = match caller_namespace != service_namespace {
        true => attached(caller_namespace),
        false => Vec::new(),
    };
    if chosen.is_empty() {
        chosen = attached(service_namespace);
    }
    if chosen.is_empty() {
        return None;
    }
    chosen.sort_by(|a, b| {
        let age = |r: &HttpRoute| (r.created.is_none(), r.created.clone(), r.order);
        age(a).cmp(&age(b)).then_with(|| a.key().cmp(&b.key()))
    });
    let mut table = RouteTable::default();
    let mut ranked: Vec<(Rank, RuleMatch)> = Vec::new();
    for (route_rank, route) in chosen.iter().enumerate() {
        for rule in &route.rules {
            let index = table.rules.len() as u32;
            let mut proto = rule.proto.clone();
            proto.route = route.key();
            table.rules.push(proto);
            for (match_rank, m) in rule.matches.iter().enumerate() {
                let m = RuleMatch {
                    rule: index,
                    ..m.clone()
                };
                ranked.push((rank(&m, route_rank, index, match_rank), m));
            }
        }
    }
    ranked.sort_by_key(|(rank, _)| *rank);
    table.matches = ranked.into_iter().map(|(_, m)| m).collect();
    table.version = chosen
        .iter()
        .map(|r| format!("{}@{}", r.key(), r.hash))
        .collect::<Vec<_>>()
        .join(",");
    Some(table)
}

/// Smaller is more specific; see the module doc.
type Rank = (
    u8,
    Reverse<usize>,
    bool,
    Reverse<usize>,
    Reverse<usize>,
    usize,
    u32,
    usize,
);

fn rank(m: &RuleMatch, route: usize, rule: u32, match_index: usize) -> Rank {
    let (class, length) = match &m.path {
        Some(p) if p.kind == PathKind::Exact as i32 => (0, p.value.len()),
        Some(p) if p.kind == PathKind::Regex as i32 => (1, p.value.len()),
        Some(p) => (2, p.value.trim_end_matches('/').len()),
        None => (2, 0),
    };
    (
        class,
        Reverse(length),
        m.method.is_empty(),
        Reverse(m.headers.len()),
        Reverse(m.query_params.len()),
        route,
        rule,
        match_index,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::node;
    use crate::routes::check;

    fn route(yaml: &str, order: usize) -> HttpRoute {
        let doc = &node::parse(yaml).unwrap()[0];
        check::document(doc, order).unwrap_or_else(|p| panic!("{p:?}"))
    }

    fn http_route(name: &str, namespace: &str, parent: &str, rules: &str) -> String {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  parentRefs: [{{group: \"\", kind: Service, {parent}}}]\n  rules:\n{rules}"
        )
    }

    fn order(table: &RouteTable) -> Vec<String> {
        table
            .matches
            .iter()
            .map(|m| {
                let rule = &table.rules[m.rule as usize];
                format!("{}/{}", rule.route, rule.name)
            })
            .collect()
    }

    #[test]
    fn matches_are_sorted_by_the_spec_s_precedence_across_rules_and_routes() {
        let older = route(
            &http_route(
                "older",
                "demo",
                "name: hello",
                "    - name: root\n      backendRefs: [{name: a, port: 80}]\n    - name: header\n      matches: [{path: {value: /v1}, headers: [{name: x, value: y}]}]\n",
            ),
            0,
        );
        let newer = route(
            &http_route(
                "newer",
                "demo",
                "name: hello, port: 80",
                "    - name: exact\n      matches: [{path: {type: Exact, value: /v1/a}}]\n    - name: method\n      matches: [{path: {value: /v1}, method: GET}]\n    - name: long\n      matches: [{path: {value: /v1/abc}}]\n",
            ),
            1,
        );
        let routes = [newer, older];
        let table = table(&routes, "hello.demo", 80, "demo").unwrap();
        assert_eq!(
            order(&table),
            [
                "demo/newer/exact",
                "demo/newer/long",
                "demo/newer/method",
                "demo/older/header",
                "demo/older/root"
            ]
        );
        assert!(
            table.version.starts_with("demo/older@"),
            "{}",
            table.version
        );
        // `port: 80` only: on port 81 the older route alone applies.
        let on_81 = super::table(&routes, "hello.demo", 81, "demo").unwrap();
        assert_eq!(order(&on_81), ["demo/older/header", "demo/older/root"]);
        assert!(super::table(&routes, "other.demo", 80, "demo").is_none());
    }

    #[test]
    fn consumer_routes_win_for_their_namespace_only() {
        let producer = route(
            &http_route(
                "p",
                "demo",
                "name: hello",
                "    - backendRefs: [{name: a, port: 80}]\n",
            ),
            0,
        );
        let consumer = route(
            &http_route(
                "c",
                "web",
                "name: hello, namespace: demo",
                "    - backendRefs: [{name: b, port: 80}]\n",
            ),
            1,
        );
        let routes = [producer, consumer];
        let rules = |caller: &str| order(&table(&routes, "hello.demo", 80, caller).unwrap());
        assert_eq!(rules("web"), ["web/c/rule-0"]);
        assert_eq!(rules("demo"), ["demo/p/rule-0"]);
        assert_eq!(rules("other"), ["demo/p/rule-0"]);
    }
}

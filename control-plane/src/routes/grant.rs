//! `ReferenceGrant` (`gateway.networking.k8s.io/v1beta1`): the owners of a namespace allow
//! routes of another namespace to send to their Services. Without one, a `backendRef` naming a
//! Service in a third namespace is refused: the route's author cannot borrow a Service its
//! owners did not offer. A route may always send to its own namespace and to the namespace of
//! the Service it is attached to: a consumer route choosing between the producer's versions
//! (the mesh conformance suite's mesh-consumer-route) borrows nothing.
//!
//! A refused backend keeps its weight, so its share of the requests is answered `500` as the
//! spec says, never sent to the other backends: it reaches the proxy marked `ref_not_permitted`,
//! and the proxy answers its share with `500` (`weft-error: backend_not_permitted`). A grant
//! added or removed later changes the outcome at the next reload or watch event.
//!
//! Grants are read from the `--routes` files (the same documents as in a cluster) and, with
//! `--kubernetes`, from the cluster; both sets apply to every route.

use super::model::HttpRoute;
use crate::policy::is_dns_label;
use crate::policy::node::Node;
use crate::policy::walk::{Cx, Problem, index, join};

pub const KIND: &str = "ReferenceGrant";
/// The versions of the Gateway API that serve ReferenceGrant.
pub const API_VERSIONS: [&str; 3] = [
    "gateway.networking.k8s.io/v1",
    "gateway.networking.k8s.io/v1beta1",
    "gateway.networking.k8s.io/v1alpha2",
];
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// The spec's limits (`MaxItems`).
const MAX_ITEMS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub name: String,
    /// Where the granted Services live.
    pub namespace: String,
    /// `(group, kind, namespace)` of the objects allowed to refer.
    pub from: Vec<(String, String, String)>,
    /// `(group, kind, name)` of what they may refer to; no name: every object of the kind.
    pub to: Vec<(String, String, Option<String>)>,
}

/// Whether `node` is a ReferenceGrant of the Gateway API.
pub fn is_grant(node: &Node) -> bool {
    let text = |key: &str| node.get(key).and_then(Node::text).unwrap_or_default();
    API_VERSIONS.contains(&text("apiVersion")) && text("kind") == KIND
}

/// Who refers to a backend: a route's kind (`HTTPRoute`, `GRPCRoute`), its namespace and the
/// namespaces of the Services it is attached to.
pub struct Referrer<'a> {
    pub kind: &'a str,
    pub namespace: &'a str,
    pub parent_namespaces: Vec<&'a str>,
}

/// Whether `route` may send to the Service `service` (`<name>.<namespace>`).
pub fn allows(grants: &[Grant], route: &Referrer, service: &str) -> bool {
    let (name, namespace) = service.split_once('.').unwrap_or((service, ""));
    let (route_kind, route_namespace) = (route.kind, route.namespace);
    if namespace == route_namespace || route.parent_namespaces.contains(&namespace) {
        return true;
    }
    grants.iter().filter(|g| g.namespace == namespace).any(|g| {
        let from = g.from.iter().any(|(group, kind, ns)| {
            group == GATEWAY_GROUP && kind == route_kind && ns == route_namespace
        });
        let to = g.to.iter().any(|(group, kind, to_name)| {
            group.is_empty() && kind == "Service" && to_name.as_deref().is_none_or(|n| n == name)
        });
        from && to
    })
}

/// `routes` with every backend in another namespace that no grant allows marked
/// `ref_not_permitted`.
pub fn resolve(mut routes: Vec<HttpRoute>, grants: &[Grant]) -> Vec<HttpRoute> {
    for route in &mut routes {
        let parents: Vec<String> = route.parents.iter().map(|p| p.service.clone()).collect();
        let referrer = Referrer {
            kind: route.kind,
            namespace: &route.namespace,
            parent_namespaces: parents
                .iter()
                .map(|s| HttpRoute::service_namespace(s))
                .collect(),
        };
        let backends = route.rules.iter_mut().flat_map(|r| &mut r.proto.backends);
        for backend in backends {
            backend.ref_not_permitted = !allows(grants, &referrer, &backend.service);
        }
    }
    routes
}

/// Checks one ReferenceGrant document: the grant, or every problem found.
pub fn document(node: &Node) -> Result<Grant, Vec<Problem>> {
    let mut cx = Cx::default();
    let grant = walk(&mut cx, node);
    match grant {
        Some(grant) if cx.problems.is_empty() => Ok(grant),
        _ => {
            cx.problems.sort();
            Err(cx.problems)
        }
    }
}

fn walk(cx: &mut Cx, node: &Node) -> Option<Grant> {
    let f = cx.map(node, "", &["apiVersion", "kind", "metadata", "spec"])?;
    let metadata = |field: &str| {
        let value = f.get("metadata").and_then(|m| m.get(field));
        value.and_then(Node::text).unwrap_or_default().to_owned()
    };
    let mut grant = Grant {
        name: metadata("name"),
        namespace: metadata("namespace"),
        from: Vec::new(),
        to: Vec::new(),
    };
    for (field, value) in [("name", &grant.name), ("namespace", &grant.namespace)] {
        if !is_dns_label(value) {
            let why = format!("`{value}` is not a DNS label (lower-case letters, digits and -)");
            cx.problem(node.at, &join("metadata", field), why);
        }
    }
    let Some(spec) = f.get("spec") else {
        cx.problem(node.at, "spec", "missing");
        return None;
    };
    let s = cx.map(spec, "spec", &["from", "to"])?;
    for field in ["from", "to"] {
        let path = join("spec", field);
        let Some(list) = s.get(field) else {
            cx.problem(spec.at, &path, "missing");
            continue;
        };
        let items = cx.list(list, &path).unwrap_or_default();
        if items.is_empty() || items.len() > MAX_ITEMS {
            let why = format!("{} items, the spec allows 1 to {MAX_ITEMS}", items.len());
            cx.problem(list.at, &path, why);
        }
        for (i, item) in items.iter().enumerate() {
            let path = index(&path, i);
            let third = if field == "from" { "namespace" } else { "name" };
            let Some(f) = cx.map(item, &path, &["group", "kind", third]) else {
                continue;
            };
            let mut text = |name: &str| f.get(name).and_then(|n| cx.string(n, &join(&path, name)));
            let (group, kind, other) = (text("group"), text("kind"), text(third));
            let Some(kind) = kind else {
                cx.problem(item.at, &join(&path, "kind"), "missing");
                continue;
            };
            let group = group.unwrap_or_default();
            match (field, other) {
                ("from", Some(namespace)) => grant.from.push((group, kind, namespace)),
                ("from", None) => cx.problem(item.at, &join(&path, third), "missing"),
                (_, name) => grant.to.push((group, kind, name)),
            }
        }
    }
    Some(grant)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::node;

    fn grant(yaml: &str) -> Result<Grant, Vec<String>> {
        let doc = &node::parse(yaml).unwrap()[0];
        document(doc).map_err(|p| p.iter().map(ToString::to_string).collect())
    }

    const GRANT: &str = "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: web-routes, namespace: shop}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: web}]\n  to: [{group: \"\", kind: Service, name: cart}]\n";

    #[test]
    fn a_grant_allows_its_kind_from_its_namespace_to_its_services_only() {
        let g = vec![grant(GRANT).unwrap()];
        let route = |kind, namespace| Referrer {
            kind,
            namespace,
            parent_namespaces: vec!["front"],
        };
        assert!(allows(&g, &route("HTTPRoute", "web"), "cart.shop"));
        assert!(allows(&g, &route("GRPCRoute", "shop"), "anything.shop"));
        assert!(
            allows(&[], &route("GRPCRoute", "web"), "v2.front"),
            "the parent's namespace"
        );
        assert!(!allows(&g, &route("GRPCRoute", "web"), "cart.shop"));
        assert!(!allows(&g, &route("HTTPRoute", "other"), "cart.shop"));
        assert!(!allows(&g, &route("HTTPRoute", "web"), "orders.shop"));
        assert!(!allows(&[], &route("HTTPRoute", "web"), "cart.shop"));
        let every = GRANT.replace(", name: cart", "");
        let every = [grant(&every).unwrap()];
        assert!(allows(&every, &route("HTTPRoute", "web"), "orders.shop"));
    }

    #[test]
    fn a_broken_grant_says_where() {
        let broken = GRANT.replace("namespace: web}", "namespaces: web}");
        assert_eq!(
            grant(&broken).unwrap_err(),
            [
                "5:10: spec.from[0].namespace: missing",
                "5:62: spec.from[0].namespaces: unknown field; did you mean `namespace`?"
            ]
        );
    }
}

//! Checking a `RequestMirror` filter: the Service that gets a copy of the rule's requests
//! (`backendRef`: a Service of the route's namespace, with its port) and the share of them it
//! gets (`percent`, or `fraction` as `numerator` / `denominator`; all of them when neither).

use weft_api::policy::Mirror;

use crate::policy::node::Node;
use crate::policy::walk::{Cx, join};

pub fn mirror(cx: &mut Cx, node: &Node, path: &str, namespace: &str) -> Option<Mirror> {
    let f = cx.map(node, path, &["backendRef", "percent", "fraction"])?;
    let Some(backend) = f.get("backendRef") else {
        cx.problem(
            node.at,
            &join(path, "backendRef"),
            "missing: the Service to mirror to",
        );
        return None;
    };
    let fraction = match (f.get("percent"), f.get("fraction")) {
        (Some(_), Some(n)) => {
            let why = "give `percent` or `fraction`, not both";
            cx.problem(n.at, &join(path, "fraction"), why);
            None
        }
        (Some(n), None) => cx
            .percent(n, &join(path, "percent"))
            .map(|p| f64::from(p) / 100.0),
        (None, Some(n)) => fraction(cx, n, &join(path, "fraction")),
        (None, None) => Some(1.0),
    };
    let (service, port) = backend_ref(cx, backend, &join(path, "backendRef"), namespace)?;
    Some(Mirror {
        service,
        port,
        fraction: fraction?,
    })
}

/// `numerator` / `denominator` (default 100), at most 1.
fn fraction(cx: &mut Cx, node: &Node, path: &str) -> Option<f64> {
    let f = cx.map(node, path, &["numerator", "denominator"])?;
    let Some(numerator) = f.get("numerator") else {
        cx.problem(node.at, &join(path, "numerator"), "missing");
        return None;
    };
    let numerator = cx.integer_u32(numerator, &join(path, "numerator"), 0, u32::MAX)?;
    let denominator = match f.get("denominator") {
        Some(n) => cx.integer_u32(n, &join(path, "denominator"), 1, u32::MAX)?,
        None => 100,
    };
    if numerator > denominator {
        let why = format!("{numerator}/{denominator} is more than every request");
        cx.problem(node.at, &join(path, "numerator"), why);
        return None;
    }
    Some(f64::from(numerator) / f64::from(denominator))
}

/// The mirror's Service (`<name>.<namespace>`) and port.
fn backend_ref(cx: &mut Cx, node: &Node, path: &str, namespace: &str) -> Option<(String, u32)> {
    let fields = ["group", "kind", "name", "namespace", "port"];
    let f = cx.map(node, path, &fields)?;
    let mut text = |field: &str| f.get(field).and_then(|n| cx.string(n, &join(path, field)));
    let group = text("group").unwrap_or_default();
    let kind = text("kind").unwrap_or_else(|| "Service".to_owned());
    let name = text("name");
    let mirror_namespace = text("namespace").unwrap_or_else(|| namespace.to_owned());
    if !group.is_empty() || kind != "Service" {
        let why =
            format!("a mirror of kind `{kind}` (group `{group}`): weft mirrors to Services only");
        cx.problem(node.at, &join(path, "kind"), why);
        return None;
    }
    let Some(name) = name else {
        cx.problem(node.at, &join(path, "name"), "missing");
        return None;
    };
    if mirror_namespace != namespace {
        let at = f.key_at("namespace").unwrap_or(node.at);
        let why = format!(
            "a mirror in another namespace (`{mirror_namespace}`) needs a ReferenceGrant there, which weft does not read yet"
        );
        cx.problem(at, &join(path, "namespace"), why);
        return None;
    }
    let Some(port) = f.get("port") else {
        let why = "missing: a Service mirror needs its port";
        cx.problem(node.at, &join(path, "port"), why);
        return None;
    };
    let port = cx.integer_u32(port, &join(path, "port"), 1, 65_535)?;
    Some((format!("{name}.{mirror_namespace}"), port))
}

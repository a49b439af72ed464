//! `status.parents[]` of an HTTPRoute or GRPCRoute object, as every Gateway API implementation
//! writes it: one entry per parent this controller serves (each Service `parentRef`), with the
//! `parentRef` echoed, weft's `controllerName` and two conditions:
//!
//! ```yaml
//! status:
//!   parents:
//!     - parentRef: {group: "", kind: Service, name: hello, port: 8080}
//!       controllerName: weft.dev/mesh-controller
//!       conditions:
//!         - type: Accepted        # Accepted | UnsupportedValue | NoMatchingParent | Overridden
//!           status: "True"
//!           reason: Accepted
//!           message: in force for every caller of hello.demo
//!           observedGeneration: 3
//!           lastTransitionTime: "2026-12-01T16:20:00Z"
//!         - type: ResolvedRefs    # ResolvedRefs | InvalidKind | RefNotPermitted | BackendNotFound
//!           status: "True"
//!           ...
//! ```
//!
//! Entries of other controllers (a Gateway's, another mesh's) are kept as they are. The
//! transition time of a condition moves only when its status flips, so an unchanged outcome
//! gives an unchanged status, which is then not written again.

use std::collections::HashMap;

use serde_json::{Value as Json, json};

use super::grant::{self, Grant};

/// weft's `controllerName` in `status.parents[]`.
pub const CONTROLLER_NAME: &str = "weft.dev/mesh-controller";

/// What checking the object found, before looking at its parents and backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// The object passed the checks and is in force.
    InForce,
    /// A check failed: not applied (the last accepted version, if any, stays in force).
    Refused(Vec<String>),
    /// A `--routes` file defines the same route: the file's is in force.
    Overridden,
}

/// What the conditions are judged against: the mesh's Services and the grants in force.
pub struct World<'a> {
    /// The ports of each Service (`<name>.<namespace>`) discovery knows.
    pub services: &'a HashMap<String, Vec<u16>>,
    pub grants: &'a [Grant],
}

impl World<'_> {
    fn known(&self, service: &str) -> bool {
        self.services.contains_key(service)
    }
}

/// One condition: `(status, reason, message)`.
type Verdict = (bool, &'static str, String);

/// The `status.parents` to write for `object` (kind `kind`), keeping other controllers'
/// entries and the transition times of conditions that did not flip.
pub fn parents(kind: &str, object: &Json, checked: &Checked, world: &World) -> Vec<Json> {
    let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default();
    let generation = object["metadata"]["generation"].clone();
    let previous = object["status"]["parents"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut out: Vec<Json> = previous
        .iter()
        .filter(|p| p["controllerName"] != CONTROLLER_NAME)
        .cloned()
        .collect();
    let service_parents = service_parents(object);
    let referrer = grant::Referrer {
        kind,
        namespace,
        parent_namespaces: service_parents
            .iter()
            .map(|p| p["namespace"].as_str().unwrap_or(namespace))
            .collect(),
    };
    let resolved = resolved_refs(&referrer, object, world);
    for parent_ref in &service_parents {
        let name = parent_ref["name"].as_str().unwrap_or_default();
        let parent_namespace = parent_ref["namespace"].as_str().unwrap_or(namespace);
        let service = format!("{name}.{parent_namespace}");
        let accepted = match checked {
            Checked::Refused(problems) => (false, "UnsupportedValue", problems.join("\n")),
            Checked::Overridden => (
                false,
                "Overridden",
                format!(
                    "a --routes file defines {kind} {namespace}/{}: the file is in force",
                    object["metadata"]["name"].as_str().unwrap_or_default()
                ),
            ),
            Checked::InForce if !world.known(&service) => (
                false,
                "NoMatchingParent",
                format!("no Service {service} in the mesh"),
            ),
            Checked::InForce if !has_port(world, &service, &parent_ref["port"]) => (
                false,
                "NoMatchingParent",
                format!("the Service {service} has no port {}", parent_ref["port"]),
            ),
            Checked::InForce if parent_namespace == namespace => (
                true,
                "Accepted",
                format!("in force for every caller of {service}"),
            ),
            Checked::InForce => (
                true,
                "Accepted",
                format!("in force for the callers of {service} in namespace {namespace}"),
            ),
        };
        let old = previous
            .iter()
            .find(|p| p["controllerName"] == CONTROLLER_NAME && p["parentRef"] == *parent_ref);
        let conditions: Vec<Json> = [("Accepted", &accepted), ("ResolvedRefs", &resolved)]
            .into_iter()
            .map(|(kind, verdict)| condition(kind, verdict, &generation, old))
            .collect();
        out.push(json!({
            "parentRef": parent_ref,
            "controllerName": CONTROLLER_NAME,
            "conditions": conditions,
        }));
    }
    out
}

/// The reasons of the conditions that are False in weft's entries of `parents`.
pub fn false_reasons(parents: &[Json]) -> Vec<String> {
    parents
        .iter()
        .filter(|p| p["controllerName"] == CONTROLLER_NAME)
        .flat_map(|p| p["conditions"].as_array().cloned().unwrap_or_default())
        .filter(|c| c["status"] == "False")
        .filter_map(|c| c["reason"].as_str().map(str::to_owned))
        .collect()
}

/// Whether `service` has `port` (any port when the parentRef names none).
fn has_port(world: &World, service: &str, port: &Json) -> bool {
    let Some(port) = port.as_u64() else {
        return true;
    };
    let ports = world.services.get(service);
    ports.is_some_and(|ports| ports.iter().any(|p| u64::from(*p) == port))
}

/// The `parentRefs` that name a Service (`group: ""`, `kind: Service`), as written.
fn service_parents(object: &Json) -> Vec<Json> {
    let refs = object["spec"]["parentRefs"].as_array().cloned();
    refs.unwrap_or_default()
        .into_iter()
        .filter(|p| {
            p["group"].as_str().unwrap_or_default().is_empty()
                && p["kind"].as_str().unwrap_or("Gateway") == "Service"
                && p["name"].is_string()
        })
        .collect()
}

/// `ResolvedRefs`: every `backendRef` of every rule is a Service (else `InvalidKind`), in the
/// route's namespace or granted (else `RefNotPermitted`), and known (else `BackendNotFound`).
fn resolved_refs(referrer: &grant::Referrer, object: &Json, world: &World) -> Verdict {
    let (kind, namespace) = (referrer.kind, referrer.namespace);
    let mut problems: Vec<(usize, &'static str, String)> = Vec::new();
    let rules = object["spec"]["rules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for rule in &rules {
        let refs = rule["backendRefs"].as_array().cloned().unwrap_or_default();
        for backend in &refs {
            let group = backend["group"].as_str().unwrap_or_default();
            let backend_kind = backend["kind"].as_str().unwrap_or("Service");
            let name = backend["name"].as_str().unwrap_or_default();
            let service = format!(
                "{name}.{}",
                backend["namespace"].as_str().unwrap_or(namespace)
            );
            if !group.is_empty() || backend_kind != "Service" {
                let why =
                    format!("{backend_kind} {name} (group `{group}`): weft sends to Services only");
                problems.push((0, "InvalidKind", why));
            } else if !grant::allows(world.grants, referrer, &service) {
                let why = format!(
                    "{service}: no ReferenceGrant in its namespace allows {kind}s of namespace {namespace}; its share is answered 500"
                );
                problems.push((1, "RefNotPermitted", why));
            } else if !world.known(&service) {
                let why =
                    format!("{service} is not a Service of the mesh; its share is answered 500");
                problems.push((2, "BackendNotFound", why));
            }
        }
    }
    problems.sort_by_key(|(rank, _, _)| *rank);
    match problems.first() {
        None => (
            true,
            "ResolvedRefs",
            "every backend is a known Service".to_owned(),
        ),
        Some((_, reason, _)) => {
            let message: Vec<String> = problems.iter().map(|(_, _, m)| m.clone()).collect();
            (false, reason, message.join("\n"))
        }
    }
}

/// One condition for `generation`; its transition time is `old`'s when the status is the same.
fn condition(kind: &str, verdict: &Verdict, generation: &Json, old: Option<&Json>) -> Json {
    let (holds, reason, message) = verdict;
    let status = if *holds { "True" } else { "False" };
    let old = old
        .and_then(|p| p["conditions"].as_array())
        .and_then(|c| c.iter().find(|c| c["type"] == kind));
    let time = match old {
        Some(c) if c["status"] == status && c["lastTransitionTime"].is_string() => {
            c["lastTransitionTime"].clone()
        }
        _ => json!(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now()
        )),
    };
    json!({
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(backends: Json, status: Json) -> Json {
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "hello", "namespace": "demo", "generation": 4},
            "spec": {
                "parentRefs": [
                    {"group": "", "kind": "Service", "name": "hello", "port": 8080},
                    {"name": "edge", "namespace": "infra"},
                ],
                "rules": [{"backendRefs": backends}],
            },
            "status": status,
        })
    }

    /// Each of `names` with port 8080.
    fn services(names: &[&str]) -> HashMap<String, Vec<u16>> {
        names
            .iter()
            .map(|n| ((*n).to_owned(), vec![8080]))
            .collect()
    }

    fn conditions(parents: &[Json]) -> Vec<(String, String, String)> {
        let ours = parents
            .iter()
            .find(|p| p["controllerName"] == CONTROLLER_NAME)
            .unwrap();
        let all = ours["conditions"].as_array().unwrap();
        all.iter()
            .map(|c| {
                let text = |k: &str| c[k].as_str().unwrap().to_owned();
                (text("type"), text("status"), text("reason"))
            })
            .collect()
    }

    fn reasons(parents: &[Json]) -> Vec<String> {
        conditions(parents)
            .into_iter()
            .map(|(t, s, r)| format!("{t}={s} {r}"))
            .collect()
    }

    #[test]
    fn conditions_follow_the_backends_the_grants_and_the_check() {
        let known = services(&["hello.demo", "v1.demo", "cart.shop"]);
        let world = World {
            services: &known,
            grants: &[],
        };
        let good = route(json!([{"name": "v1", "port": 8080}]), json!({}));
        let p = parents("HTTPRoute", &good, &Checked::InForce, &world);
        assert_eq!(p.len(), 1, "the Gateway parent is not ours: {p:?}");
        assert_eq!(p[0]["parentRef"]["port"], 8080);
        assert_eq!(p[0]["conditions"][0]["observedGeneration"], 4);
        assert_eq!(
            reasons(&p),
            ["Accepted=True Accepted", "ResolvedRefs=True ResolvedRefs"]
        );

        let missing = route(json!([{"name": "v9", "port": 8080}]), json!({}));
        let p = parents("HTTPRoute", &missing, &Checked::InForce, &world);
        assert_eq!(
            reasons(&p),
            [
                "Accepted=True Accepted",
                "ResolvedRefs=False BackendNotFound"
            ]
        );

        let other = route(
            json!([{"name": "cart", "namespace": "shop", "port": 80}]),
            json!({}),
        );
        let p = parents("HTTPRoute", &other, &Checked::InForce, &world);
        assert_eq!(reasons(&p)[1], "ResolvedRefs=False RefNotPermitted");
        let granted = Grant {
            name: "g".into(),
            namespace: "shop".into(),
            from: vec![(
                grant::GATEWAY_GROUP.into(),
                "HTTPRoute".into(),
                "demo".into(),
            )],
            to: vec![(String::new(), "Service".into(), None)],
        };
        let world_granted = World {
            services: &known,
            grants: std::slice::from_ref(&granted),
        };
        let p = parents("HTTPRoute", &other, &Checked::InForce, &world_granted);
        assert_eq!(reasons(&p)[1], "ResolvedRefs=True ResolvedRefs");

        let kind = route(
            json!([{"group": "x.io", "kind": "Bucket", "name": "b"}]),
            json!({}),
        );
        let refused = Checked::Refused(vec!["HTTPRoute demo/hello: spec: bad".into()]);
        let p = parents("HTTPRoute", &kind, &refused, &world);
        assert_eq!(
            reasons(&p),
            [
                "Accepted=False UnsupportedValue",
                "ResolvedRefs=False InvalidKind"
            ]
        );
        assert_eq!(false_reasons(&p), ["UnsupportedValue", "InvalidKind"]);

        let without_hello = services(&["v1.demo"]);
        let no_service = World {
            services: &without_hello,
            grants: &[],
        };
        let p = parents("HTTPRoute", &good, &Checked::InForce, &no_service);
        assert_eq!(reasons(&p)[0], "Accepted=False NoMatchingParent");
        let mut on_8081 = services(&["hello.demo", "v1.demo"]);
        on_8081.insert("hello.demo".to_owned(), vec![8081]);
        let no_port = World {
            services: &on_8081,
            grants: &[],
        };
        let p = parents("HTTPRoute", &good, &Checked::InForce, &no_port);
        assert_eq!(reasons(&p)[0], "Accepted=False NoMatchingParent");
        let message = &p[0]["conditions"][0]["message"];
        assert_eq!(message, "the Service hello.demo has no port 8080");
    }

    #[test]
    fn other_controllers_entries_and_unflipped_times_are_kept() {
        let services = services(&["hello.demo", "v1.demo"]);
        let world = World {
            services: &services,
            grants: &[],
        };
        let first = route(json!([{"name": "v1", "port": 8080}]), json!({}));
        let written = parents("HTTPRoute", &first, &Checked::InForce, &world);
        let theirs = json!({"parentRef": {"name": "edge"}, "controllerName": "example.com/gateway", "conditions": []});
        let stored = route(
            json!([{"name": "v1", "port": 8080}]),
            json!({"parents": [theirs.clone(), written[0].clone()]}),
        );
        let again = parents("HTTPRoute", &stored, &Checked::InForce, &world);
        assert_eq!(
            again,
            stored["status"]["parents"].as_array().unwrap().clone(),
            "unchanged"
        );
        let refused = Checked::Refused(vec!["bad".into()]);
        let flipped = parents("HTTPRoute", &stored, &refused, &world);
        assert_eq!(flipped[0], theirs);
        assert_eq!(
            flipped[1]["conditions"][1]["lastTransitionTime"],
            written[0]["conditions"][1]["lastTransitionTime"],
            "ResolvedRefs did not flip"
        );
    }
}

//! Checking a custom resource with the checks of the files: a ServicePolicy object goes through
//! the policy walker ([`crate::policy::check::document`]), a MeshService object through the
//! services checker ([`crate::discovery::services::parse`]). Only `apiVersion`, `kind`,
//! `metadata.name`, `metadata.namespace` and `spec` are checked: the rest of the metadata and
//! the status belong to Kubernetes and to us.
//!
//! Problems read like `weft policy check`'s, with the object in place of the file and no line
//! numbers:
//! `ServicePolicy prod/payments: spec.client.defaults.retries.limit: 9 is out of range (0-5)`.

use std::path::Path;

use serde_json::{Value as Json, json};

use super::json_tree;
use crate::discovery::services::{self, Service};
use crate::policy::check;
use crate::policy::model::ServicePolicy;
use crate::policy::walk::Problem;

/// `ServicePolicy prod/payments`: how an object is named in messages and logs.
pub fn source(kind: &str, object: &Json) -> String {
    let meta = &object["metadata"];
    let namespace = meta["namespace"].as_str().unwrap_or_default();
    let name = meta["name"].as_str().unwrap_or_default();
    format!("{kind} {namespace}/{name}")
}

/// The document the files would hold for `object`.
fn document(object: &Json) -> Json {
    let mut document = json!({
        "apiVersion": object["apiVersion"],
        "kind": object["kind"],
        "metadata": {
            "name": object["metadata"]["name"],
            "namespace": object["metadata"]["namespace"],
        },
    });
    if let Some(spec) = object.get("spec") {
        document["spec"] = spec.clone();
    }
    document
}

/// A ServicePolicy object: the checked policy, or every problem.
pub fn service_policy(object: &Json) -> Result<ServicePolicy, Vec<String>> {
    let source = source(check::KIND, object);
    check::document(&json_tree::tree(&document(object)))
        .map_err(|problems| problems.iter().map(|p| line(&source, p)).collect())
}

/// `ServicePolicy prod/payments: spec.path: what`: a problem of an object, which has no lines.
pub(crate) fn line(source: &str, problem: &Problem) -> String {
    match problem.path.as_str() {
        "" => format!("{source}: {}", problem.message),
        path => format!("{source}: {path}: {}", problem.message),
    }
}

/// A MeshService object: the checked service, or every problem.
///
/// The services checker reads YAML text and reports lines; the object is rendered as YAML for
/// it and the line numbers are dropped from the start of each message (they would count lines
/// of a text nobody sees).
pub fn mesh_service(object: &Json, trust_domain: &str) -> Result<Service, Vec<String>> {
    let source = source(services::KIND, object);
    let text = serde_saphyr::to_string(&document(object))
        .map_err(|e| vec![format!("{source}: cannot render as YAML: {e}")])?;
    let mut found = services::parse(text.as_bytes(), Path::new(&source), trust_domain)
        .map_err(|e| problems(&source, &format!("{e:#}")))?;
    match found.pop() {
        Some(service) if found.is_empty() => Ok(service),
        _ => Err(vec![format!("{source}: expected one MeshService")]),
    }
}

/// `MeshService prod/db:12:3: what` → `MeshService prod/db: what`; the quoted snippet lines
/// that follow a syntax error are dropped.
fn problems(source: &str, error: &str) -> Vec<String> {
    error
        .lines()
        .filter_map(|line| line.strip_prefix(source))
        .map(|rest| {
            let what = rest
                .trim_start_matches(|c: char| c == ':' || c.is_ascii_digit())
                .trim_start();
            format!("{source}: {what}")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(spec: Json) -> Json {
        json!({
            "apiVersion": "weft.dev/v1alpha1",
            "kind": "ServicePolicy",
            "metadata": {"name": "payments", "namespace": "prod", "uid": "x", "generation": 2,
                         "resourceVersion": "7", "managedFields": [{"manager": "kubectl"}]},
            "spec": spec,
            "status": {"observedGeneration": 1},
        })
    }

    #[test]
    fn a_policy_object_is_checked_like_its_file() {
        let good = policy(
            json!({"client": {"defaults": {"retries": {"limit": 2, "on": ["5xx", "503"]}}}}),
        );
        let checked = service_policy(&good).unwrap();
        assert_eq!(checked.key(), "payments.prod");

        let bad = policy(json!({
            "routes": [{"name": "create", "match": {"path": "/v1/charges", "methods": ["POST"]}}],
            "client": {"defaults": {"retries": {"limit": 9, "on": ["5xx"], "backof": {}}}},
        }));
        assert_eq!(
            service_policy(&bad).unwrap_err(),
            [
                "ServicePolicy prod/payments: spec.client.defaults.retries.backof: unknown field; did you mean `backoff`?",
                "ServicePolicy prod/payments: spec.client.defaults.retries.limit: 9 is out of range (0-5)",
                // A problem made of several fields names the other one by its path alone.
                "ServicePolicy prod/payments: spec.routes[0].match.methods[0]: POST is not idempotent, but route `create` retries it on responses the app may have acted on (spec.client.defaults.retries.on); set retries.nonIdempotent: true in its override to acknowledge, or retries.limit: 0, or retry only on connect-failure and refused-stream",
            ]
        );
        // Quoting rules hold: a status must be a string, as in a file.
        let unquoted = policy(json!({"client": {"defaults": {"retries": {"on": [503]}}}}));
        assert_eq!(
            service_policy(&unquoted).unwrap_err(),
            [
                "ServicePolicy prod/payments: spec.client.defaults.retries.on[0]: write HTTP statuses quoted: \"503\""
            ]
        );
    }

    #[test]
    fn a_route_defined_twice_names_the_first_by_path() {
        let spec = json!({"routes": [{"name": "a", "match": {"path": "/a"}}, {"name": "a", "match": {"path": "/b"}}]});
        assert_eq!(
            service_policy(&policy(spec)).unwrap_err(),
            [
                "ServicePolicy prod/payments: spec.routes[1].name: route `a` is already defined at spec.routes[0].name"
            ]
        );
    }

    fn service(spec: Json) -> Json {
        json!({
            "apiVersion": "weft.dev/v1alpha1",
            "kind": "MeshService",
            "metadata": {"name": "db", "namespace": "data", "generation": 1},
            "spec": spec,
        })
    }

    #[test]
    fn a_mesh_service_object_is_checked_like_its_file() {
        let good = service(json!({
            "addresses": ["10.96.0.20"],
            "ports": [{"port": 5432, "protocol": "opaque"}],
            "endpoints": [{"address": "10.200.0.20", "serviceAccount": "db"}],
        }));
        let checked = mesh_service(&good, "cluster.local").unwrap();
        assert_eq!(checked.name, "db.data");
        assert_eq!(checked.endpoints.len(), 1);

        let bad = service(
            json!({"ports": [{"port": 0}], "endpoints": [{"address": "10.200.0.x", "meshed": false}]}),
        );
        assert_eq!(
            mesh_service(&bad, "cluster.local").unwrap_err(),
            [
                "MeshService data/db: port 0 is out of range (1-65535)",
                "MeshService data/db: \"10.200.0.x\" is not an IP address (write 10.96.0.10 or fd00::10, no port)",
            ]
        );
    }
}

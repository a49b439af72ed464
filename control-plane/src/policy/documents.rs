//! Which documents of a policy file are ServicePolicies, so that `--policies` and `weft policy
//! check` can be pointed at a GitOps folder where Deployments, Services, ConfigMaps,
//! kustomization.yaml, Gateway API routes, MeshServices and ServicePolicies sit side by side.
//!
//! The rule, the same for the control plane and the CLI: a document is checked as a
//! ServicePolicy when its `kind` is `ServicePolicy`, or its `apiVersion` is weft's (`weft.dev/…`,
//! so a misspelt kind is reported, not skipped), or it has neither but its `spec` has a
//! ServicePolicy's sections (`routes`, `client`, `server`: a policy that lost its header).
//! Everything else is skipped, with a sentence that says what it is and why it is not read.

use std::path::Path;

use super::check::KIND;
use super::node::{Node, Pos, Value};

/// The API group of weft's own kinds.
const WEFT_GROUP: &str = "weft.dev";

/// The Gateway API's groups (standard and experimental channels).
const GATEWAY_GROUPS: [&str; 2] = ["gateway.networking.k8s.io", "gateway.networking.x-k8s.io"];

/// A document that is not a ServicePolicy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub at: Pos,
    /// `Deployment web (apps/v1)`, `kustomization`, `a list`.
    pub what: String,
    pub why: String,
    /// An `HTTPRoute` or `GRPCRoute`: not a ServicePolicy, but checked as a route by
    /// `weft policy check` ([`crate::routes`]), so not counted among the documents skipped.
    pub route: bool,
}

/// `None`: a ServicePolicy (to be checked); otherwise why the document is skipped. `file` is the
/// file's name as shown, for kustomization.yaml, which often has no `apiVersion` or `kind`.
pub fn skipped(node: &Node, file: &str) -> Option<Skipped> {
    let skip = |what: String, why: &str| {
        Some(Skipped {
            at: node.at,
            what,
            why: why.to_owned(),
            route: false,
        })
    };
    if !matches!(node.value, Value::Map(_)) {
        return skip(
            node.kind().to_owned(),
            "not a map, so not a Kubernetes object",
        );
    }
    let text = |key: &str| node.get(key).and_then(Node::text).unwrap_or_default();
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
    if kind == KIND || group == WEFT_GROUP && kind != "MeshService" && kind != "BootstrapTokens" {
        return None;
    }
    let what = format!("{} ({api_version})", describe(node, kind));
    if group == WEFT_GROUP {
        let why = match kind {
            "MeshService" => {
                "a service for discovery: the control plane reads MeshServices from --services or the API server, not --policies"
            }
            _ => "bootstrap tokens: the control plane reads them from --bootstrap-tokens",
        };
        return skip(what, why);
    }
    if GATEWAY_GROUPS.contains(&group) {
        // ReferenceGrants are read with the routes: they allow cross-namespace backends.
        let route = matches!(kind, "HTTPRoute" | "GRPCRoute" | "ReferenceGrant");
        let why = match (route, kind) {
            (true, "ReferenceGrant") => "a grant: the control plane reads them from --routes",
            (true, _) => "a route: the control plane reads routes from --routes",
            (false, _) => {
                "not a route of the mesh: weft reads HTTPRoutes, GRPCRoutes and ReferenceGrants"
            }
        };
        let mut skipped = skip(format!("a Gateway API {what}"), why);
        if let Some(s) = &mut skipped {
            s.route = route;
        }
        return skipped;
    }
    if api_version.is_empty() && kind.is_empty() {
        let is_kustomization = Path::new(file)
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| matches!(n, "kustomization.yaml" | "kustomization.yml"));
        if is_kustomization {
            return skip("a kustomization".to_owned(), "kustomize's, not weft's");
        }
        let spec = node.get("spec");
        let policy_like = ["routes", "client", "server"]
            .iter()
            .any(|section| spec.and_then(|s| s.get(section)).is_some());
        if policy_like {
            return None;
        }
        return skip(
            "a map".to_owned(),
            "no apiVersion or kind, so not a Kubernetes object",
        );
    }
    skip(what, "not a weft document")
}

/// `Deployment web`, `Service api.prod`: the kind and the name as written.
fn describe(node: &Node, kind: &str) -> String {
    let meta = node.get("metadata");
    let field = |key: &str| meta.and_then(|m| m.get(key)).and_then(Node::text);
    let kind = if kind.is_empty() { "no kind" } else { kind };
    match (field("name"), field("namespace")) {
        (Some(name), Some(namespace)) => format!("{kind} {name}.{namespace}"),
        (Some(name), None) => format!("{kind} {name}"),
        _ => kind.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::node;

    fn verdict(text: &str, file: &str) -> Option<String> {
        let docs = node::parse(text).unwrap();
        skipped(&docs[0], file).map(|s| format!("{}: {}: {}", s.at, s.what, s.why))
    }

    #[test]
    fn policies_and_weft_documents_are_checked() {
        let policy = "apiVersion: weft.dev/v1alpha1\nkind: ServicePolicy\n";
        assert_eq!(verdict(policy, "a.yaml"), None);
        // A misspelt kind or a wrong apiVersion is weft's, to be reported by the checker.
        assert_eq!(
            verdict(
                "apiVersion: weft.dev/v1alpha1\nkind: ServicePolicey\n",
                "a.yaml"
            ),
            None
        );
        assert_eq!(
            verdict("apiVersion: v1\nkind: ServicePolicy\n", "a.yaml"),
            None
        );
        // A policy that lost its header.
        assert_eq!(
            verdict("metadata: {name: a}\nspec:\n  client: {}\n", "a.yaml"),
            None
        );
    }

    #[test]
    fn everything_else_is_skipped_with_a_reason() {
        assert_eq!(
            verdict(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: demo}\n",
                "a.yaml"
            )
            .unwrap(),
            "1:1: Deployment web.demo (apps/v1): not a weft document"
        );
        assert_eq!(
            verdict(
                "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: web}\nspec: {parentRefs: []}\n",
                "a.yaml"
            )
            .unwrap(),
            "1:1: a Gateway API HTTPRoute web (gateway.networking.k8s.io/v1): a route: the control plane reads routes from --routes"
        );
        assert!(
            verdict(
                "apiVersion: weft.dev/v1alpha1\nkind: MeshService\n",
                "a.yaml"
            )
            .unwrap()
            .contains("MeshService (weft.dev/v1alpha1): a service for discovery")
        );
        assert_eq!(
            verdict("resources: [a.yaml]\n", "dir/kustomization.yaml").unwrap(),
            "1:1: a kustomization: kustomize's, not weft's"
        );
        assert_eq!(
            verdict("resources: [a.yaml]\n", "dir/other.yaml").unwrap(),
            "1:1: a map: no apiVersion or kind, so not a Kubernetes object"
        );
        assert_eq!(
            verdict("- a\n- b\n", "a.yaml").unwrap(),
            "1:1: a list: not a map, so not a Kubernetes object"
        );
    }
}

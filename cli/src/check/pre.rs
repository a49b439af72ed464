//! `weft check --pre`: before installing, may this user install weft here, and does the cluster
//! run native sidecars? Permissions are asked with SelfSubjectAccessReview, as `kubectl auth
//! can-i` does.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};

use super::report::Report;

/// What `kubectl apply -k manifests/` creates: (API group, resource, namespace).
const INSTALLS: [(&str, &str, Option<&str>); 10] = [
    ("", "namespaces", None),
    ("apiextensions.k8s.io", "customresourcedefinitions", None),
    ("rbac.authorization.k8s.io", "clusterroles", None),
    ("rbac.authorization.k8s.io", "clusterrolebindings", None),
    (
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        None,
    ),
    ("", "serviceaccounts", Some("weft-system")),
    ("", "services", Some("weft-system")),
    ("", "secrets", Some("weft-system")),
    ("apps", "deployments", Some("weft-system")),
    ("policy", "poddisruptionbudgets", Some("weft-system")),
];

pub async fn check(client: &kube::Client, namespace: &str, report: &mut Report) {
    report.category("pre-install");
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    for (group, resource, ns) in INSTALLS {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    group: Some(group.to_owned()),
                    resource: Some(resource.to_owned()),
                    verb: Some("create".to_owned()),
                    namespace: ns.map(str::to_owned),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let what = match (group, ns) {
            ("", None) => resource.to_owned(),
            ("", Some(ns)) => format!("{resource} in {ns}"),
            (g, None) => format!("{resource}.{g}"),
            (g, Some(ns)) => format!("{resource}.{g} in {ns}"),
        };
        match reviews.create(&PostParams::default(), &review).await {
            Ok(answer) if answer.status.as_ref().is_some_and(|s| s.allowed) => {
                report.pass(format!("can create {what}"))
            }
            Ok(answer) => {
                let why = answer
                    .status
                    .and_then(|s| s.reason)
                    .filter(|r| !r.is_empty())
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                report.fail(format!("cannot create {what}{why}: ask a cluster admin"))
            }
            Err(e) => report.fail(format!("cannot ask whether {what} may be created: {e}")),
        }
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    match namespaces.get_opt(namespace).await {
        Ok(None) => report.pass(format!("namespace {namespace} does not exist yet")),
        Ok(Some(_)) => report.warn(format!(
            "namespace {namespace} exists already: is weft installed? (weft check without --pre)"
        )),
        Err(e) => report.fail(format!("cannot read namespace {namespace}: {e}")),
    }
}

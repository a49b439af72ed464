//! The cluster itself and what the install put in it: the API server and its version, the CRDs,
//! the control plane's pods.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams};

use super::report::Report;

/// The oldest Kubernetes weft supports: native sidecars (init containers with
/// `restartPolicy: Always`) are on by default from 1.29.
pub const OLDEST_SUPPORTED_MINOR: u32 = 29;

pub const CRDS: [&str; 2] = ["servicepolicies.weft.dev", "meshservices.weft.dev"];
pub const CRD_VERSION: &str = "v1alpha1";

/// Returns false when the API server cannot be reached (the other checks are then skipped).
pub async fn api(client: &kube::Client, server: &str, report: &mut Report) -> bool {
    report.category("kubernetes-api");
    let version = match client.apiserver_version().await {
        Ok(version) => version,
        Err(e) => {
            report.fail(format!("cannot reach the API server at {server}: {e}"));
            return false;
        }
    };
    report.pass(format!(
        "the API server at {server} answers (Kubernetes {})",
        version.git_version
    ));
    match minor(&version.minor) {
        Some(m) if version.major == "1" && m >= OLDEST_SUPPORTED_MINOR => report.pass(format!(
            "Kubernetes {} is supported (1.{OLDEST_SUPPORTED_MINOR} or later)",
            version.git_version
        )),
        _ => report.fail(format!(
            "Kubernetes {} is older than 1.{OLDEST_SUPPORTED_MINOR}: native sidecars are missing (inject with --sidecar-mode classic, or upgrade)",
            version.git_version
        )),
    }
    true
}

/// `"29"` or `"29+"` (some providers add the `+`).
fn minor(text: &str) -> Option<u32> {
    text.trim_end_matches('+').parse().ok()
}

pub async fn crds(client: &kube::Client, report: &mut Report) {
    report.category("crds");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in CRDS {
        match crds.get_opt(name).await {
            Ok(Some(crd)) => {
                let serves = crd
                    .spec
                    .versions
                    .iter()
                    .any(|v| v.name == CRD_VERSION && v.served && v.storage);
                if serves {
                    report.pass(format!("{name} is installed and serves {CRD_VERSION}"));
                } else {
                    let found: Vec<&str> =
                        crd.spec.versions.iter().map(|v| v.name.as_str()).collect();
                    report.fail(format!(
                        "{name} serves {found:?}, not {CRD_VERSION}: kubectl apply -k manifests/"
                    ));
                }
            }
            Ok(None) => report.fail(format!(
                "{name} is not installed: kubectl apply -k manifests/"
            )),
            Err(e) => report.fail(format!("cannot read {name}: {e}")),
        }
    }
}

pub async fn control_plane(client: &kube::Client, namespace: &str, report: &mut Report) {
    report.category("control-plane");
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = ListParams::default().labels("app.kubernetes.io/name=weft-control-plane");
    let list = match pods.list(&selector).await {
        Ok(list) => list,
        Err(e) => {
            report.fail(format!(
                "cannot list the control plane's pods in {namespace}: {e}"
            ));
            return;
        }
    };
    let total = list.items.len();
    let not_ready: Vec<String> = list
        .items
        .iter()
        .filter(|pod| !is_ready(pod))
        .map(|pod| pod.metadata.name.clone().unwrap_or_default())
        .collect();
    match (total, not_ready.len()) {
        (0, _) => report.fail(format!(
            "no weft-control-plane pod in {namespace}: kubectl apply -k manifests/"
        )),
        (n, 0) => report.pass(format!("{n} of {n} weft-control-plane pods are ready")),
        (n, k) if k < n => report.warn(format!(
            "{} of {n} weft-control-plane pods are ready (not ready: {})",
            n - k,
            not_ready.join(", ")
        )),
        (n, _) => report.fail(format!(
            "none of {n} weft-control-plane pods is ready ({}): kubectl -n {namespace} describe pods -l app.kubernetes.io/name=weft-control-plane",
            not_ready.join(", ")
        )),
    }
}

pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

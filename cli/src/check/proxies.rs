//! `weft check --proxy`: every meshed pod's sidecar, read through the API server's pod proxy
//! (`/api/v1/namespaces/<ns>/pods/<pod>:15000/proxy/metrics`, so no port-forward is needed): its
//! version and when its certificate expires.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use super::report::Report;
use crate::prometheus_text::{label, value};

const ADMIN_PORT: u16 = 15000;
const SIDECAR: &str = "weft-proxy";
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn check(client: &kube::Client, namespace: Option<&str>, report: &mut Report) {
    report.category("data-plane");
    let pods: Api<Pod> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let list = match pods.list(&ListParams::default()).await {
        Ok(list) => list,
        Err(e) => {
            report.fail(format!("cannot list pods: {e}"));
            return;
        }
    };
    let meshed: Vec<&Pod> = list.items.iter().filter(|p| has_sidecar(p)).collect();
    if meshed.is_empty() {
        report.warn(
            "no pod has a weft-proxy sidecar yet (label a namespace weft.dev/inject=enabled)",
        );
        return;
    }
    let ours = env!("CARGO_PKG_VERSION");
    for pod in meshed {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let path = format!("/api/v1/namespaces/{ns}/pods/{name}:{ADMIN_PORT}/proxy/metrics");
        let metrics = match scrape(client, &path).await {
            Ok(text) => text,
            Err(e) => {
                report.fail(format!(
                    "{ns}/{name}: cannot read the sidecar's metrics: {e}"
                ));
                continue;
            }
        };
        let version = label(&metrics, "weft_build_info", "version");
        let version = version.as_deref().unwrap_or("unknown");
        let expiry = value(
            &metrics,
            "weft_identity_certificate_expiry_timestamp_seconds",
            &[],
        )
        .filter(|v| *v > 0.0)
        .map(|v| UNIX_EPOCH + Duration::from_secs_f64(v));
        let what = format!("{ns}/{name}: weft-proxy {version}");
        match expiry.map(|e| e.duration_since(SystemTime::now())) {
            None => report.fail(format!("{what} has no certificate: is the control plane reachable? (kubectl -n {ns} logs {name} -c {SIDECAR})")),
            Some(Err(_)) => report.fail(format!("{what}: its certificate has expired (kubectl -n {ns} logs {name} -c {SIDECAR})")),
            Some(Ok(left)) if version != ours => report.warn(format!(
                "{what} (this weft is {ours}), certificate valid for {} more minutes",
                left.as_secs() / 60
            )),
            Some(Ok(left)) => report.pass(format!(
                "{what}, certificate valid for {} more minutes",
                left.as_secs() / 60
            )),
        }
    }
}

/// One sidecar's `/metrics` through the API server, within [`SCRAPE_TIMEOUT`] (one stuck
/// sidecar must not hold up the report).
async fn scrape(client: &kube::Client, path: &str) -> Result<String, String> {
    let request = http::Request::get(path)
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    tokio::time::timeout(SCRAPE_TIMEOUT, client.request_text(request))
        .await
        .map_err(|_| format!("no answer within {} s", SCRAPE_TIMEOUT.as_secs()))?
        .map_err(|e| e.to_string())
}

pub(crate) fn has_sidecar(pod: &Pod) -> bool {
    pod.spec.as_ref().is_some_and(|spec| {
        spec.containers.iter().any(|c| c.name == SIDECAR)
            || spec
                .init_containers
                .iter()
                .flatten()
                .any(|c| c.name == SIDECAR)
    })
}

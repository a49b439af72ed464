//! The Gateway API CRDs routing needs (`HTTPRoute`, `GRPCRoute`, `ReferenceGrant`): the user
//! installs them from a Gateway API release, weft does not. Missing ones are a warning, not a
//! failure: the mesh works without routes, and the control plane reads them once installed.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;

use super::report::Report;

pub const CRDS: [&str; 3] = [
    "httproutes.gateway.networking.k8s.io",
    "grpcroutes.gateway.networking.k8s.io",
    "referencegrants.gateway.networking.k8s.io",
];

/// Where the standard channel's CRDs are.
const INSTALL: &str = "kubectl apply -f https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.6.1/standard-install.yaml";

pub async fn crds(client: &kube::Client, report: &mut Report) {
    report.category("gateway-api");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in CRDS {
        match crds.get_opt(name).await {
            Ok(Some(crd)) => {
                let annotations = crd.metadata.annotations.unwrap_or_default();
                let annotation = |key: &str| {
                    let key = format!("gateway.networking.k8s.io/{key}");
                    annotations
                        .get(&key)
                        .cloned()
                        .unwrap_or_else(|| "unknown".to_owned())
                };
                let served: Vec<&str> = crd
                    .spec
                    .versions
                    .iter()
                    .filter(|v| v.served)
                    .map(|v| v.name.as_str())
                    .collect();
                report.pass(format!(
                    "{name} is installed (Gateway API {}, channel {}, serves {})",
                    annotation("bundle-version"),
                    annotation("channel"),
                    served.join(", ")
                ));
            }
            Ok(None) => report.warn(format!(
                "{name} is not installed: routing needs the Gateway API CRDs: {INSTALL}"
            )),
            Err(e) => report.fail(format!("cannot read {name}: {e}")),
        }
    }
}

//! Keeps `webhooks[].clientConfig.caBundle` of the MutatingWebhookConfiguration
//! (`weft-sidecar-injector`) equal to the weft roots, with `--kubernetes`: the API server checks
//! the webhook's certificate against it, so after a CA change (or on a fresh install, whose
//! manifest has no caBundle) the control plane writes it. It looks at start and every minute
//! and patches only when a webhook differs. A merge patch replaces a list whole, so the patch
//! carries every webhook entry as read, with only `caBundle` changed, and the resourceVersion
//! read, so a concurrent edit makes it fail and retry instead of being overwritten.

use std::time::Duration;

use base64::Engine;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub const DEFAULT_CONFIGURATION: &str = "weft-sidecar-injector";
const INTERVAL: Duration = Duration::from_secs(60);

fn api(client: kube::Client) -> Api<DynamicObject> {
    let resource = ApiResource {
        group: "admissionregistration.k8s.io".to_owned(),
        version: "v1".to_owned(),
        api_version: "admissionregistration.k8s.io/v1".to_owned(),
        kind: "MutatingWebhookConfiguration".to_owned(),
        plural: "mutatingwebhookconfigurations".to_owned(),
    };
    Api::all_with(client, &resource)
}

/// Runs [`update_once`] at start and every minute until `stop`.
pub fn keep_current(
    client: kube::Client,
    name: String,
    roots_pem: String,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            match update_once(&client, &name, &roots_pem).await {
                Ok(true) => tracing::info!(configuration = %name, "wrote the webhook caBundle"),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(configuration = %name, "cannot keep the webhook caBundle current: {e:#}")
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(INTERVAL) => {}
            }
        }
    });
}

/// Patches the configuration if a webhook's caBundle is not `roots_pem`; true if it did.
pub async fn update_once(
    client: &kube::Client,
    name: &str,
    roots_pem: &str,
) -> anyhow::Result<bool> {
    let api = api(client.clone());
    let current = api.get(name).await?;
    let bundle = base64::engine::general_purpose::STANDARD.encode(roots_pem);
    let Some(webhooks) = current.data.get("webhooks").and_then(Value::as_array) else {
        anyhow::bail!("MutatingWebhookConfiguration {name} has no webhooks");
    };
    let mut changed = false;
    let updated: Vec<Value> = webhooks
        .iter()
        .cloned()
        .map(|mut webhook| {
            if webhook
                .pointer("/clientConfig/caBundle")
                .and_then(Value::as_str)
                != Some(&bundle)
            {
                changed = true;
                webhook["clientConfig"]["caBundle"] = json!(bundle);
            }
            webhook
        })
        .collect();
    if !changed {
        return Ok(false);
    }
    let patch = json!({
        "metadata": {"resourceVersion": current.metadata.resource_version},
        "webhooks": updated,
    });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(true)
}

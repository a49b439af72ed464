//! The ConfigMap `weft-trust-anchors` (key `ca.pem`) in each meshed namespace: the roots an
//! injected proxy trusts before its first bundle from the control plane arrives. A ConfigMap
//! volume can only name a ConfigMap of the pod's own namespace, so with `--kubernetes` the
//! webhook writes it into a namespace the first time it injects a pod there (and again after a
//! control-plane restart, which may bring new roots). The pod's volume is not optional: the
//! kubelet waits until the ConfigMap exists. Without `--kubernetes` (or for `weft inject`), the
//! install procedure creates it (`kubectl create configmap`, docs/kubernetes.md).

use std::collections::BTreeMap;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};

use super::annotations::{TRUST_ANCHORS_CONFIGMAP, TRUST_ANCHORS_KEY};

pub struct TrustAnchorsWriter {
    client: kube::Client,
    roots_pem: String,
    written: Mutex<HashSet<String>>,
}

impl TrustAnchorsWriter {
    pub fn new(client: kube::Client, roots_pem: String) -> Arc<Self> {
        Arc::new(Self {
            client,
            roots_pem,
            written: Mutex::new(HashSet::new()),
        })
    }

    /// Writes the ConfigMap into `namespace` in the background, once per namespace (again
    /// after a failure).
    pub fn ensure(self: &Arc<Self>, namespace: &str) {
        let first = self
            .written
            .lock()
            .map(|mut written| written.insert(namespace.to_owned()))
            .unwrap_or(false);
        if !first {
            return;
        }
        let (writer, namespace) = (self.clone(), namespace.to_owned());
        tokio::spawn(async move {
            match writer.write(&namespace).await {
                Ok(()) => {
                    tracing::info!(%namespace, "trust anchors ConfigMap {TRUST_ANCHORS_CONFIGMAP} is current")
                }
                Err(e) => {
                    tracing::warn!(%namespace, "cannot write ConfigMap {TRUST_ANCHORS_CONFIGMAP}: {e:#}");
                    if let Ok(mut written) = writer.written.lock() {
                        written.remove(&namespace);
                    }
                }
            }
        });
    }

    /// Creates the ConfigMap, or merges the current roots into it.
    pub async fn write(&self, namespace: &str) -> anyhow::Result<()> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let data = BTreeMap::from([(TRUST_ANCHORS_KEY.to_owned(), self.roots_pem.clone())]);
        match api.get_opt(TRUST_ANCHORS_CONFIGMAP).await? {
            None => {
                let map = ConfigMap {
                    metadata: ObjectMeta {
                        name: Some(TRUST_ANCHORS_CONFIGMAP.to_owned()),
                        namespace: Some(namespace.to_owned()),
                        labels: Some(BTreeMap::from([(
                            "app.kubernetes.io/managed-by".to_owned(),
                            "weft-control-plane".to_owned(),
                        )])),
                        ..ObjectMeta::default()
                    },
                    data: Some(data),
                    ..ConfigMap::default()
                };
                api.create(&PostParams::default(), &map).await?;
            }
            Some(existing) if existing.data.as_ref() == Some(&data) => {}
            Some(_) => {
                let patch = serde_json::json!({"data": data});
                api.patch(
                    TRUST_ANCHORS_CONFIGMAP,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
            }
        }
        Ok(())
    }
}

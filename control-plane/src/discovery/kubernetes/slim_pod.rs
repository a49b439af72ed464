//! The Pod as discovery reads it off the wire: the metadata the watcher needs, the service
//! account, the containers' names, and nothing else.
//!
//! A Pod from the API server is several kilobytes of JSON (managed fields, the whole container
//! specs, status); k8s-openapi's `Pod` holds all of it, and a list holds every pod at once.
//! Deserializing into this type skips the rest while parsing, so listing a large cluster's pods
//! costs the size of their names rather than of their specs. The watcher only needs the metadata's
//! name, namespace, uid and resourceVersion (it resumes watches from the last version seen).

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Deserializer};

use super::opaque_ports::ANNOTATION;

#[derive(Debug, Clone, Deserialize)]
pub struct SlimPod {
    #[serde(deserialize_with = "slim_metadata")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: SlimPodSpec,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimPodSpec {
    pub service_account_name: Option<String>,
    #[serde(default)]
    pub containers: Vec<SlimContainer>,
    #[serde(default)]
    pub init_containers: Vec<SlimContainer>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimContainer {
    pub name: String,
    /// `Always` on an init container makes it a native sidecar.
    pub restart_policy: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimMetadata {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    annotations: Option<BTreeMap<String, String>>,
}

/// The metadata with only the fields above, and of the annotations only ours.
fn slim_metadata<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
    let slim = SlimMetadata::deserialize(deserializer)?;
    let annotations = slim.annotations.and_then(|mut all| {
        let ours = all.remove(ANNOTATION)?;
        Some(BTreeMap::from([(ANNOTATION.to_owned(), ours)]))
    });
    Ok(ObjectMeta {
        name: slim.name,
        namespace: slim.namespace,
        uid: slim.uid,
        resource_version: slim.resource_version,
        annotations,
        ..ObjectMeta::default()
    })
}

impl kube::Resource for SlimPod {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Pod".into()
    }

    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }

    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }

    fn plural(_: &()) -> Cow<'_, str> {
        "pods".into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_discovery_needs_and_drops_the_rest() {
        let pod: SlimPod = serde_json::from_str(include_str!(
            "../../../../tests/fixtures/kubernetes/pod-payments-fghij.json"
        ))
        .unwrap();
        assert_eq!(
            pod.metadata.name.as_deref(),
            Some("payments-6d9f7b8c4-fghij")
        );
        assert_eq!(pod.metadata.namespace.as_deref(), Some("prod"));
        assert!(pod.metadata.resource_version.is_some());
        assert!(pod.metadata.managed_fields.is_none());
        assert!(pod.metadata.labels.is_none());
        assert_eq!(pod.spec.service_account_name.as_deref(), Some("payments"));
        assert_eq!(pod.spec.init_containers[1].name, "weft-proxy");
        assert_eq!(
            pod.spec.init_containers[1].restart_policy.as_deref(),
            Some("Always")
        );
        assert_eq!(
            <SlimPod as kube::Resource>::url_path(&(), Some("prod")),
            "/api/v1/namespaces/prod/pods"
        );
    }
}

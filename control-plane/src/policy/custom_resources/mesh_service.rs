//! The `MeshService` custom resource: a service whose endpoints are not Kubernetes pods (a
//! database on VMs, a service in another cluster), with the shape of a `--services` document.
//!
//! As for ServicePolicy, the schema only types the fields; the services checker
//! ([`crate::discovery::services`]) decides, and its problems land in the status.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::Status;

/// Addresses, ports and endpoints of one service, for discovery.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "weft.dev",
    version = "v1alpha1",
    kind = "MeshService",
    namespaced,
    status = "Status",
    shortname = "meshsvc",
    category = "weft",
    doc = "A service for weft's discovery whose endpoints are listed here (for endpoints outside Kubernetes). Checked by the control plane; see status.conditions.",
    printcolumn = r#"{"name":"Accepted","type":"string","jsonPath":".status.conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Accepted\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct MeshServiceSpec {
    /// Virtual addresses naming the service (like a ClusterIP); optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<MeshServicePort>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Vec<MeshServiceEndpoint>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeshServicePort {
    /// What clients connect to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// The endpoints' port; defaults to `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<i64>,
    /// `detect` (default: HTTP detected, else opaque TCP), `http` (always parsed as HTTP, never
    /// spliced) or `opaque` (never sniffed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeshServiceEndpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Its identity is `spiffe://<trust-domain>/ns/<namespace>/sa/<serviceAccount>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// A SPIFFE ID, instead of serviceAccount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// `false` for an endpoint without a sidecar (no identity, no mTLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meshed: Option<bool>,
}

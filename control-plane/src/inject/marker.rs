//! `weft.dev/injected`: the record of what injection added, written on the pod itself.
//!
//! Uninject reads it back and removes exactly these names (and the lists and maps injection had
//! to create), so it never touches a container or volume the user wrote, even one named like
//! ours. It also tells `kubectl get pod -o yaml` readers and `weft check` which weft version and
//! sidecar mode made the pod, and which probe ports bypass the proxy.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Marker {
    pub version: String,
    pub mode: String,
    /// Init containers weft added, by name.
    pub init_containers: Vec<String>,
    /// Regular containers weft added (the proxy in classic mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<String>,
    pub volumes: Vec<String>,
    /// Fields that did not exist before injection: `metadata`, `annotations`,
    /// `initContainers`, `volumes`; uninject removes them again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub created: Vec<String>,
    /// App probe ports exempted from interception.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probe_ports: Vec<u16>,
}

impl Marker {
    pub fn to_annotation(&self) -> String {
        // Serialising a struct of strings and numbers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_annotation(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn created(&self, field: &str) -> bool {
        self.created.iter().any(|c| c == field)
    }
}

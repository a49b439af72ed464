//! A pod (or pod template: anything with `metadata` and `spec`) in, the JSON Patch that meshes it
//! out; and the way back.
//!
//! Order in the pod: native mode puts `weft-init` then `weft-proxy` before any existing init
//! container, so those run with interception in place and a ready proxy (their traffic is meshed
//! too). Classic mode cannot start a proxy before init containers, so `weft-init` goes last among
//! them (the user's init containers run unintercepted, as without a mesh) and the proxy is
//! appended to `containers`.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::annotations::{INJECTED, PROXY_CONTAINER};
use super::marker::Marker;
use super::patch::{PatchOp, escape};
use super::settings::{InjectSettings, SidecarMode};
use super::template::{AnnotationError, sidecar};

/// The patch for one pod, and what its author should hear.
#[derive(Debug, Clone)]
pub struct Injection {
    pub ops: Vec<PatchOp>,
    pub warnings: Vec<String>,
}

/// The operations that add weft to `pod` (call after [`super::decision::decide`] said Inject).
pub fn inject(pod: &Value, settings: &InjectSettings) -> Result<Injection, AnnotationError> {
    let sidecar = sidecar(pod, settings)?;
    let has = |pointer: &str| pod.pointer(pointer).is_some();
    let mut ops = Vec::new();
    let mut created = Vec::new();
    let mut init_names = vec![super::annotations::INIT_CONTAINER.to_owned()];
    let mut container_names = Vec::new();

    match sidecar.mode {
        SidecarMode::Native => {
            init_names.push(PROXY_CONTAINER.to_owned());
            if has("/spec/initContainers") {
                ops.push(PatchOp::add("/spec/initContainers/0", sidecar.init.clone()));
                ops.push(PatchOp::add(
                    "/spec/initContainers/1",
                    sidecar.proxy.clone(),
                ));
            } else {
                created.push("initContainers".to_owned());
                ops.push(PatchOp::add(
                    "/spec/initContainers",
                    json!([sidecar.init, sidecar.proxy]),
                ));
            }
        }
        SidecarMode::Classic => {
            container_names.push(PROXY_CONTAINER.to_owned());
            if has("/spec/initContainers") {
                ops.push(PatchOp::add("/spec/initContainers/-", sidecar.init.clone()));
            } else {
                created.push("initContainers".to_owned());
                ops.push(PatchOp::add("/spec/initContainers", json!([sidecar.init])));
            }
            ops.push(PatchOp::add("/spec/containers/-", sidecar.proxy.clone()));
        }
    }
    let volume_names = sidecar
        .volumes
        .iter()
        .filter_map(|v| v["name"].as_str().map(str::to_owned))
        .collect();
    if has("/spec/volumes") {
        for volume in &sidecar.volumes {
            ops.push(PatchOp::add("/spec/volumes/-", volume.clone()));
        }
    } else {
        created.push("volumes".to_owned());
        ops.push(PatchOp::add("/spec/volumes", Value::from(sidecar.volumes)));
    }

    let annotations_created = !has("/metadata/annotations");
    let metadata_created = !has("/metadata");
    if metadata_created {
        created.push("metadata".to_owned());
    }
    if annotations_created {
        created.push("annotations".to_owned());
    }
    let marker = Marker {
        version: settings.version.clone(),
        mode: sidecar.mode.name().to_owned(),
        init_containers: init_names,
        containers: container_names,
        volumes: volume_names,
        created,
        probe_ports: sidecar.probe_ports.iter().copied().collect(),
    };
    let value = Value::String(marker.to_annotation());
    ops.push(match (metadata_created, annotations_created) {
        (true, _) => PatchOp::add("/metadata", json!({"annotations": {INJECTED: value}})),
        (false, true) => PatchOp::add("/metadata/annotations", json!({INJECTED: value})),
        (false, false) => {
            PatchOp::add(format!("/metadata/annotations/{}", escape(INJECTED)), value)
        }
    });
    Ok(Injection {
        ops,
        warnings: probe_warnings(pod, &sidecar.probe_ports),
    })
}

/// A probe port that is also a declared container port serves traffic that now bypasses the
/// proxy: say so.
fn probe_warnings(pod: &Value, probe_ports: &BTreeSet<u16>) -> Vec<String> {
    let containers = pod.pointer("/spec/containers").and_then(Value::as_array);
    let declared: BTreeSet<u16> = containers
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("ports").and_then(Value::as_array))
        .flatten()
        .filter_map(|p| p.get("containerPort").and_then(Value::as_u64))
        .filter_map(|p| u16::try_from(p).ok())
        .collect();
    probe_ports
        .intersection(&declared)
        .map(|port| {
            format!(
                "weft: port {port} is probed by the kubelet, so it bypasses the proxy (no mTLS, no policy); probe on a port of its own to mesh {port}"
            )
        })
        .collect()
}

/// Why a pod cannot be uninjected.
#[derive(Debug, thiserror::Error)]
pub enum UninjectError {
    #[error(
        "it has weft containers but no readable weft.dev/injected annotation ({0}); remove them by hand"
    )]
    NoMarker(String),
}

/// Removes what injection added to `pod`, as recorded in its marker. `Ok(false)` if the pod was
/// never injected.
pub fn uninject(pod: &mut Value) -> Result<bool, UninjectError> {
    let text = super::decision::annotation(pod, INJECTED).map(str::to_owned);
    let marker = match text {
        None if super::decision::is_injected(pod) => {
            return Err(UninjectError::NoMarker("missing".to_owned()));
        }
        None => return Ok(false),
        Some(text) => {
            Marker::from_annotation(&text).map_err(|e| UninjectError::NoMarker(e.to_string()))?
        }
    };
    let spec = &mut pod["spec"];
    remove_named(
        spec,
        "initContainers",
        &marker.init_containers,
        marker.created("initContainers"),
    );
    remove_named(spec, "containers", &marker.containers, false);
    remove_named(spec, "volumes", &marker.volumes, marker.created("volumes"));
    let metadata = &mut pod["metadata"];
    if let Some(annotations) = metadata
        .get_mut("annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(INJECTED);
        if annotations.is_empty() && marker.created("annotations") {
            metadata.as_object_mut().map(|m| m.remove("annotations"));
        }
    }
    if marker.created("metadata") && metadata.as_object().is_some_and(|m| m.is_empty()) {
        pod.as_object_mut().map(|p| p.remove("metadata"));
    }
    Ok(true)
}

fn remove_named(spec: &mut Value, list: &str, names: &[String], created: bool) {
    let Some(items) = spec.get_mut(list).and_then(Value::as_array_mut) else {
        return;
    };
    items.retain(|item| {
        let name = item.get("name").and_then(Value::as_str).unwrap_or_default();
        !names.iter().any(|n| n == name)
    });
    if items.is_empty() && created {
        spec.as_object_mut().map(|s| s.remove(list));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inject::patch::apply;

    fn app() -> Value {
        json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "initContainers": [{"name": "migrate", "image": "migrate:1"}],
                "containers": [{"name": "web", "image": "web:1", "ports": [{"containerPort": 8080}],
                    "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}}}],
            },
        })
    }

    #[test]
    fn native_mode_puts_init_and_proxy_before_existing_init_containers() {
        let pod = app();
        let injection = inject(&pod, &InjectSettings::default()).unwrap();
        let mut injected = pod.clone();
        apply(&mut injected, &injection.ops).unwrap();
        let names: Vec<_> = injected["spec"]["initContainers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["weft-init", "weft-proxy", "migrate"]);
        assert_eq!(injected["spec"]["containers"].as_array().unwrap().len(), 1);
        assert_eq!(injection.warnings.len(), 1, "{:?}", injection.warnings);
        assert!(injection.warnings[0].contains("8080"));
        assert!(super::super::decision::is_injected(&injected));
        assert!(uninject(&mut injected).unwrap());
        assert_eq!(injected, pod);
    }

    #[test]
    fn classic_mode_and_a_bare_template_round_trip() {
        let pod = json!({"spec": {"containers": [{"name": "job", "image": "busybox"}]}});
        let settings = InjectSettings {
            mode: SidecarMode::Classic,
            ..InjectSettings::default()
        };
        let injection = inject(&pod, &settings).unwrap();
        let mut injected = pod.clone();
        apply(&mut injected, &injection.ops).unwrap();
        assert_eq!(injected["spec"]["containers"][1]["name"], "weft-proxy");
        assert_eq!(injected["spec"]["initContainers"][0]["name"], "weft-init");
        assert!(uninject(&mut injected).unwrap());
        assert_eq!(injected, pod);
        let mut plain = pod.clone();
        assert!(!uninject(&mut plain).unwrap());
    }
}

//! The containers and volumes weft adds to a pod.
//!
//! `weft-init` writes the interception rules (`weft-proxy init`) with NET_ADMIN and NET_RAW
//! only, as root in the pod's network namespace, and exits. `weft-proxy` runs as UID 1337 (which
//! `weft-proxy init` exempts), non-root, with a read-only root filesystem and no capabilities. It
//! learns who it is from the downward API: its identity
//! `spiffe://<td>/ns/$(WEFT_POD_NAMESPACE)/sa/$(WEFT_SERVICE_ACCOUNT)` is expanded by the kubelet
//! (`$(VAR)` references to variables defined before it), and it proves it with a projected
//! service-account token for audience `weft`, which the kubelet refreshes in the file and the
//! proxy re-reads at each renewal (`--token-file`). The trust anchors come from the ConfigMap
//! `weft-trust-anchors` in the pod's namespace (kept by the control plane with `--kubernetes`).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::annotations::*;
use super::decision::annotation;
use super::settings::{InjectSettings, SidecarMode};

/// The proxy's admin port: `/ready` and `/live`.
pub const ADMIN_PORT: u16 = 15000;
/// Lifetime the kubelet asks for the projected token; it refreshes it at 80 %.
pub const TOKEN_EXPIRATION_SECONDS: u64 = 3600;

/// Proxy resources when the pod's annotations say nothing.
pub const DEFAULT_CPU_REQUEST: &str = "50m";
pub const DEFAULT_MEMORY_REQUEST: &str = "32Mi";
pub const DEFAULT_CPU_LIMIT: &str = "1";
pub const DEFAULT_MEMORY_LIMIT: &str = "256Mi";

/// A pod annotation weft cannot use; the message names the annotation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("annotation {annotation}: {problem} (got {value:?})")]
pub struct AnnotationError {
    pub annotation: &'static str,
    pub value: String,
    pub problem: &'static str,
}

/// What is added: containers, volumes, and the probe ports exempted from interception.
#[derive(Debug, Clone)]
pub struct Sidecar {
    pub mode: SidecarMode,
    pub init: Value,
    pub proxy: Value,
    pub volumes: Vec<Value>,
    pub probe_ports: BTreeSet<u16>,
}

/// The sidecar for `pod` (its annotations and probes) with `settings`.
pub fn sidecar(pod: &Value, settings: &InjectSettings) -> Result<Sidecar, AnnotationError> {
    let mode = match annotation(pod, SIDECAR_MODE) {
        None => settings.mode,
        Some(text) => SidecarMode::parse(text).ok_or_else(|| AnnotationError {
            annotation: SIDECAR_MODE,
            value: text.to_owned(),
            problem: "must be native or classic",
        })?,
    };
    let probe_ports = super::probes::probe_ports(pod.get("spec").unwrap_or(&Value::Null));
    let mut skip_inbound = ports_annotation(pod, SKIP_INBOUND_PORTS)?;
    skip_inbound.extend(probe_ports.iter().map(u16::to_string));
    let skip_outbound = ports_annotation(pod, SKIP_OUTBOUND_PORTS)?;
    Ok(Sidecar {
        mode,
        init: init_container(settings, &skip_inbound, &skip_outbound),
        proxy: proxy_container(pod, settings, mode)?,
        volumes: volumes(settings),
        probe_ports,
    })
}

fn init_container(settings: &InjectSettings, inbound: &[String], outbound: &[String]) -> Value {
    let mut args = vec!["init".to_owned()];
    if !inbound.is_empty() {
        args.push(format!("--skip-inbound-ports={}", inbound.join(",")));
    }
    if !outbound.is_empty() {
        args.push(format!("--skip-outbound-ports={}", outbound.join(",")));
    }
    json!({
        "name": INIT_CONTAINER,
        "image": settings.proxy_image,
        "command": ["weft-proxy"],
        "args": args,
        "resources": {
            "requests": {"cpu": "10m", "memory": "16Mi"},
            "limits": {"cpu": "100m", "memory": "64Mi"},
        },
        // Root in the pod's network namespace with exactly the two capabilities iptables needs.
        // The root filesystem stays writable: iptables takes its lock under /run.
        "securityContext": {
            "runAsUser": 0,
            "runAsGroup": 0,
            "runAsNonRoot": false,
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": false,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
        },
    })
}

fn proxy_container(
    pod: &Value,
    settings: &InjectSettings,
    mode: SidecarMode,
) -> Result<Value, AnnotationError> {
    let quantity = |name, default: &str| quantity_annotation(pod, name, default);
    let http = |path: &str| json!({"path": path, "port": ADMIN_PORT});
    let mut proxy = json!({
        "name": PROXY_CONTAINER,
        "image": settings.proxy_image,
        "command": ["weft-proxy"],
        "env": [
            field_env("WEFT_POD_NAME", "metadata.name"),
            field_env("WEFT_POD_NAMESPACE", "metadata.namespace"),
            field_env("WEFT_POD_IP", "status.podIP"),
            field_env("WEFT_SERVICE_ACCOUNT", "spec.serviceAccountName"),
            {"name": "WEFT_IDENTITY", "value": format!(
                "spiffe://{}/ns/$(WEFT_POD_NAMESPACE)/sa/$(WEFT_SERVICE_ACCOUNT)",
                settings.trust_domain)},
            {"name": "WEFT_CONTROL_PLANE_ADDR", "value": settings.control_plane_addr},
            {"name": "WEFT_TRUST_ANCHORS",
             "value": format!("{TRUST_ANCHORS_DIR}/{TRUST_ANCHORS_KEY}")},
            {"name": "WEFT_TOKEN_FILE", "value": format!("{TOKEN_DIR}/{TOKEN_FILE}")},
        ],
        "ports": [{"name": "weft-admin", "containerPort": ADMIN_PORT, "protocol": "TCP"}],
        "resources": {
            "requests": {
                "cpu": quantity(PROXY_CPU_REQUEST, DEFAULT_CPU_REQUEST)?,
                "memory": quantity(PROXY_MEMORY_REQUEST, DEFAULT_MEMORY_REQUEST)?,
            },
            "limits": {
                "cpu": quantity(PROXY_CPU_LIMIT, DEFAULT_CPU_LIMIT)?,
                "memory": quantity(PROXY_MEMORY_LIMIT, DEFAULT_MEMORY_LIMIT)?,
            },
        },
        "volumeMounts": [
            {"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": true},
            {"name": TRUST_ANCHORS_VOLUME, "mountPath": TRUST_ANCHORS_DIR, "readOnly": true},
        ],
        // The kubelet starts the next container once this passes: the app starts with a proxy
        // that holds its certificate.
        "startupProbe": {"httpGet": http("/ready"), "periodSeconds": 1, "failureThreshold": 300},
        "readinessProbe": {"httpGet": http("/ready"), "periodSeconds": 5},
        "livenessProbe": {"httpGet": http("/live"), "periodSeconds": 10, "failureThreshold": 3},
        "securityContext": {
            "runAsUser": 1337,
            "runAsGroup": 1337,
            "runAsNonRoot": true,
            "readOnlyRootFilesystem": true,
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    });
    if mode == SidecarMode::Native {
        proxy["restartPolicy"] = json!("Always");
    }
    Ok(proxy)
}

fn field_env(name: &str, path: &str) -> Value {
    json!({"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}})
}

fn volumes(settings: &InjectSettings) -> Vec<Value> {
    vec![
        json!({"name": TOKEN_VOLUME, "projected": {"sources": [{"serviceAccountToken": {
            "audience": settings.token_audience,
            "expirationSeconds": TOKEN_EXPIRATION_SECONDS,
            "path": TOKEN_FILE,
        }}]}}),
        // Not optional: the kubelet waits (and retries) until the ConfigMap exists.
        json!({"name": TRUST_ANCHORS_VOLUME, "configMap": {
            "name": TRUST_ANCHORS_CONFIGMAP,
            "items": [{"key": TRUST_ANCHORS_KEY, "path": TRUST_ANCHORS_KEY}],
        }}),
    ]
}

/// `22,9000:9100`: ports and ranges, each checked, kept as written.
fn ports_annotation(pod: &Value, name: &'static str) -> Result<Vec<String>, AnnotationError> {
    let Some(text) = annotation(pod, name) else {
        return Ok(Vec::new());
    };
    let bad = || AnnotationError {
        annotation: name,
        value: text.to_owned(),
        problem: "must be ports or ranges separated by commas, like 22,9000:9100",
    };
    let port = |p: &str| p.trim().parse::<u16>().ok().filter(|p| *p > 0);
    let mut ports = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.split_once(':') {
            Some((a, b)) => match (port(a), port(b)) {
                (Some(a), Some(b)) if a <= b => ports.push(format!("{a}:{b}")),
                _ => return Err(bad()),
            },
            None => ports.push(port(item).ok_or_else(bad)?.to_string()),
        }
    }
    Ok(ports)
}

/// A Kubernetes quantity such as `100m`, `0.5`, `64Mi`, `1G` (the common forms; exponents are
/// refused rather than guessed).
fn quantity_annotation(
    pod: &Value,
    name: &'static str,
    default: &str,
) -> Result<String, AnnotationError> {
    let Some(text) = annotation(pod, name) else {
        return Ok(default.to_owned());
    };
    let suffixes = ["Ki", "Mi", "Gi", "Ti", "m", "k", "M", "G", "T", ""];
    let valid = suffixes.iter().any(|suffix| {
        text.strip_suffix(suffix).is_some_and(|number| {
            !number.is_empty()
                && number.chars().all(|c| c.is_ascii_digit() || c == '.')
                && number.chars().filter(|c| *c == '.').count() <= 1
                && number.chars().any(|c| c.is_ascii_digit())
        })
    });
    match valid {
        true => Ok(text.to_owned()),
        false => Err(AnnotationError {
            annotation: name,
            value: text.to_owned(),
            problem: "must be a Kubernetes quantity like 100m, 0.5, 64Mi or 1Gi",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotated(annotations: Value) -> Value {
        json!({"metadata": {"annotations": annotations}, "spec": {"containers": [
            {"name": "app", "readinessProbe": {"httpGet": {"port": 8081}}}]}})
    }

    #[test]
    fn annotations_set_resources_and_skipped_ports_with_the_probe_ports() {
        let pod = annotated(json!({
            PROXY_CPU_REQUEST: "200m", PROXY_MEMORY_LIMIT: "1Gi",
            SKIP_INBOUND_PORTS: "22, 9000:9100", SKIP_OUTBOUND_PORTS: "3306",
        }));
        let sidecar = sidecar(&pod, &InjectSettings::default()).unwrap();
        assert_eq!(
            sidecar.init["args"],
            json!([
                "init",
                "--skip-inbound-ports=22,9000:9100,8081",
                "--skip-outbound-ports=3306"
            ])
        );
        assert_eq!(sidecar.proxy["resources"]["requests"]["cpu"], "200m");
        assert_eq!(sidecar.proxy["resources"]["requests"]["memory"], "32Mi");
        assert_eq!(sidecar.proxy["resources"]["limits"]["memory"], "1Gi");
        assert_eq!(sidecar.proxy["restartPolicy"], "Always");
    }

    #[test]
    fn a_bad_annotation_is_named() {
        for (name, value) in [
            (PROXY_CPU_LIMIT, "lots"),
            (SKIP_INBOUND_PORTS, "80,http"),
            (SKIP_OUTBOUND_PORTS, "9100:9000"),
            (SIDECAR_MODE, "sidecar"),
        ] {
            let err =
                sidecar(&annotated(json!({name: value})), &InjectSettings::default()).unwrap_err();
            assert_eq!(err.annotation, name);
            assert!(err.to_string().contains(value), "{err}");
        }
    }

    #[test]
    fn classic_mode_has_no_restart_policy() {
        let pod = annotated(json!({SIDECAR_MODE: "classic"}));
        let sidecar = sidecar(&pod, &InjectSettings::default()).unwrap();
        assert_eq!(sidecar.mode, SidecarMode::Classic);
        assert!(sidecar.proxy.get("restartPolicy").is_none());
    }
}

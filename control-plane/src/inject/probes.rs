//! The app's kubelet probes in strict inbound mode.
//!
//! The kubelet probes from the node, in plaintext, without a mesh certificate: in strict mode the
//! proxy would refuse it (`403 plaintext_refused`) and the pod would never become ready. weft
//! exempts each probe's port from interception (`weft-proxy init --skip-inbound-ports`), so
//! httpGet, tcpSocket and grpc probes reach the app as they do without a mesh. The cost, stated in
//! docs/kubernetes.md: a probe port is not meshed at all, so an app should probe on a port of its
//! own rather than on the port that serves its traffic (the injector warns when it exempts a port
//! the container also declares).

use std::collections::BTreeSet;

use serde_json::Value;

const PROBES: [&str; 3] = ["livenessProbe", "readinessProbe", "startupProbe"];
const HANDLERS: [&str; 3] = ["httpGet", "tcpSocket", "grpc"];

/// The ports probed in the app containers (`spec.containers`; init containers are not probed,
/// except native sidecars, which weft leaves alone too), named ports resolved against the
/// container's own `ports`.
pub fn probe_ports(spec: &Value) -> BTreeSet<u16> {
    let mut ports = BTreeSet::new();
    let containers = spec.get("containers").and_then(Value::as_array);
    for container in containers.into_iter().flatten() {
        for probe in PROBES.iter().filter_map(|p| container.get(*p)) {
            for handler in HANDLERS.iter().filter_map(|h| probe.get(*h)) {
                if let Some(port) = handler.get("port").and_then(|p| resolve(container, p)) {
                    ports.insert(port);
                }
            }
        }
    }
    ports
}

fn resolve(container: &Value, port: &Value) -> Option<u16> {
    match port {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => match s.parse::<u16>() {
            Ok(n) => Some(n),
            Err(_) => container
                .get("ports")?
                .as_array()?
                .iter()
                .find(|p| p.get("name").and_then(Value::as_str) == Some(s))?
                .get("containerPort")?
                .as_u64()
                .and_then(|n| u16::try_from(n).ok()),
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn http_tcp_and_grpc_probes_by_number_or_name() {
        let spec = json!({"containers": [
            {"name": "app", "ports": [{"name": "health", "containerPort": 8081}],
             "livenessProbe": {"httpGet": {"path": "/healthz", "port": "health"}},
             "readinessProbe": {"tcpSocket": {"port": 8080}},
             "startupProbe": {"exec": {"command": ["true"]}}},
            {"name": "grpc", "readinessProbe": {"grpc": {"port": 9090}},
             "livenessProbe": {"httpGet": {"port": "unknown-name"}}}
        ]});
        assert_eq!(
            probe_ports(&spec).into_iter().collect::<Vec<_>>(),
            [8080, 8081, 9090]
        );
    }
}

//! Whether a pod gets a sidecar. The order matters and is documented: a system namespace or
//! `hostNetwork` is never injected (iptables in the node's namespace would capture the node's
//! traffic); an already injected pod is left alone (so a re-submitted pod gets an empty patch);
//! then the pod's `weft.dev/inject` annotation wins over its namespace's label.

use serde_json::Value;

use super::annotations::{
    INIT_CONTAINER, INJECT, INJECTED, NEVER_INJECTED_NAMESPACES, PROXY_CONTAINER,
};

/// Why a pod was or was not injected; the `result` label of `weft_injections_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Inject,
    /// `weft.dev/inject: disabled` on the pod, or no opt-in at all.
    NotEnabled,
    SystemNamespace,
    HostNetwork,
    AlreadyInjected,
}

impl Decision {
    pub fn label(self) -> &'static str {
        match self {
            Decision::Inject => "injected",
            Decision::NotEnabled => "not_enabled",
            Decision::SystemNamespace => "system_namespace",
            Decision::HostNetwork => "host_network",
            Decision::AlreadyInjected => "already_injected",
        }
    }
}

/// Decides for `pod` (a Pod or a pod template: `metadata` and `spec`) in `namespace`.
/// `namespace_enabled` says the namespace is labelled `weft.dev/inject: enabled` (the webhook
/// learns it from which of its two entries called it; `weft inject` assumes it).
pub fn decide(pod: &Value, namespace: Option<&str>, namespace_enabled: bool) -> Decision {
    if namespace.is_some_and(|ns| NEVER_INJECTED_NAMESPACES.contains(&ns)) {
        return Decision::SystemNamespace;
    }
    if pod.pointer("/spec/hostNetwork") == Some(&Value::Bool(true)) {
        return Decision::HostNetwork;
    }
    if is_injected(pod) {
        return Decision::AlreadyInjected;
    }
    match annotation(pod, INJECT) {
        Some("enabled") => Decision::Inject,
        Some("disabled") => Decision::NotEnabled,
        _ if namespace_enabled => Decision::Inject,
        _ => Decision::NotEnabled,
    }
}

/// Carries weft's marker annotation or one of its containers (injected by an older weft, or by
/// hand).
pub fn is_injected(pod: &Value) -> bool {
    if annotation(pod, INJECTED).is_some() {
        return true;
    }
    ["/spec/initContainers", "/spec/containers"]
        .iter()
        .filter_map(|list| pod.pointer(list).and_then(Value::as_array))
        .flatten()
        .any(|c| {
            let name = c.get("name").and_then(Value::as_str);
            name == Some(PROXY_CONTAINER) || name == Some(INIT_CONTAINER)
        })
}

pub fn annotation<'a>(pod: &'a Value, name: &str) -> Option<&'a str> {
    pod.get("metadata")?.get("annotations")?.get(name)?.as_str()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(annotations: Value, spec: Value) -> Value {
        json!({"metadata": {"annotations": annotations}, "spec": spec})
    }

    #[test]
    fn the_pod_annotation_wins_over_the_namespace_label() {
        let plain = pod(json!({}), json!({"containers": []}));
        assert_eq!(decide(&plain, Some("prod"), true), Decision::Inject);
        assert_eq!(decide(&plain, Some("prod"), false), Decision::NotEnabled);
        let opted_in = pod(json!({INJECT: "enabled"}), json!({}));
        assert_eq!(decide(&opted_in, Some("prod"), false), Decision::Inject);
        let opted_out = pod(json!({INJECT: "disabled"}), json!({}));
        assert_eq!(decide(&opted_out, Some("prod"), true), Decision::NotEnabled);
    }

    #[test]
    fn system_namespaces_host_network_and_injected_pods_are_never_injected() {
        let opted_in = pod(json!({INJECT: "enabled"}), json!({}));
        assert_eq!(
            decide(&opted_in, Some("weft-system"), true),
            Decision::SystemNamespace
        );
        assert_eq!(
            decide(&opted_in, Some("kube-system"), true),
            Decision::SystemNamespace
        );
        let host = pod(json!({INJECT: "enabled"}), json!({"hostNetwork": true}));
        assert_eq!(decide(&host, None, true), Decision::HostNetwork);
        let by_hand = pod(
            json!({}),
            json!({"containers": [{"name": "app"}, {"name": "weft-proxy"}]}),
        );
        assert_eq!(decide(&by_hand, None, true), Decision::AlreadyInjected);
        let marked = pod(json!({INJECTED: "{}"}), json!({}));
        assert_eq!(decide(&marked, None, true), Decision::AlreadyInjected);
    }
}

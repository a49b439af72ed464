//! The `weft.dev/...` annotations and labels of injection, in one place (docs/kubernetes.md lists
//! them).

/// `enabled` or `disabled`, on a namespace (label) or a pod (annotation); the pod wins.
pub const INJECT: &str = "weft.dev/inject";
/// Ports (`8080,9000:9100`) that reach the app without the proxy.
pub const SKIP_INBOUND_PORTS: &str = "weft.dev/skip-inbound-ports";
/// Destination ports the app reaches without the proxy.
pub const SKIP_OUTBOUND_PORTS: &str = "weft.dev/skip-outbound-ports";
/// Ports carried as opaque TCP; read by discovery from the pod, not by the injector.
pub const OPAQUE_PORTS: &str = "weft.dev/opaque-ports";
/// Proxy resources (Kubernetes quantities).
pub const PROXY_CPU_REQUEST: &str = "weft.dev/proxy-cpu-request";
pub const PROXY_MEMORY_REQUEST: &str = "weft.dev/proxy-memory-request";
pub const PROXY_CPU_LIMIT: &str = "weft.dev/proxy-cpu-limit";
pub const PROXY_MEMORY_LIMIT: &str = "weft.dev/proxy-memory-limit";
/// `native` or `classic`: overrides the control plane's `--sidecar-mode` for one pod.
pub const SIDECAR_MODE: &str = "weft.dev/sidecar-mode";
/// Added by weft: what injection added (JSON), so uninject removes exactly that.
pub const INJECTED: &str = "weft.dev/injected";

/// The names weft gives what it adds.
pub const INIT_CONTAINER: &str = "weft-init";
pub const PROXY_CONTAINER: &str = "weft-proxy";
pub const TOKEN_VOLUME: &str = "weft-token";
pub const TRUST_ANCHORS_VOLUME: &str = "weft-trust-anchors";
/// The ConfigMap (in the pod's namespace) holding the trust anchors, and its key.
pub const TRUST_ANCHORS_CONFIGMAP: &str = "weft-trust-anchors";
pub const TRUST_ANCHORS_KEY: &str = "ca.pem";

/// Where the proxy container finds what the volumes hold.
pub const TOKEN_DIR: &str = "/var/run/secrets/weft.dev/serviceaccount";
pub const TOKEN_FILE: &str = "token";
pub const TRUST_ANCHORS_DIR: &str = "/var/run/weft/trust-anchors";

/// Namespaces never injected: the control plane's own and Kubernetes' system namespace.
pub const NEVER_INJECTED_NAMESPACES: [&str; 2] = ["weft-system", "kube-system"];

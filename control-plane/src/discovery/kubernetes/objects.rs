//! What discovery keeps of each watched Kubernetes object: the few fields it reads, not the
//! object. A Pod as the API server sends it is several kilobytes (managed fields, status,
//! every container's spec); discovery needs its IPs, service account, whether it runs the
//! sidecar, and one annotation. Keeping only that makes memory proportional to the objects
//! listed with a small constant.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::opaque_ports::{ANNOTATION, OpaquePorts};
use super::slim_pod::SlimPod;

/// The sidecar's container name (a container, or a native-sidecar init container).
pub const PROXY_CONTAINER: &str = "weft-proxy";
/// The label an EndpointSlice names its Service with.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// `namespace/name`: the key of a namespaced object.
pub type Key = (String, String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceView {
    /// ClusterIPs (none for a headless or ExternalName service).
    pub cluster_ips: Vec<IpAddr>,
    /// TCP ports only: weft carries TCP.
    pub ports: Vec<ServicePortView>,
    pub opaque_ports: Option<OpaquePorts>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortView {
    /// `""` for the single unnamed port; EndpointSlice ports carry the same name.
    pub name: String,
    pub port: u16,
    /// `appProtocol`, if set.
    pub app_protocol: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceView {
    /// The Service it belongs to (its `kubernetes.io/service-name` label), in its namespace.
    pub service: String,
    /// Service port name → the endpoints' port number (how a named targetPort resolved).
    pub ports: Vec<(String, u16)>,
    pub endpoints: Vec<SliceEndpoint>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceEndpoint {
    /// The first address (Kubernetes allows exactly one today).
    pub ip: IpAddr,
    /// `conditions.ready`, a missing one counting as ready (as the API documents).
    pub ready: bool,
    /// `conditions.serving && conditions.terminating`: shutting down but still answering.
    pub terminating_serving: bool,
    /// The Pod it is (`targetRef` of kind Pod), by name in the slice's namespace.
    pub pod: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    pub service_account: String,
    pub meshed: bool,
    pub opaque_ports: Option<OpaquePorts>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NamespaceView {
    pub opaque_ports: Option<OpaquePorts>,
}

fn key(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Key {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// The annotation, with bad entries logged against `what` (e.g. `pod prod/payments-0`).
fn opaque_ports(annotations: Option<&BTreeMap<String, String>>, what: &str) -> Option<OpaquePorts> {
    let value = annotations?.get(ANNOTATION)?;
    let (ports, bad) = OpaquePorts::parse(value);
    for entry in bad {
        tracing::warn!("{what}: {entry}");
    }
    Some(ports)
}

pub fn service(service: &Service) -> (Key, ServiceView) {
    let key = key(&service.metadata);
    let what = format!("service {}/{}", key.0, key.1);
    let spec = service.spec.clone().unwrap_or_default();
    let mut cluster_ips: Vec<IpAddr> = spec
        .cluster_ips
        .unwrap_or_default()
        .iter()
        .chain(spec.cluster_ip.iter())
        .filter_map(|ip| ip.parse().ok())
        .collect();
    cluster_ips.dedup();
    let ports = spec
        .ports
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
        .filter_map(|p| {
            Some(ServicePortView {
                name: p.name.unwrap_or_default(),
                port: u16::try_from(p.port).ok().filter(|p| *p != 0)?,
                app_protocol: p.app_protocol,
            })
        })
        .collect();
    let view = ServiceView {
        cluster_ips,
        ports,
        opaque_ports: opaque_ports(service.metadata.annotations.as_ref(), &what),
    };
    (key, view)
}

/// `None` for a slice discovery cannot use: no service label, or FQDN addresses.
pub fn slice(slice: &EndpointSlice) -> (Key, Option<SliceView>) {
    let key = key(&slice.metadata);
    let service = slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SERVICE_NAME_LABEL))
        .cloned();
    let (Some(service), "IPv4" | "IPv6") = (service, slice.address_type.as_str()) else {
        return (key, None);
    };
    let ports = slice
        .ports
        .iter()
        .flatten()
        .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
        .filter_map(|p| {
            let number = u16::try_from(p.port?).ok().filter(|p| *p != 0)?;
            Some((p.name.clone().unwrap_or_default(), number))
        })
        .collect();
    let endpoints = slice
        .endpoints
        .iter()
        .filter_map(|e| {
            let ip = e.addresses.first()?.parse().ok()?;
            let conditions = e.conditions.clone().unwrap_or_default();
            let pod = e
                .target_ref
                .as_ref()
                .filter(|r| r.kind.as_deref() == Some("Pod"))
                .and_then(|r| r.name.clone());
            Some(SliceEndpoint {
                ip,
                ready: conditions.ready.unwrap_or(true),
                terminating_serving: conditions.serving.unwrap_or(false)
                    && conditions.terminating.unwrap_or(false),
                pod,
            })
        })
        .collect();
    let view = SliceView {
        service,
        ports,
        endpoints,
    };
    (key, Some(view))
}

pub fn pod(pod: &SlimPod) -> (Key, PodView) {
    let key = key(&pod.metadata);
    let what = format!("pod {}/{}", key.0, key.1);
    let spec = &pod.spec;
    let container = spec.containers.iter().any(|c| c.name == PROXY_CONTAINER);
    let native_sidecar = spec
        .init_containers
        .iter()
        .any(|c| c.name == PROXY_CONTAINER && c.restart_policy.as_deref() == Some("Always"));
    let view = PodView {
        service_account: spec
            .service_account_name
            .clone()
            .filter(|sa| !sa.is_empty())
            .unwrap_or_else(|| "default".to_owned()),
        meshed: container || native_sidecar,
        opaque_ports: opaque_ports(pod.metadata.annotations.as_ref(), &what),
    };
    (key, view)
}

pub fn namespace(namespace: &Namespace) -> (String, NamespaceView) {
    let name = namespace.metadata.name.clone().unwrap_or_default();
    let what = format!("namespace {name}");
    let view = NamespaceView {
        opaque_ports: opaque_ports(namespace.metadata.annotations.as_ref(), &what),
    };
    (name, view)
}

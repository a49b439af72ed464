//! From the watched objects to the services of the discovery index.
//!
//! A Service's virtual addresses are its ClusterIPs and its ports are its TCP ports. Its
//! endpoints are those of every EndpointSlice labelled with its name, merged (an address in two
//! slices, as happens while the EndpointSlice controller rebalances, counts once). Each slice
//! says which number each service port has on its endpoints, by the service port's name: that is
//! how a named `targetPort` (`targetPort: http`) resolves, per pod, and a slice that does not
//! list a port means its endpoints do not serve it.
//!
//! Which endpoints: the ready ones (a missing `ready` counts as ready, as the API documents).
//! When a service has no ready endpoint at all, its terminating endpoints that are still
//! `serving` stand in, as kube-proxy does (KEP-1669): during a rollout that leaves only
//! terminating pods, connections still go somewhere that answers rather than nowhere.
//!
//! Identity: an endpoint's `targetRef` names its Pod. A pod running the sidecar (`weft-proxy`)
//! is meshed and must prove `spiffe://<trust-domain>/ns/<namespace>/sa/<serviceAccountName>`;
//! one without it has no identity (plain TCP). An endpoint whose Pod has not been seen yet is
//! left out until it is: answering it without an identity could send plaintext to a meshed pod.
//! An endpoint with no `targetRef` (a hand-written slice) has no sidecar we know of: unmeshed.

use std::collections::{BTreeMap, HashSet};

use weft_certs::SpiffeId;

use super::objects::{
    Key, NamespaceView, PodView, ServicePortView, ServiceView, SliceEndpoint, SliceView,
};
use super::opaque_ports::Annotations;
use crate::discovery::services::{
    EndpointPort, Port, Protocol, Service as MeshService, ServiceEndpoint,
};

/// Everything listed and watched, by key. Ordered maps, so a translation is deterministic and a
/// relist that changes nothing translates to an equal result.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Objects {
    pub services: BTreeMap<Key, ServiceView>,
    pub slices: BTreeMap<Key, SliceView>,
    pub pods: BTreeMap<Key, PodView>,
    pub namespaces: BTreeMap<String, NamespaceView>,
}

/// The mesh services for `objects`, in name order.
pub fn services(objects: &Objects, trust_domain: &str) -> Vec<MeshService> {
    // Slices by the service they belong to.
    let mut slices_of: BTreeMap<(&str, &str), Vec<&SliceView>> = BTreeMap::new();
    for ((namespace, _), slice) in &objects.slices {
        slices_of
            .entry((namespace, &slice.service))
            .or_default()
            .push(slice);
    }
    objects
        .services
        .iter()
        .filter(|(_, service)| !service.ports.is_empty())
        .map(|((namespace, name), service)| {
            let slices = slices_of
                .get(&(namespace.as_str(), name.as_str()))
                .map(Vec::as_slice)
                .unwrap_or_default();
            translate(objects, namespace, name, service, slices, trust_domain)
        })
        .collect()
}

fn translate(
    objects: &Objects,
    namespace: &str,
    name: &str,
    service: &ServiceView,
    slices: &[&SliceView],
    trust_domain: &str,
) -> MeshService {
    let annotations = Annotations {
        pod: None,
        service: service.opaque_ports.as_ref(),
        namespace: objects
            .namespaces
            .get(namespace)
            .and_then(|n| n.opaque_ports.as_ref()),
    };
    let ports: Vec<Port> = service
        .ports
        .iter()
        .map(|p| Port {
            port: p.port,
            // Per endpoint below; this is what an endpoint without its own would use.
            target_port: p.port,
            protocol: protocol(p, annotations.on_service(p.port)),
        })
        .collect();

    let any_ready = slices.iter().flat_map(|s| &s.endpoints).any(|e| e.ready);
    let chosen = |e: &SliceEndpoint| match any_ready {
        true => e.ready,
        false => e.terminating_serving,
    };
    let mut seen = HashSet::new();
    let mut endpoints = Vec::new();
    for slice in slices {
        for endpoint in slice.endpoints.iter().filter(|e| chosen(e)) {
            let pod = match &endpoint.pod {
                Some(pod) => match objects.pods.get(&(namespace.to_owned(), pod.clone())) {
                    Some(view) => Some(view),
                    // Not seen yet: wait for it rather than guess it has no sidecar.
                    None => continue,
                },
                None => None,
            };
            if !seen.insert(endpoint.ip) {
                continue;
            }
            endpoints.push(ServiceEndpoint {
                ip: endpoint.ip,
                identity: pod.and_then(|pod| identity(pod, namespace, trust_domain)),
                ports: Some(endpoint_ports(service, slice, pod, annotations)),
            });
        }
    }
    MeshService {
        name: format!("{name}.{namespace}"),
        addresses: service.cluster_ips.clone(),
        ports,
        endpoints,
    }
}

/// For each service port, the number the slice gives it and whether it is opaque on the pod.
fn endpoint_ports(
    service: &ServiceView,
    slice: &SliceView,
    pod: Option<&PodView>,
    annotations: Annotations<'_>,
) -> Vec<Option<EndpointPort>> {
    let annotations = Annotations {
        pod: pod.and_then(|p| p.opaque_ports.as_ref()),
        ..annotations
    };
    service
        .ports
        .iter()
        .map(|port| {
            let &(_, target_port) = slice.ports.iter().find(|(name, _)| *name == port.name)?;
            Some(EndpointPort {
                target_port,
                protocol: protocol(port, annotations.on_pod(target_port, port.port)),
            })
        })
        .collect()
}

fn identity(pod: &PodView, namespace: &str, trust_domain: &str) -> Option<SpiffeId> {
    if !pod.meshed {
        return None;
    }
    match SpiffeId::new(trust_domain, namespace, &pod.service_account) {
        Ok(id) => Some(id),
        Err(e) => {
            // Kubernetes names are DNS labels, so this takes a hand-made object.
            tracing::warn!(namespace, service_account = %pod.service_account, "no identity for a meshed pod: {e}");
            None
        }
    }
}

/// What a Service port carries: opaque by the `weft.dev/opaque-ports` annotation; HTTP by its
/// `appProtocol` or, without one, by its name (`http`, `http-…`, `grpc…`, `h2c…`: the convention
/// Istio reads too); else detected.
fn protocol(port: &ServicePortView, opaque: bool) -> Protocol {
    if opaque {
        return Protocol::Opaque;
    }
    let http = match port.app_protocol.as_deref() {
        Some(app_protocol) => {
            HTTP_APP_PROTOCOLS.contains(&app_protocol.to_ascii_lowercase().as_str())
        }
        None => HTTP_PORT_NAME_PREFIXES.iter().any(|prefix| {
            port.name == prefix.trim_end_matches('-') || port.name.starts_with(prefix)
        }),
    };
    if http {
        Protocol::Http
    } else {
        Protocol::Detect
    }
}

/// `appProtocol` values that mean HTTP/1 or HTTP/2 (the IANA names and Kubernetes' own).
const HTTP_APP_PROTOCOLS: &[&str] = &[
    "http",
    "http2",
    "h2c",
    "grpc",
    "grpc-web",
    "kubernetes.io/h2c",
    "kubernetes.io/ws",
];

/// Port names that mean HTTP: the name itself, or the name followed by `-` and anything.
const HTTP_PORT_NAME_PREFIXES: &[&str] = &["http-", "http2-", "h2c-", "grpc-", "grpc-web-"];

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use k8s_openapi::api::core::v1::{Namespace, Service};
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use serde_json::{Value, json};

    use super::*;
    use crate::discovery::kubernetes::objects;
    use crate::discovery::kubernetes::slim_pod::SlimPod;
    use crate::discovery::resolve::{Endpoint, Index, Resolution};

    macro_rules! fixture {
        ($name:literal) => {
            serde_json::from_str::<Value>(include_str!(concat!(
                "../../../../tests/fixtures/kubernetes/",
                $name,
                ".json"
            )))
            .expect("fixtures are JSON")
        };
    }

    /// The fixtures: one service, two slices, three pods (two meshed), one namespace.
    fn fixtures() -> Vec<Value> {
        vec![
            fixture!("namespace-prod"),
            fixture!("service-payments"),
            fixture!("endpointslice-payments-a"),
            fixture!("endpointslice-payments-b"),
            fixture!("pod-payments-abcde"),
            fixture!("pod-payments-fghij"),
            fixture!("pod-payments-legacy-0"),
        ]
    }

    fn load(values: &[Value]) -> Objects {
        let mut objects = Objects::default();
        for value in values {
            match value["kind"].as_str() {
                Some("Namespace") => {
                    let (k, v) = objects::namespace(&from::<Namespace>(value));
                    objects.namespaces.insert(k, v);
                }
                Some("Service") => {
                    let (k, v) = objects::service(&from::<Service>(value));
                    objects.services.insert(k, v);
                }
                Some("EndpointSlice") => {
                    if let (k, Some(v)) = objects::slice(&from::<EndpointSlice>(value)) {
                        objects.slices.insert(k, v);
                    }
                }
                Some("Pod") => {
                    let (k, v) = objects::pod(&from::<SlimPod>(value));
                    objects.pods.insert(k, v);
                }
                other => panic!("no fixture kind {other:?}"),
            }
        }
        objects
    }

    fn from<T: serde::de::DeserializeOwned>(value: &Value) -> T {
        serde_json::from_value(value.clone()).expect("fixtures parse as Kubernetes objects")
    }

    fn index(values: &[Value]) -> Index {
        Index::new(services(&load(values), "cluster.local"))
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn payments() -> Option<SpiffeId> {
        Some(SpiffeId::new("cluster.local", "prod", "payments").unwrap())
    }

    fn annotate(value: &mut Value, ports: &str) {
        value["metadata"]["annotations"]["weft.dev/opaque-ports"] = json!(ports);
    }

    /// The values with the one of `kind` named `name` changed by `edit`.
    fn edited(name: &str, edit: impl FnOnce(&mut Value)) -> Vec<Value> {
        let mut values = fixtures();
        let value = values
            .iter_mut()
            .find(|v| v["metadata"]["name"] == name)
            .expect("a fixture of that name");
        edit(value);
        values
    }

    #[test]
    fn the_cluster_ip_leads_to_the_ready_endpoints_of_both_slices_on_the_named_target_port() {
        assert_eq!(
            index(&fixtures()).resolve(addr("10.96.120.15:80")),
            Resolution::Known {
                service: "payments.prod".to_owned(),
                endpoints: vec![
                    Endpoint {
                        address: addr("10.244.1.12:8080"),
                        identity: payments(),
                    },
                    Endpoint {
                        address: addr("10.244.2.7:8080"),
                        identity: payments(),
                    },
                    // No weft-proxy container: no identity, plain TCP.
                    Endpoint {
                        address: addr("10.244.2.9:8080"),
                        identity: None,
                    },
                ],
                // The port is named `http`.
                protocol: Protocol::Http,
            }
        );
    }

    #[test]
    fn a_pod_address_leads_to_that_pod_with_its_service_account() {
        let index = index(&fixtures());
        assert_eq!(
            index.resolve(addr("10.244.2.7:8080")),
            Resolution::Known {
                service: "payments.prod".to_owned(),
                endpoints: vec![Endpoint {
                    address: addr("10.244.2.7:8080"),
                    identity: payments(),
                }],
                protocol: Protocol::Http,
            }
        );
        // The service's port is not the pod's.
        assert_eq!(index.resolve(addr("10.244.2.7:80")), Resolution::Unknown);
    }

    #[test]
    fn not_ready_endpoints_are_left_out_and_a_missing_ready_counts_as_ready() {
        let values = edited("payments-9mtlz", |slice| {
            slice["endpoints"][0]["conditions"] = json!({"ready": false, "serving": false});
            slice["endpoints"][1]
                .as_object_mut()
                .unwrap()
                .remove("conditions");
        });
        let Resolution::Known { endpoints, .. } = index(&values).resolve(addr("10.96.120.15:80"))
        else {
            panic!("known");
        };
        let addresses: Vec<_> = endpoints.iter().map(|e| e.address.to_string()).collect();
        assert_eq!(addresses, ["10.244.1.12:8080", "10.244.2.9:8080"]);
    }

    #[test]
    fn terminating_but_serving_endpoints_stand_in_only_when_none_is_ready() {
        let terminating = json!({"ready": false, "serving": true, "terminating": true});
        let values = edited("payments-9mtlz", |slice| {
            slice["endpoints"][0]["conditions"] = terminating.clone();
        });
        let Resolution::Known { endpoints, .. } = index(&values).resolve(addr("10.96.120.15:80"))
        else {
            panic!("known");
        };
        assert_eq!(
            endpoints.len(),
            2,
            "ready ones exist: the terminating one is out"
        );

        let mut values = fixtures();
        for slice in values.iter_mut().filter(|v| v["kind"] == "EndpointSlice") {
            for endpoint in slice["endpoints"].as_array_mut().unwrap() {
                endpoint["conditions"] = json!({"ready": false, "serving": false});
            }
        }
        values
            .iter_mut()
            .find(|v| v["metadata"]["name"] == "payments-7x2kq")
            .unwrap()["endpoints"][0]["conditions"] = terminating;
        let Resolution::Known { endpoints, .. } = index(&values).resolve(addr("10.96.120.15:80"))
        else {
            panic!("known");
        };
        let addresses: Vec<_> = endpoints.iter().map(|e| e.address.to_string()).collect();
        assert_eq!(addresses, ["10.244.1.12:8080"]);
    }

    #[test]
    fn a_named_port_can_be_a_different_number_on_each_slice() {
        let values = edited("payments-9mtlz", |slice| {
            slice["ports"][0]["port"] = json!(8081);
        });
        let index = index(&values);
        let Resolution::Known { endpoints, .. } = index.resolve(addr("10.96.120.15:80")) else {
            panic!("known");
        };
        let addresses: Vec<_> = endpoints.iter().map(|e| e.address.to_string()).collect();
        assert_eq!(
            addresses,
            ["10.244.1.12:8080", "10.244.2.7:8081", "10.244.2.9:8081"]
        );
        assert_ne!(index.resolve(addr("10.244.2.7:8081")), Resolution::Unknown);
        assert_eq!(index.resolve(addr("10.244.2.7:8080")), Resolution::Unknown);
    }

    #[test]
    fn an_endpoint_whose_pod_is_not_known_yet_is_left_out() {
        let values: Vec<Value> = fixtures()
            .into_iter()
            .filter(|v| v["metadata"]["name"] != "payments-6d9f7b8c4-fghij")
            .collect();
        let index = index(&values);
        assert_eq!(index.resolve(addr("10.244.2.7:8080")), Resolution::Unknown);
        assert_eq!(index.endpoints(), 2);
    }

    fn opaque(values: &[Value], address: &str) -> bool {
        match index(values).resolve(addr(address)) {
            Resolution::Known { protocol, .. } => protocol == Protocol::Opaque,
            Resolution::Unknown => panic!("{address} is known"),
        }
    }

    #[test]
    fn opaque_ports_pod_over_service_over_namespace_without_merging() {
        assert!(!opaque(&fixtures(), "10.96.120.15:9090"));
        // The namespace's annotation covers service and pods.
        let values = edited("prod", |ns| annotate(ns, "9090"));
        assert!(opaque(&values, "10.96.120.15:9090"));
        assert!(opaque(&values, "10.244.1.12:9090"));
        assert!(!opaque(&values, "10.96.120.15:80"));

        // The service's overrides the namespace's, on the service address and on its pods (it
        // lists service ports: 80 leads to the pods' 8080).
        let mut values = edited("prod", |ns| annotate(ns, "9090"));
        let service = values.iter_mut().find(|v| v["kind"] == "Service").unwrap();
        annotate(service, "80");
        assert!(opaque(&values, "10.96.120.15:80"));
        assert!(!opaque(&values, "10.96.120.15:9090"));
        assert!(opaque(&values, "10.244.1.12:8080"));
        assert!(!opaque(&values, "10.244.1.12:9090"));

        // A pod's overrides both, for that pod only; the service address keeps the service's.
        let pod = values
            .iter_mut()
            .find(|v| v["metadata"]["name"] == "payments-6d9f7b8c4-abcde")
            .unwrap();
        annotate(pod, "9090");
        assert!(opaque(&values, "10.244.1.12:9090"));
        assert!(!opaque(&values, "10.244.1.12:8080"));
        assert!(opaque(&values, "10.244.2.7:8080"));
        assert!(opaque(&values, "10.96.120.15:80"));
    }

    #[test]
    fn the_same_objects_translate_to_equal_services() {
        let objects = load(&fixtures());
        assert_eq!(
            services(&objects, "cluster.local"),
            services(&objects.clone(), "cluster.local")
        );
    }

    #[test]
    fn udp_ports_fqdn_slices_and_services_without_tcp_ports_are_ignored() {
        let values = edited("payments", |service| {
            service["spec"]["ports"][1]["protocol"] = json!("UDP");
        });
        let index = index(&values);
        assert_eq!(
            index.resolve(addr("10.96.120.15:9090")),
            Resolution::Unknown
        );
        let values = edited("payments-9mtlz", |slice| {
            slice["addressType"] = json!("FQDN");
        });
        assert_eq!(index_len(&values), 1);
    }

    fn index_len(values: &[Value]) -> usize {
        index(values).endpoints()
    }

    #[test]
    fn a_port_is_http_by_its_app_protocol_or_else_its_name() {
        let port = |name: &str, app_protocol: Option<&str>| ServicePortView {
            name: name.to_owned(),
            port: 80,
            app_protocol: app_protocol.map(str::to_owned),
        };
        for (name, app_protocol, want) in [
            ("http", None, Protocol::Http),
            ("http-api", None, Protocol::Http),
            ("grpc-web-ui", None, Protocol::Http),
            ("h2c", None, Protocol::Http),
            ("httpx", None, Protocol::Detect),
            ("", None, Protocol::Detect),
            ("web", Some("kubernetes.io/h2c"), Protocol::Http),
            ("db", Some("HTTP"), Protocol::Http),
            // appProtocol, when set, is what the port carries, whatever its name.
            ("http", Some("mysql"), Protocol::Detect),
        ] {
            assert_eq!(
                protocol(&port(name, app_protocol), false),
                want,
                "{name} {app_protocol:?}"
            );
        }
        assert_eq!(
            protocol(&port("http", Some("http")), true),
            Protocol::Opaque
        );
    }
}

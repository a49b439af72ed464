//! From a destination `ip:port` to the service and endpoints behind it.
//!
//! A pod's app connects either to a service's virtual address (like a ClusterIP), meaning "any
//! instance of the service", or straight to one pod's IP, meaning "that instance": a StatefulSet
//! member, a peer in a cluster protocol, a client that did its own balancing. The proxy must keep
//! that choice, so a pod IP resolves to that one endpoint, never to its siblings.
//!
//! Both cases are a map lookup into an [`Index`] built once per file version; [`Index::resolve`]
//! is a pure function of the index and the address, so a watch can recompute it on every reload
//! and send an update only when its own answer changed.

use std::collections::HashMap;
use std::net::SocketAddr;

use weft_certs::SpiffeId;

use super::services::{EndpointPort, Protocol, Service};

/// The answer for one destination address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// No service claims the address.
    Unknown,
    Known {
        /// `<name>.<namespace>`
        service: String,
        endpoints: Vec<Endpoint>,
        /// What the port carries, as declared (detect, HTTP or opaque).
        protocol: Protocol,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub address: SocketAddr,
    /// The identity its sidecar must prove; `None` when it has no sidecar.
    pub identity: Option<SpiffeId>,
}

/// The services of one version of the file, indexed by the addresses they answer for.
#[derive(Debug, Default)]
pub struct Index {
    services: Vec<Service>,
    /// Service address and port → (service, port).
    by_service_address: HashMap<SocketAddr, (usize, usize)>,
    /// Endpoint IP and target port → (service, endpoint, port).
    by_endpoint: HashMap<SocketAddr, (usize, usize, usize)>,
    /// `<name>.<namespace>` → service.
    by_name: HashMap<String, usize>,
}

impl Index {
    /// Indexes checked services (see [`super::services::parse`]: no address is claimed twice; were
    /// one, the first claim would win).
    pub fn new(services: Vec<Service>) -> Self {
        let mut by_service_address = HashMap::new();
        let mut by_endpoint = HashMap::new();
        let mut by_name = HashMap::new();
        for (s, service) in services.iter().enumerate() {
            by_name.entry(service.name.clone()).or_insert(s);
            for (p, port) in service.ports.iter().enumerate() {
                for ip in &service.addresses {
                    by_service_address
                        .entry(SocketAddr::new(*ip, port.port))
                        .or_insert((s, p));
                }
                for (e, endpoint) in service.endpoints.iter().enumerate() {
                    if let Some(served) = served(service, e, p) {
                        by_endpoint
                            .entry(SocketAddr::new(endpoint.ip, served.target_port))
                            .or_insert((s, e, p));
                    }
                }
            }
        }
        Self {
            services,
            by_service_address,
            by_endpoint,
            by_name,
        }
    }

    /// Whether this index was built from exactly `services` (a new version equal to this one
    /// need not be published: no watch's answer could change).
    pub fn is_built_from(&self, services: &[Service]) -> bool {
        self.services == services
    }

    pub fn services(&self) -> usize {
        self.services.len()
    }

    /// The services indexed.
    pub fn all(&self) -> &[Service] {
        &self.services
    }

    pub fn endpoints(&self) -> usize {
        self.services.iter().map(|s| s.endpoints.len()).sum()
    }

    /// What `addr` leads to.
    pub fn resolve(&self, addr: SocketAddr) -> Resolution {
        let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
        if let Some(&(s, p)) = self.by_service_address.get(&addr) {
            return self.whole_service(s, p);
        }
        if let Some(&(s, e, p)) = self.by_endpoint.get(&addr) {
            let service = &self.services[s];
            return Resolution::Known {
                service: service.name.clone(),
                endpoints: vec![Endpoint {
                    address: addr,
                    identity: service.endpoints[e].identity.clone(),
                }],
                // Indexed only where served.
                protocol: served(service, e, p).map_or(Protocol::Detect, |p| p.protocol),
            };
        }
        Resolution::Unknown
    }

    /// Whether `addr` is an endpoint's own address (a pod IP and target port), not a service's.
    pub fn is_endpoint(&self, addr: SocketAddr) -> bool {
        let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
        !self.by_service_address.contains_key(&addr) && self.by_endpoint.contains_key(&addr)
    }

    /// What `<name>.<namespace>:<port>` leads to: like the service's virtual address on that
    /// port (one of its `ports[].port`), every endpoint on the target port. Unknown when no
    /// service has that name or the service has no such port.
    pub fn resolve_name(&self, service: &str, port: u16) -> Resolution {
        let Some(&s) = self.by_name.get(service) else {
            return Resolution::Unknown;
        };
        match self.services[s].ports.iter().position(|p| p.port == port) {
            Some(p) => self.whole_service(s, p),
            None => Resolution::Unknown,
        }
    }

    fn whole_service(&self, s: usize, p: usize) -> Resolution {
        let service = &self.services[s];
        let port = &service.ports[p];
        Resolution::Known {
            service: service.name.clone(),
            endpoints: service
                .endpoints
                .iter()
                .enumerate()
                .filter_map(|(e, endpoint)| {
                    Some(Endpoint {
                        address: SocketAddr::new(endpoint.ip, served(service, e, p)?.target_port),
                        identity: endpoint.identity.clone(),
                    })
                })
                .collect(),
            protocol: port.protocol,
        }
    }
}

/// How endpoint `e` of `service` serves port `p`: its own override, else the port as declared;
/// `None` when it does not serve that port.
fn served(service: &Service, e: usize, p: usize) -> Option<EndpointPort> {
    let port = &service.ports[p];
    match &service.endpoints[e].ports {
        None => Some(EndpointPort {
            target_port: port.target_port,
            protocol: port.protocol,
        }),
        Some(ports) => ports.get(p).copied().flatten(),
    }
}

impl From<Resolution> for weft_api::discovery::Resolution {
    fn from(resolution: Resolution) -> Self {
        match resolution {
            Resolution::Unknown => Self::default(),
            Resolution::Known {
                service,
                endpoints,
                protocol,
            } => Self {
                known: true,
                service,
                endpoints: endpoints
                    .into_iter()
                    .map(|e| weft_api::discovery::Endpoint {
                        address: e.address.to_string(),
                        meshed: e.identity.is_some(),
                        identity: e.identity.map(|id| id.to_string()).unwrap_or_default(),
                    })
                    .collect(),
                opaque: protocol == Protocol::Opaque,
                protocol: weft_api::discovery::PortProtocol::from(protocol).into(),
                policy: None,
                server_policy: None,
                routes: None,
            },
        }
    }
}

/// The first `ip:port` of `service` (an address and port, or an endpoint and target port) that a
/// service of `index` already answers for, as a message naming both.
pub fn first_conflict(index: &Index, service: &Service) -> Option<String> {
    let addresses = service.addresses.iter().flat_map(|ip| {
        service
            .ports
            .iter()
            .map(move |p| (SocketAddr::new(*ip, p.port), "a service address"))
    });
    let endpoints = service.endpoints.iter().flat_map(|e| {
        service
            .ports
            .iter()
            .map(move |p| (SocketAddr::new(e.ip, p.target_port), "an endpoint"))
    });
    for (addr, role) in addresses.chain(endpoints) {
        let first = index
            .by_service_address
            .get(&addr)
            .map(|&(s, _)| s)
            .or_else(|| index.by_endpoint.get(&addr).map(|&(s, _, _)| s));
        if let Some(s) = first {
            return Some(format!(
                "{addr} ({role} of {}) is already claimed by service {}",
                service.name, index.services[s].name
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::discovery::services;

    const FILE: &str = "\
apiVersion: weft.dev/v1alpha1
kind: MeshService
metadata: {name: hello, namespace: demo}
spec:
  addresses: [10.96.0.10, fd00::10]
  ports:
    - port: 80
      targetPort: 8080
    - port: 5432
      protocol: opaque
  endpoints:
    - address: 10.200.0.2
      serviceAccount: hello
    - address: 10.200.0.9
      meshed: false
---
apiVersion: weft.dev/v1alpha1
kind: MeshService
metadata: {name: empty, namespace: demo}
spec:
  addresses: [10.96.0.11]
  ports: [{port: 80}]
";

    fn index() -> Index {
        Index::new(services::parse(FILE.as_bytes(), Path::new("s.yaml"), "cluster.local").unwrap())
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn hello() -> Option<SpiffeId> {
        Some(SpiffeId::new("cluster.local", "demo", "hello").unwrap())
    }

    #[test]
    fn a_service_address_leads_to_every_endpoint_on_the_target_port() {
        let expected = Resolution::Known {
            service: "hello.demo".to_owned(),
            endpoints: vec![
                Endpoint {
                    address: addr("10.200.0.2:8080"),
                    identity: hello(),
                },
                Endpoint {
                    address: addr("10.200.0.9:8080"),
                    identity: None,
                },
            ],
            protocol: Protocol::Detect,
        };
        let index = index();
        assert_eq!(index.resolve(addr("10.96.0.10:80")), expected);
        assert_eq!(index.resolve(addr("[fd00::10]:80")), expected);
        // IPv4-mapped IPv6, as a dual-stack socket reports it, is the same destination.
        assert_eq!(index.resolve(addr("[::ffff:10.96.0.10]:80")), expected);
    }

    #[test]
    fn a_pod_address_leads_to_that_endpoint_only() {
        let index = index();
        assert_eq!(
            index.resolve(addr("10.200.0.2:8080")),
            Resolution::Known {
                service: "hello.demo".to_owned(),
                endpoints: vec![Endpoint {
                    address: addr("10.200.0.2:8080"),
                    identity: hello(),
                }],
                protocol: Protocol::Detect,
            }
        );
        // The port clients use on the service address is not the pod's port.
        assert_eq!(index.resolve(addr("10.200.0.2:80")), Resolution::Unknown);
    }

    #[test]
    fn a_name_and_port_lead_like_the_service_address() {
        let index = index();
        assert_eq!(
            index.resolve_name("hello.demo", 80),
            index.resolve(addr("10.96.0.10:80"))
        );
        let Resolution::Known { protocol, .. } = index.resolve_name("hello.demo", 5432) else {
            panic!("the named port resolves");
        };
        assert_eq!(protocol, Protocol::Opaque);
        // The port is the service's, not the endpoints'.
        assert_eq!(index.resolve_name("hello.demo", 8080), Resolution::Unknown);
        assert_eq!(index.resolve_name("nobody.demo", 80), Resolution::Unknown);
    }

    #[test]
    fn wrong_ports_and_strangers_are_unknown() {
        let index = index();
        assert_eq!(index.resolve(addr("10.96.0.10:8080")), Resolution::Unknown);
        assert_eq!(index.resolve(addr("10.96.0.99:80")), Resolution::Unknown);
        assert_eq!(
            Index::default().resolve(addr("10.96.0.10:80")),
            Resolution::Unknown
        );
    }

    #[test]
    fn opaque_ports_say_so_on_both_paths() {
        let index = index();
        let Resolution::Known {
            protocol,
            endpoints,
            ..
        } = index.resolve(addr("10.96.0.10:5432"))
        else {
            panic!("the service port resolves");
        };
        assert_eq!(protocol, Protocol::Opaque);
        assert_eq!(endpoints[0].address, addr("10.200.0.2:5432"));
        let Resolution::Known { protocol, .. } = index.resolve(addr("10.200.0.9:5432")) else {
            panic!("the pod port resolves");
        };
        assert_eq!(protocol, Protocol::Opaque);
    }

    #[test]
    fn a_service_without_endpoints_is_known_and_empty() {
        let index = index();
        assert_eq!(
            index.resolve(addr("10.96.0.11:80")),
            Resolution::Known {
                service: "empty.demo".to_owned(),
                endpoints: vec![],
                protocol: Protocol::Detect
            }
        );
        assert_eq!((index.services(), index.endpoints()), (2, 2));
    }

    #[test]
    fn on_the_wire_unmeshed_endpoints_have_no_identity() {
        let wire = weft_api::discovery::Resolution::from(index().resolve(addr("10.96.0.10:80")));
        assert!(wire.known);
        assert_eq!(wire.service, "hello.demo");
        assert_eq!(
            wire.endpoints[0].identity,
            "spiffe://cluster.local/ns/demo/sa/hello"
        );
        assert!(wire.endpoints[0].meshed);
        assert_eq!(wire.endpoints[1].address, "10.200.0.9:8080");
        assert_eq!(wire.endpoints[1].identity, "");
        assert!(!wire.endpoints[1].meshed);
        let unknown = weft_api::discovery::Resolution::from(Resolution::Unknown);
        assert_eq!(unknown, weft_api::discovery::Resolution::default());
    }
}

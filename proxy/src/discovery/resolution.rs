//! The control plane's answer for an address, turned into something the outbound side routes by.

use std::net::SocketAddr;
use std::sync::Arc;

use weft_api::discovery as proto;

use crate::destination::{Described, Destination, Endpoint};
use crate::policy::ClientPolicy;
use crate::policy::gateway::RouteTable;
use crate::telemetry::metrics::Metrics;
use crate::transport::port_protocol::PortProtocol;

/// What a destination address is.
#[derive(Debug, Clone)]
pub enum Resolution {
    /// No service claims it: not part of the mesh.
    Unknown,
    /// A mesh service and its endpoints.
    Known(Arc<Destination>),
}

impl Resolution {
    /// Converts an answer, keeping the state (balancer loads, breakers, budget, limit) that
    /// `previous` had for the same endpoints and destination.
    pub fn from_proto(
        answer: proto::Resolution,
        previous: Option<&Resolution>,
        metrics: &Arc<Metrics>,
    ) -> Self {
        if !answer.known {
            return Resolution::Unknown;
        }
        let previous = match previous {
            Some(Resolution::Known(d)) if *d.name == *answer.service => Some(d.as_ref()),
            _ => None,
        };
        let protocol = PortProtocol::from_proto(answer.protocol(), answer.opaque);
        let mut meshed = Vec::new();
        let mut unmeshed = Vec::new();
        for endpoint in answer.endpoints {
            let Ok(addr) = endpoint.address.parse::<SocketAddr>() else {
                tracing::warn!(service = %answer.service, address = %endpoint.address, "discovery sent an endpoint address that is not IP:PORT; ignoring it");
                continue;
            };
            if !endpoint.meshed {
                unmeshed.push(addr);
                continue;
            }
            match endpoint.identity.parse() {
                Ok(identity) => meshed.push(Endpoint::new(addr, identity)),
                Err(err) => {
                    tracing::warn!(service = %answer.service, %addr, "discovery sent an invalid identity {:?}: {err}; ignoring the endpoint", endpoint.identity)
                }
            }
        }
        let policy = match answer.policy {
            Some(policy) => ClientPolicy::from_proto(policy),
            None => ClientPolicy::builtin(),
        };
        let described = Described {
            protocol,
            name: answer.service.into(),
            endpoints: meshed,
            unmeshed,
            policy,
            routes: answer.routes.map(|t| Arc::new(RouteTable::from_proto(t))),
        };
        Resolution::Known(Arc::new(Destination::new(described, previous, metrics)))
    }

    /// A short description for logs.
    pub fn summary(&self) -> String {
        match self {
            Resolution::Unknown => "not a mesh service".to_owned(),
            Resolution::Known(d) => {
                let routes = match &d.routes {
                    Some(table) => format!(", routes {}", table.version),
                    None => String::new(),
                };
                format!(
                    "{} ({} meshed, {} unmeshed endpoints{}, policy {}{routes})",
                    d.name,
                    d.endpoints().len(),
                    d.unmeshed().len(),
                    match d.protocol {
                        PortProtocol::Detect => "",
                        PortProtocol::Http => ", http",
                        PortProtocol::Opaque => ", opaque",
                    },
                    d.policy.version
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(address: &str, identity: &str, meshed: bool) -> proto::Endpoint {
        proto::Endpoint {
            address: address.into(),
            identity: identity.into(),
            meshed,
        }
    }

    #[test]
    fn keeps_the_load_of_endpoints_that_stay() {
        let metrics = Arc::new(Metrics::new());
        let id = "spiffe://cluster.local/ns/demo/sa/hello";
        let first = Resolution::from_proto(
            proto::Resolution {
                known: true,
                service: "hello.demo".into(),
                endpoints: vec![
                    endpoint("10.0.0.1:80", id, true),
                    endpoint("10.0.0.9:80", "", false),
                    endpoint("nonsense", id, true),
                    endpoint("10.0.0.3:80", "not-spiffe", true),
                ],
                opaque: false,
                policy: None,
                server_policy: None,
                routes: None,
                protocol: 0,
            },
            None,
            &metrics,
        );
        let Resolution::Known(d) = &first else {
            panic!("{first:?}")
        };
        assert_eq!(d.endpoints().len(), 1);
        assert_eq!(d.unmeshed(), ["10.0.0.9:80".parse().unwrap()]);
        let second = Resolution::from_proto(
            proto::Resolution {
                known: true,
                service: "hello.demo".into(),
                endpoints: vec![
                    endpoint("10.0.0.1:80", id, true),
                    endpoint("10.0.0.2:80", id, true),
                ],
                opaque: true,
                policy: None,
                server_policy: None,
                routes: None,
                protocol: 0,
            },
            Some(&first),
            &metrics,
        );
        let Resolution::Known(d2) = &second else {
            panic!("{second:?}")
        };
        assert!(Arc::ptr_eq(&d.endpoints()[0].load, &d2.endpoints()[0].load));
        assert!(!Arc::ptr_eq(
            &d.endpoints()[0].load,
            &d2.endpoints()[1].load
        ));
        assert_eq!(d2.protocol, PortProtocol::Opaque);
        assert!(matches!(
            Resolution::from_proto(proto::Resolution::default(), Some(&second), &metrics),
            Resolution::Unknown
        ));
    }
}

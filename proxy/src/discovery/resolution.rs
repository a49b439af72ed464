//! The control plane's answer for an address, turned into something the outbound side routes by.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use weft_api::discovery as proto;

use crate::outbound::{Destination, Endpoint};

/// What a destination address is.
#[derive(Debug, Clone)]
pub enum Resolution {
    /// No service claims it: not part of the mesh.
    Unknown,
    /// A mesh service and its endpoints.
    Known(Arc<Destination>),
}

impl Resolution {
    /// Converts an answer, keeping the balancer's load of endpoints that `previous` had too.
    pub fn from_proto(answer: proto::Resolution, previous: Option<&Resolution>) -> Self {
        if !answer.known {
            return Resolution::Unknown;
        }
        let loads: HashMap<SocketAddr, _> = match previous {
            Some(Resolution::Known(d)) => d
                .endpoints()
                .iter()
                .map(|e| (e.addr, e.load.clone()))
                .collect(),
            _ => HashMap::new(),
        };
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
                Ok(identity) => {
                    let mut e = Endpoint::new(addr, identity);
                    if let Some(load) = loads.get(&addr) {
                        e = e.with_load(load.clone());
                    }
                    meshed.push(e);
                }
                Err(err) => {
                    tracing::warn!(service = %answer.service, %addr, "discovery sent an invalid identity {:?}: {err}; ignoring the endpoint", endpoint.identity)
                }
            }
        }
        Resolution::Known(Arc::new(Destination::discovered(
            answer.service,
            meshed,
            unmeshed,
            answer.opaque,
        )))
    }

    /// A short description for logs.
    pub fn summary(&self) -> String {
        match self {
            Resolution::Unknown => "not a mesh service".to_owned(),
            Resolution::Known(d) => format!(
                "{} ({} meshed, {} unmeshed endpoints{})",
                d.name,
                d.endpoints().len(),
                d.unmeshed().len(),
                if d.opaque { ", opaque" } else { "" }
            ),
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
            },
            None,
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
            },
            Some(&first),
        );
        let Resolution::Known(d2) = &second else {
            panic!("{second:?}")
        };
        assert!(Arc::ptr_eq(&d.endpoints()[0].load, &d2.endpoints()[0].load));
        assert!(!Arc::ptr_eq(
            &d.endpoints()[0].load,
            &d2.endpoints()[1].load
        ));
        assert!(d2.opaque);
        assert!(matches!(
            Resolution::from_proto(proto::Resolution::default(), Some(&second)),
            Resolution::Unknown
        ));
    }
}

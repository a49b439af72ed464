//! Where the app's traffic goes: a destination is a set of endpoints, each a peer proxy address
//! with the identity that proxy must prove, balanced by [`crate::balance`].

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use weft_certs::SpiffeId;

use crate::balance::{self, Load};

/// A peer proxy: where to connect, and who must answer.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub identity: SpiffeId,
    /// `identity` as a `weft-server-identity` value, made once.
    identity_header: Option<http::HeaderValue>,
    /// Requests in flight and latency, for the balancer.
    pub load: Arc<Load>,
}

impl PartialEq for Endpoint {
    fn eq(&self, other: &Self) -> bool {
        self.addr == other.addr && self.identity == other.identity
    }
}

impl Eq for Endpoint {}

/// Hashes the address only: it is what tells endpoints apart, and hashing the identity's strings
/// on every request (the pool looks endpoints up per request) would cost for nothing.
impl std::hash::Hash for Endpoint {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.addr.hash(state);
    }
}

impl Endpoint {
    pub fn new(addr: SocketAddr, identity: SpiffeId) -> Self {
        let identity_header = http::HeaderValue::from_str(&identity.to_string()).ok();
        Self {
            addr,
            identity,
            identity_header,
            load: Arc::default(),
        }
    }

    /// The same endpoint keeping `load` (the balancer's memory of it across discovery updates).
    pub fn with_load(mut self, load: Arc<Load>) -> Self {
        self.load = load;
        self
    }

    /// The identity as a header value, for `weft-server-identity`.
    pub fn identity_header(&self) -> Option<&http::HeaderValue> {
        self.identity_header.as_ref()
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.identity, self.addr)
    }
}

/// `spiffe://…/sa/hello@127.0.0.1:16006`
impl FromStr for Endpoint {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (identity, addr) = text
            .rsplit_once('@')
            .ok_or_else(|| format!("endpoint {text:?} is not IDENTITY@ADDRESS"))?;
        let identity = identity
            .parse()
            .map_err(|e| format!("endpoint {text:?}: {e}"))?;
        let addr = addr
            .parse()
            .map_err(|e| format!("endpoint {text:?}: address {addr:?}: {e}"))?;
        Ok(Self::new(addr, identity))
    }
}

/// A named set of endpoints.
#[derive(Debug)]
pub struct Destination {
    /// For metrics and logs.
    pub name: String,
    /// Meshed endpoints: mutual TLS to their proxies.
    endpoints: Vec<Endpoint>,
    /// Endpoints without a sidecar: reached over plain TCP.
    unmeshed: Vec<SocketAddr>,
    /// Carry connections as opaque TCP without waiting to detect a protocol.
    pub opaque: bool,
}

impl Destination {
    pub fn new(name: String, endpoints: Vec<Endpoint>) -> Self {
        Self {
            name,
            endpoints,
            unmeshed: Vec::new(),
            opaque: false,
        }
    }

    /// A destination as discovery describes it.
    pub fn discovered(
        name: String,
        endpoints: Vec<Endpoint>,
        unmeshed: Vec<SocketAddr>,
        opaque: bool,
    ) -> Self {
        Self {
            name,
            endpoints,
            unmeshed,
            opaque,
        }
    }

    /// The meshed endpoint to send the next request to (see [`crate::balance`]).
    pub fn pick(&self) -> Option<&Endpoint> {
        let index = balance::pick_index(self.endpoints.iter().map(|e| e.load.as_ref()))?;
        self.endpoints.get(index)
    }

    /// An endpoint without a sidecar, when the destination has only those.
    pub fn pick_unmeshed(&self) -> Option<SocketAddr> {
        if !self.endpoints.is_empty() || self.unmeshed.is_empty() {
            return None;
        }
        self.unmeshed
            .get(fastrand::usize(..self.unmeshed.len()))
            .copied()
    }

    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    pub fn unmeshed(&self) -> &[SocketAddr] {
        &self.unmeshed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_identity_at_address() {
        let e: Endpoint = "spiffe://cluster.local/ns/demo/sa/hello@127.0.0.1:16006"
            .parse()
            .unwrap();
        assert_eq!(e.addr, "127.0.0.1:16006".parse().unwrap());
        assert_eq!(e.identity.service_account(), "hello");
        assert_eq!(
            e.to_string(),
            "spiffe://cluster.local/ns/demo/sa/hello@127.0.0.1:16006"
        );
        let err = "spiffe://cluster.local/ns/demo/sa/hello@nowhere"
            .parse::<Endpoint>()
            .unwrap_err();
        assert!(err.contains("address \"nowhere\""), "{err}");
        assert!("127.0.0.1:1".parse::<Endpoint>().is_err());
    }

    #[test]
    fn uses_every_endpoint_and_unmeshed_ones_only_without_meshed_ones() {
        let a: Endpoint = "spiffe://td/ns/a/sa/x@127.0.0.1:1".parse().unwrap();
        let b: Endpoint = "spiffe://td/ns/a/sa/x@127.0.0.1:2".parse().unwrap();
        let plain: SocketAddr = "127.0.0.1:3".parse().unwrap();
        let d = Destination::discovered("x".into(), vec![a.clone(), b.clone()], vec![plain], false);
        let picked = d.pick().unwrap();
        assert!(*picked == a || *picked == b);
        assert_eq!(d.pick_unmeshed(), None);
        let only_plain = Destination::discovered("y".into(), vec![], vec![plain], false);
        assert!(only_plain.pick().is_none());
        assert_eq!(only_plain.pick_unmeshed(), Some(plain));
    }
}

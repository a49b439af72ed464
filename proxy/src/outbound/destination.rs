//! Where the app's traffic goes: a destination is a set of endpoints, each a peer proxy address
//! with the identity that proxy must prove.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};

use weft_certs::SpiffeId;

/// A peer proxy: where to connect, and who must answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub identity: SpiffeId,
    /// `identity` as a `weft-server-identity` value, made once.
    identity_header: Option<http::HeaderValue>,
}

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
        }
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

/// A named set of endpoints, used in turn.
#[derive(Debug)]
pub struct Destination {
    /// For metrics and logs.
    pub name: String,
    endpoints: Vec<Endpoint>,
    next: AtomicUsize,
}

impl Destination {
    pub fn new(name: String, endpoints: Vec<Endpoint>) -> Self {
        Self {
            name,
            endpoints,
            next: AtomicUsize::new(0),
        }
    }

    /// The next endpoint in round-robin order.
    pub fn pick(&self) -> Option<&Endpoint> {
        if self.endpoints.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.endpoints.len();
        self.endpoints.get(i)
    }

    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
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
    fn takes_endpoints_in_turn() {
        let a: Endpoint = "spiffe://td/ns/a/sa/x@127.0.0.1:1".parse().unwrap();
        let b: Endpoint = "spiffe://td/ns/a/sa/x@127.0.0.1:2".parse().unwrap();
        let d = Destination::new("x".into(), vec![a.clone(), b.clone()]);
        let picks: Vec<_> = (0..4).map(|_| d.pick().unwrap().clone()).collect();
        assert_eq!(picks, [a.clone(), b.clone(), a, b]);
        assert!(Destination::new("none".into(), vec![]).pick().is_none());
    }
}

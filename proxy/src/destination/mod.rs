//! Where the app's traffic goes: a destination is a service's endpoints (each a peer proxy
//! address with the identity that proxy must prove), the client policy that governs requests to
//! it, and the state that policy keeps: a retry budget and a concurrency limit for the
//! destination, a balancer load and a circuit breaker per endpoint.
//!
//! Discovery sends a new answer whenever endpoints or the policy change, and each answer becomes
//! a new, immutable `Destination`; the state lives in `Arc`s that the new one takes over from the
//! previous one (per endpoint by address; budget and limit unless their settings changed), so an
//! ejected endpoint stays ejected and the budget remembers its window across updates.

pub mod balance;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use prometheus::Histogram;
use tokio::time::Instant;
use weft_certs::SpiffeId;

use crate::policy::ClientPolicy;
use crate::policy::gateway::RouteTable;
use crate::resilience::breaker::{self, Admission, Breaker, Transition};
use crate::resilience::limit::Limit;
use crate::resilience::retry::budget::Budget;
use crate::telemetry::Label;
use crate::telemetry::metrics::Metrics;
use crate::transport::port_protocol::PortProtocol;
use balance::Load;

/// A peer proxy: where to connect, and who must answer.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub identity: SpiffeId,
    /// `identity` as a `weft-server-identity` value, made once.
    identity_header: Option<http::HeaderValue>,
    /// Requests in flight and latency, for the balancer.
    pub load: Arc<Load>,
    pub breaker: Arc<Breaker>,
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
            breaker: Arc::default(),
        }
    }

    /// The same endpoint keeping the balancer's and the breaker's memory of `previous`.
    fn keeping_state_of(mut self, previous: &Endpoint) -> Self {
        self.load = previous.load.clone();
        self.breaker = previous.breaker.clone();
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

/// What discovery (or a `--forward` flag) says a destination is.
#[derive(Debug)]
pub struct Described {
    pub name: Label,
    /// Meshed endpoints: mutual TLS to their proxies.
    pub endpoints: Vec<Endpoint>,
    /// Endpoints without a sidecar: reached over plain TCP.
    pub unmeshed: Vec<SocketAddr>,
    pub protocol: PortProtocol,
    pub policy: ClientPolicy,
    /// The Gateway API routes of the service's port, for this caller.
    pub routes: Option<Arc<RouteTable>>,
}

/// Why no endpoint can take a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    NoEndpoints,
    /// Every endpoint is ejected (or its probe is on its way).
    CircuitOpen,
}

/// A named set of endpoints and the policy for requests to them.
pub struct Destination {
    /// For metrics and logs.
    pub name: Label,
    endpoints: Vec<Endpoint>,
    unmeshed: Vec<SocketAddr>,
    /// What the port carries: detected, always HTTP, or opaque TCP without detection.
    pub protocol: PortProtocol,
    pub policy: ClientPolicy,
    /// The Gateway API routes of the service's port: when present, a request goes to the
    /// backend its rule picks, not to these endpoints.
    pub routes: Option<Arc<RouteTable>>,
    pub budget: Arc<Budget>,
    pub limit: Arc<Limit>,
    /// `weft_outbound_request_attempts` per route, in the order of `policy.routes()`.
    attempts: Vec<Histogram>,
    pub metrics: Arc<Metrics>,
}

impl fmt::Debug for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Destination")
            .field("name", &self.name)
            .field("endpoints", &self.endpoints)
            .field("unmeshed", &self.unmeshed)
            .field("policy", &self.policy.version)
            .finish()
    }
}

impl Destination {
    /// A destination taking over the state of `previous` (the answer before), if any.
    pub fn new(
        described: Described,
        previous: Option<&Destination>,
        metrics: &Arc<Metrics>,
    ) -> Self {
        let Described {
            name,
            mut endpoints,
            unmeshed,
            protocol,
            policy,
            routes,
        } = described;
        let mut budget = None;
        let mut limit = None;
        if let Some(previous) = previous {
            let kept: HashMap<SocketAddr, &Endpoint> =
                previous.endpoints.iter().map(|e| (e.addr, e)).collect();
            for endpoint in &mut endpoints {
                if let Some(before) = kept.get(&endpoint.addr) {
                    *endpoint = endpoint.clone().keeping_state_of(before);
                }
            }
            for gone in previous
                .endpoints
                .iter()
                .filter(|e| !endpoints.iter().any(|n| n.addr == e.addr))
            {
                let _ = metrics
                    .resilience
                    .endpoint_ejected
                    .remove_label_values(&[&*previous.name, &gone.addr.to_string()]);
            }
            if *previous.budget.config() == policy.budget {
                budget = Some(previous.budget.clone());
            }
            if *previous.limit.config() == policy.limits {
                limit = Some(previous.limit.clone());
            }
        }
        for endpoint in &endpoints {
            metrics
                .resilience
                .endpoint_ejected
                .with_label_values(&[&*name, &endpoint.addr.to_string()])
                .set(i64::from(endpoint.breaker.ejected()));
        }
        let attempts = policy
            .routes()
            .map(|route| {
                metrics
                    .resilience
                    .request_attempts
                    .with_label_values(&[&name, &route.name])
            })
            .collect();
        Self {
            budget: budget.unwrap_or_else(|| Arc::new(Budget::new(policy.budget))),
            limit: limit.unwrap_or_else(|| Arc::new(Limit::new(policy.limits))),
            name,
            endpoints,
            unmeshed,
            protocol,
            policy,
            routes,
            attempts,
            metrics: metrics.clone(),
        }
    }

    /// A fixed set of endpoints with the built-in policy (a `--forward IDENTITY@ADDRESS` listener).
    pub fn fixed(name: Label, endpoints: Vec<Endpoint>, metrics: &Arc<Metrics>) -> Self {
        let described = Described {
            name,
            endpoints,
            unmeshed: Vec::new(),
            protocol: PortProtocol::Detect,
            policy: ClientPolicy::builtin(),
            routes: None,
        };
        Self::new(described, None, metrics)
    }

    /// The endpoint for the next attempt (see [`balance`]), admitted by its breaker; `avoid` (the
    /// endpoint that just failed) is taken only if nothing else can be.
    pub fn pick(&self, avoid: Option<SocketAddr>) -> Result<(&Endpoint, Admission), Unavailable> {
        if self.endpoints.is_empty() {
            return Err(Unavailable::NoEndpoints);
        }
        // Nearly always every breaker is closed: the balancer alone decides, with no clock read
        // and no lock. (A breaker opening meanwhile only costs one request to the endpoint.)
        if !self.endpoints.iter().any(|e| e.breaker.ejected()) {
            let other = |e: &Endpoint| Some(e.addr) != avoid;
            let index = balance::pick_where(&self.endpoints, |e| &e.load, other)
                .or_else(|| balance::pick_where(&self.endpoints, |e| &e.load, |_| true))
                .ok_or(Unavailable::NoEndpoints)?;
            return Ok((&self.endpoints[index], Admission::Closed));
        }
        let now = Instant::now();
        // An endpoint whose penalty is over gets the next request as its probe, so that it is
        // probed when its penalty says, not when the balancer happens to choose it.
        for endpoint in &self.endpoints {
            if Some(endpoint.addr) != avoid
                && endpoint.breaker.probe_due(now)
                && let Some(admission) = endpoint.breaker.admit(now)
            {
                return Ok((endpoint, admission));
            }
        }
        // A probe can be taken by a concurrent request between the look and the admission:
        // then look again.
        for _ in 0..3 {
            let admissible = |e: &Endpoint| e.breaker.admissible(now);
            let preferred = |e: &Endpoint| admissible(e) && Some(e.addr) != avoid;
            let index = balance::pick_where(&self.endpoints, |e| &e.load, preferred)
                .or_else(|| balance::pick_where(&self.endpoints, |e| &e.load, admissible));
            let Some(index) = index else {
                return Err(Unavailable::CircuitOpen);
            };
            let endpoint = &self.endpoints[index];
            if let Some(admission) = endpoint.breaker.admit(now) {
                return Ok((endpoint, admission));
            }
        }
        Err(Unavailable::CircuitOpen)
    }

    /// Feeds an attempt's outcome to the endpoint's breaker, guarding `maxEjectedPercent`.
    pub fn record(&self, endpoint: &Endpoint, failed: bool) {
        let config = &self.policy.breaker;
        let may_eject = || {
            let ejected = self
                .endpoints
                .iter()
                .filter(|e| e.breaker.ejected())
                .count();
            ejected < breaker::max_ejected(self.endpoints.len(), config.max_ejected_percent)
        };
        let transition =
            endpoint
                .breaker
                .record(failed, config, Instant::now(), fastrand::f64(), may_eject);
        let Some(transition) = transition else {
            return;
        };
        let addr = endpoint.addr.to_string();
        let ejected = self
            .metrics
            .resilience
            .endpoint_ejected
            .with_label_values(&[&*self.name, &addr]);
        match transition {
            Transition::Opened { penalty } => {
                ejected.set(1);
                self.metrics
                    .resilience
                    .breaker_transitions
                    .with_label_values(&[&self.name, "open"])
                    .inc();
                tracing::warn!(destination = %self.name, endpoint = %addr, ?penalty, "circuit breaker opened: the endpoint is ejected after {} consecutive failures", endpoint.breaker.consecutive_failures());
            }
            Transition::Closed => {
                ejected.set(0);
                self.metrics
                    .resilience
                    .breaker_transitions
                    .with_label_values(&[&self.name, "closed"])
                    .inc();
                tracing::info!(destination = %self.name, endpoint = %addr, "circuit breaker closed: the probe succeeded");
            }
        }
    }

    /// `weft_outbound_request_attempts` for the route at `index`.
    pub fn attempts_histogram(&self, index: usize) -> Option<&Histogram> {
        self.attempts.get(index)
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

    fn described(name: &str, endpoints: Vec<Endpoint>, unmeshed: Vec<SocketAddr>) -> Described {
        Described {
            name: name.into(),
            endpoints,
            unmeshed,
            protocol: PortProtocol::Detect,
            policy: ClientPolicy::builtin(),
            routes: None,
        }
    }

    #[tokio::test]
    async fn uses_every_endpoint_and_unmeshed_ones_only_without_meshed_ones() {
        let metrics = Arc::new(Metrics::new());
        let a: Endpoint = "spiffe://td/ns/a/sa/x@127.0.0.1:1".parse().unwrap();
        let b: Endpoint = "spiffe://td/ns/a/sa/x@127.0.0.1:2".parse().unwrap();
        let plain: SocketAddr = "127.0.0.1:3".parse().unwrap();
        let d = Destination::new(
            described("x", vec![a.clone(), b.clone()], vec![plain]),
            None,
            &metrics,
        );
        let (picked, _) = d.pick(None).unwrap();
        assert!(*picked == a || *picked == b);
        assert_eq!(d.pick(Some(a.addr)).unwrap().0.addr, b.addr);
        assert_eq!(d.pick_unmeshed(), None);
        let only_plain = Destination::new(described("y", vec![], vec![plain]), None, &metrics);
        assert_eq!(only_plain.pick(None).unwrap_err(), Unavailable::NoEndpoints);
        assert_eq!(only_plain.pick_unmeshed(), Some(plain));
    }

    #[tokio::test(start_paused = true)]
    async fn breaker_state_survives_updates_and_the_guard_keeps_half_the_endpoints() {
        let metrics = Arc::new(Metrics::new());
        let a: Endpoint = "spiffe://td/ns/a/sa/x@127.0.0.1:1".parse().unwrap();
        let b: Endpoint = "spiffe://td/ns/a/sa/x@127.0.0.1:2".parse().unwrap();
        let d = Destination::new(
            described("x", vec![a.clone(), b.clone()], vec![]),
            None,
            &metrics,
        );
        for _ in 0..7 {
            d.record(&d.endpoints()[0], true);
            d.record(&d.endpoints()[1], true);
        }
        // Both failing, at most 50 %: only the first to reach the threshold is ejected.
        assert!(d.endpoints()[0].breaker.ejected());
        assert!(!d.endpoints()[1].breaker.ejected());
        for _ in 0..5 {
            assert_eq!(d.pick(None).unwrap().0.addr, b.addr);
        }
        let updated = Destination::new(
            described("x", vec![b.clone(), a.clone()], vec![]),
            Some(&d),
            &metrics,
        );
        assert!(
            updated.endpoints()[1].breaker.ejected(),
            "kept across the update"
        );
        assert!(Arc::ptr_eq(&updated.budget, &d.budget));
        assert_eq!(
            metrics
                .resilience
                .endpoint_ejected
                .with_label_values(&["x", "127.0.0.1:1"])
                .get(),
            1
        );
    }
}

//! The mesh at a glance: [`MeshSnapshot`], built from a [`Window`] whichever source filled it.
//! `weft stat`, `weft edges`, `weft routes` and the dashboard all print or draw this one value;
//! its JSON (`-o json`, the dashboard's `/api/snapshot`) is documented in `docs/visibility.md`.
//!
//! Workloads are named by their identity's `namespace/service-account` (`demo/web`): the
//! identity is what a sidecar proves, so it is what every series carries. Services keep their
//! mesh name, `name.namespace` (`hello.demo`).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

mod details;
mod grouped;

use details::{endpoints, versions_and_drills};
use grouped::{Grouped, Signals};

use super::golden::Golden;
use super::window::{OWNER, Window};

/// The source node of callers that proved no identity.
pub const UNMESHED: &str = "unmeshed";

#[derive(Debug, Clone, Default, Serialize)]
pub struct MeshSnapshot {
    /// `prometheus` or `sidecars`.
    pub source: String,
    pub window_seconds: f64,
    /// Unix time (seconds) of the window's end.
    pub time: f64,
    pub workloads: Vec<Workload>,
    pub services: Vec<Service>,
    pub edges: Vec<Edge>,
    pub routes: Vec<Route>,
    pub endpoints: Vec<Endpoint>,
    pub versions: Vec<Version>,
    /// Sources that could not be read.
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Workload {
    /// `namespace/service-account`.
    pub id: String,
    pub namespace: String,
    pub name: String,
    pub identity: String,
    /// Sidecars proving this identity.
    pub meshed_pods: usize,
    /// What its sidecars served (inbound).
    pub inbound: Golden,
    /// Connections open to its sidecars from callers.
    pub tcp_connections: f64,
    /// Fault drills in force on its sidecars now (direct source), or that acted in the window.
    pub fault_drills: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Service {
    /// `name.namespace`.
    pub name: String,
    /// What the servers' sidecars answered.
    pub actual: Golden,
    /// What the callers got, after retries.
    pub effective: Golden,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Edge {
    /// `source->destination`.
    pub id: String,
    /// A workload id, or `unmeshed`.
    pub source: String,
    /// The workload id of the identity that answered, or the service when none proved one.
    pub destination: String,
    pub service: String,
    pub source_identity: String,
    pub destination_identity: String,
    /// Every request that reached an app went over mutual TLS with both identities proven.
    pub mtls: bool,
    /// What the caller got (the caller's sidecar's view; the server's for unmeshed callers).
    pub stats: Golden,
    /// The caller's endpoints of this service whose breaker is open or half-open.
    pub breakers_open: usize,
    pub fault_drills: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Route {
    pub service: String,
    pub route: String,
    /// What callers got (outbound).
    pub effective: Golden,
    /// What servers answered (inbound): each attempt counts.
    pub actual: Golden,
    pub retries: f64,
    pub retries_per_second: f64,
    pub budget_exhausted: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Endpoint {
    /// The workload whose sidecar balances over this endpoint.
    pub caller: String,
    pub service: String,
    pub address: String,
    pub identity: String,
    /// `closed`, `open`, `half-open` (direct source) or `ejected` (Prometheus: open or half-open).
    pub state: String,
    pub ewma_ms: Option<f64>,
    pub consecutive_failures: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Version {
    pub workload: String,
    /// `client` (the caller's half for `service`) or `server` (the service's own sidecars).
    pub kind: String,
    pub service: String,
    pub version: String,
}

/// `spiffe://td/ns/NS/sa/SA` → `NS/SA`; `unauthenticated` → [`UNMESHED`]; others unchanged.
pub fn workload_id(identity: &str) -> String {
    if identity == "unauthenticated" {
        return UNMESHED.to_owned();
    }
    let path = identity
        .strip_prefix("spiffe://")
        .and_then(|rest| rest.split_once('/'))
        .map(|(_, path)| path);
    match path.and_then(|p| p.strip_prefix("ns/")?.split_once("/sa/")) {
        Some((ns, sa)) => format!("{ns}/{sa}"),
        None => identity.to_owned(),
    }
}

impl MeshSnapshot {
    pub fn build(source: &str, window: &Window) -> Self {
        let endpoints = endpoints(window);
        let (versions, drills) = versions_and_drills(window);
        let services: BTreeSet<&str> = window
            .requests
            .iter()
            .map(|s| s.label("destination_service"))
            .filter(|s| !s.is_empty())
            .collect();
        let by_service = Signals::by(window, &["direction", "destination_service"]);
        let services = services
            .into_iter()
            .map(|name| Service {
                name: name.to_owned(),
                actual: by_service.of(&["inbound", name]),
                effective: by_service.of(&["outbound", name]),
            })
            .collect();
        MeshSnapshot {
            source: source.to_owned(),
            window_seconds: window.seconds,
            time: window.end_unix,
            workloads: workloads(window, &drills),
            services,
            edges: edges(window, &endpoints, &drills),
            routes: routes(window),
            endpoints,
            versions,
            errors: window.errors.clone(),
        }
    }
}

/// Every identity a sidecar proves or that answered requests inbound.
fn workloads(window: &Window, drills: &BTreeMap<(String, String), usize>) -> Vec<Workload> {
    let mut pods: BTreeMap<&str, usize> = BTreeMap::new();
    for sidecar in &window.sidecars {
        *pods.entry(sidecar.label("identity")).or_default() += 1;
    }
    for sample in &window.requests {
        if sample.label("direction") == "inbound" {
            pods.entry(sample.label("destination_identity"))
                .or_default();
        }
    }
    let served = Signals::by(window, &["direction", "destination_identity"]);
    let connections = Grouped::by(&window.tcp_open, &["direction", OWNER]);
    let faults = Grouped::by(&window.faults_injected, &[OWNER]);
    let mut drills_by_identity: BTreeMap<&str, usize> = BTreeMap::new();
    for ((identity, _), n) in drills {
        *drills_by_identity.entry(identity).or_default() += n;
    }
    pods.into_iter()
        .filter(|(identity, _)| !identity.is_empty())
        .map(|(identity, meshed_pods)| {
            let id = workload_id(identity);
            let (namespace, name) = id.split_once('/').unwrap_or(("", &id));
            let faults_acted = faults.sum(&[identity]) > 0.0;
            let in_force = drills_by_identity.get(identity).copied().unwrap_or(0);
            Workload {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                identity: identity.to_owned(),
                meshed_pods,
                inbound: served.of(&["inbound", identity]),
                tcp_connections: connections.sum(&["inbound", identity]),
                fault_drills: in_force.max(usize::from(faults_acted)),
                id,
            }
        })
        .collect()
}

/// What one edge's series say: requests by the identity that answered, and whether any request
/// reached an app without a proven identity.
#[derive(Default)]
struct EdgeSeries<'a> {
    by_identity: BTreeMap<&'a str, f64>,
    unproven_reached_app: bool,
}

/// Callers' edges from their sidecars' outbound series; unmeshed callers' from the servers'.
fn edges(
    window: &Window,
    endpoints: &[Endpoint],
    drills: &BTreeMap<(String, String), usize>,
) -> Vec<Edge> {
    let mut keys: BTreeMap<(&str, &str, &str), EdgeSeries> = BTreeMap::new();
    for s in &window.requests {
        let (direction, source) = (s.label("direction"), s.label("source_identity"));
        let outbound = direction == "outbound";
        let unmeshed_inbound = direction == "inbound" && source == "unauthenticated";
        let service = s.label("destination_service");
        if !(outbound || unmeshed_inbound) || service.is_empty() {
            continue;
        }
        let edge = keys.entry((direction, source, service)).or_default();
        let answered = s.label("destination_identity");
        *edge.by_identity.entry(answered).or_default() += s.value;
        edge.unproven_reached_app |=
            answered.is_empty() && s.label("answered_by") == "app" && s.value > 0.0;
    }
    let caller_sees = Signals::by(
        window,
        &["direction", "source_identity", "destination_service"],
    );
    let mut open: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for e in endpoints.iter().filter(|e| e.state != "closed") {
        *open
            .entry((e.caller.as_str(), e.service.as_str()))
            .or_default() += 1;
    }
    keys.into_iter()
        .map(|((direction, source_identity, service), series)| {
            let proven = series
                .by_identity
                .iter()
                .filter(|(id, _)| !id.is_empty())
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(id, _)| (*id).to_owned())
                .unwrap_or_default();
            let source = workload_id(source_identity);
            let destination = if proven.is_empty() {
                service.to_owned()
            } else {
                workload_id(&proven)
            };
            Edge {
                id: format!("{source}->{destination}"),
                mtls: source != UNMESHED && !proven.is_empty() && !series.unproven_reached_app,
                stats: caller_sees.of(&[direction, source_identity, service]),
                breakers_open: open.get(&(source.as_str(), service)).copied().unwrap_or(0),
                fault_drills: drills
                    .get(&(proven.clone(), service.to_owned()))
                    .copied()
                    .unwrap_or(0),
                source,
                destination,
                service: service.to_owned(),
                source_identity: source_identity.to_owned(),
                destination_identity: proven,
            }
        })
        .collect()
}

/// Per service and route: effective (outbound) beside actual (inbound), retries, budget.
fn routes(window: &Window) -> Vec<Route> {
    let mut keys: BTreeSet<(&str, &str)> = BTreeSet::new();
    for s in &window.requests {
        if !s.label("destination_service").is_empty() {
            keys.insert((s.label("destination_service"), s.label("route")));
        }
    }
    let by_route = Signals::by(window, &["direction", "destination_service", "route"]);
    let retries = Grouped::by(&window.retries, &["destination", "route"]);
    let budget = Grouped::by(&window.budget_exhausted, &["destination", "route"]);
    keys.into_iter()
        .map(|(service, route)| {
            let retried = retries.sum(&[service, route]);
            Route {
                service: service.to_owned(),
                route: route.to_owned(),
                effective: by_route.of(&["outbound", service, route]),
                actual: by_route.of(&["inbound", service, route]),
                retries: retried,
                retries_per_second: if window.seconds > 0.0 {
                    (retried / window.seconds * 1000.0).round() / 1000.0
                } else {
                    0.0
                },
                budget_exhausted: budget.sum(&[service, route]),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_are_named_by_namespace_and_service_account() {
        assert_eq!(
            workload_id("spiffe://cluster.local/ns/demo/sa/web"),
            "demo/web"
        );
        assert_eq!(workload_id("unauthenticated"), UNMESHED);
        assert_eq!(workload_id("spiffe://td/other"), "spiffe://td/other");
    }
}

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

use details::{endpoints, versions_and_drills};

use super::golden::Golden;
use super::window::{OWNER, Sample, Window};

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

fn has(sample: &Sample, pairs: &[(&str, &str)]) -> bool {
    pairs.iter().all(|(k, v)| sample.label(k) == *v)
}

fn golden(window: &Window, pairs: &[(&str, &str)]) -> Golden {
    Golden::of(
        window.requests.iter().filter(|s| has(s, pairs)),
        window.latency_buckets.iter().filter(|s| has(s, pairs)),
        window.seconds,
    )
}

/// The values of the series matching `pairs`, added up (`0.0`, not `-0.0`, when none match).
fn sum(samples: &[Sample], pairs: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| has(s, pairs))
        .fold(0.0, |total, s| total + s.value)
}

impl MeshSnapshot {
    pub fn build(source: &str, window: &Window) -> Self {
        let endpoints = endpoints(window);
        let (versions, drills) = versions_and_drills(window);
        let mut snapshot = MeshSnapshot {
            source: source.to_owned(),
            window_seconds: window.seconds,
            time: window.end_unix,
            workloads: workloads(window, &drills),
            services: Vec::new(),
            edges: Vec::new(),
            routes: routes(window),
            endpoints,
            versions,
            errors: window.errors.clone(),
        };
        let services: BTreeSet<&str> = window
            .requests
            .iter()
            .map(|s| s.label("destination_service"))
            .filter(|s| !s.is_empty())
            .collect();
        snapshot.services = services
            .into_iter()
            .map(|name| Service {
                name: name.to_owned(),
                actual: golden(
                    window,
                    &[("direction", "inbound"), ("destination_service", name)],
                ),
                effective: golden(
                    window,
                    &[("direction", "outbound"), ("destination_service", name)],
                ),
            })
            .collect();
        snapshot.edges = edges(window, &snapshot.endpoints, &drills);
        snapshot
    }
}

/// Every identity a sidecar proves or that answered requests inbound.
fn workloads(window: &Window, drills: &BTreeMap<(String, String), usize>) -> Vec<Workload> {
    let mut pods: BTreeMap<&str, usize> = BTreeMap::new();
    for sidecar in &window.sidecars {
        *pods.entry(sidecar.label("identity")).or_default() += 1;
    }
    for sample in window
        .requests
        .iter()
        .filter(|s| s.label("direction") == "inbound")
    {
        pods.entry(sample.label("destination_identity"))
            .or_default();
    }
    pods.into_iter()
        .filter(|(identity, _)| !identity.is_empty())
        .map(|(identity, meshed_pods)| {
            let id = workload_id(identity);
            let (namespace, name) = id.split_once('/').unwrap_or(("", &id));
            let inbound = [("direction", "inbound"), ("destination_identity", identity)];
            let faults_acted = sum(&window.faults_injected, &[(OWNER, identity)]) > 0.0;
            let fault_drills = drills
                .iter()
                .filter(|((owner, _), _)| owner == identity)
                .map(|(_, n)| *n)
                .sum::<usize>()
                .max(usize::from(faults_acted));
            Workload {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                identity: identity.to_owned(),
                meshed_pods,
                inbound: golden(window, &inbound),
                tcp_connections: sum(
                    &window.tcp_open,
                    &[("direction", "inbound"), (OWNER, identity)],
                ),
                fault_drills,
                id,
            }
        })
        .collect()
}

/// Callers' edges from their sidecars' outbound series; unmeshed callers' from the servers'.
fn edges(
    window: &Window,
    endpoints: &[Endpoint],
    drills: &BTreeMap<(String, String), usize>,
) -> Vec<Edge> {
    let mut keys: BTreeMap<(String, String, &str), BTreeMap<&str, f64>> = BTreeMap::new();
    for s in &window.requests {
        let (direction, source) = (s.label("direction"), s.label("source_identity"));
        let outbound = direction == "outbound";
        let unmeshed_inbound = direction == "inbound" && source == "unauthenticated";
        if !(outbound || unmeshed_inbound) || s.label("destination_service").is_empty() {
            continue;
        }
        let key = (
            direction.to_owned(),
            source.to_owned(),
            s.label("destination_service"),
        );
        *keys
            .entry(key)
            .or_default()
            .entry(s.label("destination_identity"))
            .or_default() += s.value;
    }
    keys.into_iter()
        .map(|((direction, source_identity, service), identities)| {
            let proven = identities
                .iter()
                .filter(|(id, _)| !id.is_empty())
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(id, _)| (*id).to_owned())
                .unwrap_or_default();
            let unproven_reached_app = window.requests.iter().any(|s| {
                has(
                    s,
                    &[
                        ("direction", &direction),
                        ("source_identity", &source_identity),
                    ],
                ) && s.label("destination_service") == service
                    && s.label("destination_identity").is_empty()
                    && s.label("answered_by") == "app"
                    && s.value > 0.0
            });
            let source = workload_id(&source_identity);
            let destination = if proven.is_empty() {
                service.to_owned()
            } else {
                workload_id(&proven)
            };
            let pairs = [
                ("direction", direction.as_str()),
                ("source_identity", source_identity.as_str()),
                ("destination_service", service),
            ];
            let breakers_open = endpoints
                .iter()
                .filter(|e| e.caller == source && e.service == service && e.state != "closed")
                .count();
            Edge {
                id: format!("{source}->{destination}"),
                mtls: source != UNMESHED && !proven.is_empty() && !unproven_reached_app,
                stats: golden(window, &pairs),
                breakers_open,
                fault_drills: drills
                    .get(&(proven.clone(), service.to_owned()))
                    .copied()
                    .unwrap_or(0),
                source,
                destination,
                service: service.to_owned(),
                source_identity,
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
    keys.into_iter()
        .map(|(service, route)| {
            let on = |direction| {
                golden(
                    window,
                    &[
                        ("direction", direction),
                        ("destination_service", service),
                        ("route", route),
                    ],
                )
            };
            let retries = sum(
                &window.retries,
                &[("destination", service), ("route", route)],
            );
            Route {
                service: service.to_owned(),
                route: route.to_owned(),
                effective: on("outbound"),
                actual: on("inbound"),
                retries,
                retries_per_second: if window.seconds > 0.0 {
                    (retries / window.seconds * 1000.0).round() / 1000.0
                } else {
                    0.0
                },
                budget_exhausted: sum(
                    &window.budget_exhausted,
                    &[("destination", service), ("route", route)],
                ),
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

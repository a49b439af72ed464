//! What only the sidecars' admin endpoints say, read into the snapshot: each caller's endpoints
//! with their breaker states and EWMA latencies (`/destinations`, or the ejection gauge when
//! Prometheus is the source), the policy versions in force and the fault drills active now
//! (`/inbound`).

use std::collections::{BTreeMap, BTreeSet};

use super::{Endpoint, Version, workload_id};
use crate::views::window::{OWNER, Window};

/// From the sidecars' `/destinations` when read directly, else from the ejection gauge.
pub fn endpoints(window: &Window) -> Vec<Endpoint> {
    if !window.details.is_empty() {
        let mut all = Vec::new();
        for sidecar in &window.details {
            let caller = workload_id(&sidecar.identity);
            for destination in sidecar.destinations.as_array().into_iter().flatten() {
                let service = destination["destination"].as_str().unwrap_or_default();
                for e in destination["endpoints"].as_array().into_iter().flatten() {
                    all.push(Endpoint {
                        caller: caller.clone(),
                        service: service.to_owned(),
                        address: e["address"].as_str().unwrap_or_default().to_owned(),
                        identity: e["identity"].as_str().unwrap_or_default().to_owned(),
                        state: e["state"].as_str().unwrap_or_default().to_owned(),
                        ewma_ms: e["ewma_ms"].as_f64(),
                        consecutive_failures: e["consecutive_failures"].as_u64(),
                    });
                }
            }
        }
        return all;
    }
    window
        .ejected
        .iter()
        .map(|s| Endpoint {
            caller: workload_id(s.label(OWNER)),
            service: s.label("destination").to_owned(),
            address: s.label("endpoint").to_owned(),
            identity: String::new(),
            state: if s.value > 0.0 { "ejected" } else { "closed" }.to_owned(),
            ewma_ms: None,
            consecutive_failures: None,
        })
        .collect()
}

/// The policy versions in force, and the fault drills active now by (identity, service).
pub fn versions_and_drills(window: &Window) -> (Vec<Version>, BTreeMap<(String, String), usize>) {
    let mut versions = BTreeSet::new();
    let mut drills = BTreeMap::new();
    for sidecar in &window.details {
        let workload = workload_id(&sidecar.identity);
        for d in sidecar.destinations.as_array().into_iter().flatten() {
            let (service, version) = (&d["destination"], &d["policy_version"]);
            if let (Some(service), Some(version)) = (service.as_str(), version.as_str()) {
                versions.insert((
                    workload.clone(),
                    "client",
                    service.to_owned(),
                    version.to_owned(),
                ));
            }
        }
        for port in sidecar.inbound["ports"].as_array().into_iter().flatten() {
            let service = port["service"].as_str().unwrap_or_default().to_owned();
            let policy = &port["server_policy"];
            if let Some(version) = policy["version"].as_str() {
                versions.insert((
                    workload.clone(),
                    "server",
                    service.clone(),
                    version.to_owned(),
                ));
            }
            let active = policy["faults"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|f| f["active"] == true)
                .count();
            let entry = drills
                .entry((sidecar.identity.clone(), service))
                .or_insert(0);
            *entry = (*entry).max(active);
        }
    }
    let versions = versions
        .into_iter()
        .map(|(workload, kind, service, version)| Version {
            workload,
            kind: kind.to_owned(),
            service,
            version,
        })
        .collect();
    (versions, drills)
}

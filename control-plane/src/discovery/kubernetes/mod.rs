//! Discovery from Kubernetes: Services, EndpointSlices, Pods and Namespaces, watched in every
//! namespace and translated into the same services the MeshService file gives.
//!
//! - [`watchers`]: one kube-runtime watcher per resource keeps a compact copy of what it lists
//!   ([`objects`]: only the fields discovery reads; Pods are not even parsed whole,
//!   [`slim_pod`]);
//! - [`translate`]: those copies become the index's services (ClusterIPs, ports, ready endpoints
//!   with their pods' identities and whether they are meshed);
//! - [`opaque_ports`]: the `weft.dev/opaque-ports` annotation and its precedence.
//!
//! Changes are coalesced for [`COALESCE`] and then the whole Kubernetes part of the index is
//! translated again and handed to the [`Store`], which publishes it only if it differs from the
//! version in force. Translation is linear in the objects held and runs once per coalesced
//! batch, which keeps one simple, obviously consistent path instead of incremental bookkeeping.
//!
//! Until every resource has been listed once, the store is not synced: `/ready` says so and new
//! discovery watches wait for it (up to a bound, see `watch_service`) instead of answering
//! "unknown" for services that merely have not been listed yet.

pub mod objects;
pub mod opaque_ports;
pub mod slim_pod;
pub mod translate;
pub mod watchers;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio_util::sync::CancellationToken;

use super::Store;
use crate::metrics::Metrics;
use slim_pod::SlimPod;
use watchers::{RESOURCES, Shared};

/// How long changes are gathered before one translation: a rollout's burst of slice and pod
/// events becomes one new index, well inside the second a change may take to reach proxies.
pub const COALESCE: Duration = Duration::from_millis(50);

/// Starts watching the cluster behind `client`; the store's Kubernetes services follow it until
/// `stop`.
pub fn start(
    client: kube::Client,
    store: Arc<Store>,
    trust_domain: &str,
    metrics: Arc<Metrics>,
    stop: &CancellationToken,
) {
    store.expect_kubernetes();
    metrics.kubernetes_unsynced.set(RESOURCES.len() as i64);
    let shared = Arc::new(Shared::default());
    tokio::spawn(watchers::run::<Service>(
        client.clone(),
        shared.clone(),
        metrics.clone(),
        stop.clone(),
    ));
    tokio::spawn(watchers::run::<EndpointSlice>(
        client.clone(),
        shared.clone(),
        metrics.clone(),
        stop.clone(),
    ));
    tokio::spawn(watchers::run::<SlimPod>(
        client.clone(),
        shared.clone(),
        metrics.clone(),
        stop.clone(),
    ));
    tokio::spawn(watchers::run::<Namespace>(
        client,
        shared.clone(),
        metrics,
        stop.clone(),
    ));
    tokio::spawn(keep_translating(
        shared,
        store,
        trust_domain.to_owned(),
        stop.clone(),
    ));
}

/// On each change (once every resource is listed), translates the objects and hands the
/// services to the store.
async fn keep_translating(
    shared: Arc<Shared>,
    store: Arc<Store>,
    trust_domain: String,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = shared.changed.notified() => {}
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(COALESCE) => {}
        }
        let services = {
            let state = shared.lock();
            if state.listed.len() < RESOURCES.len() {
                continue;
            }
            translate::services(&state.objects, &trust_domain)
        };
        store.set_kubernetes(services);
    }
}

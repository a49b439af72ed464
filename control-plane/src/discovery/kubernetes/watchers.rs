//! One kube-runtime [`watcher`] per resource, each keeping its part of [`Objects`] current.
//!
//! A watcher lists, then watches from the list's resourceVersion; when the API server drops the
//! watch it resumes from the last version seen, and when that version is too old (410 Gone) it
//! lists again. A relist arrives as `Init`, `InitApply`…, `InitDone`: the objects are collected
//! aside and swapped in whole at `InitDone`, so discovery never serves a half-listed cluster and
//! objects deleted while the watch was down disappear. A swap (or an event) that leaves the
//! objects as they were wakes nobody: a relist that changes nothing sends nothing to proxies.
//!
//! Errors (API server down, refused, 410) are logged and counted in
//! `weft_kubernetes_watch_errors_total{resource}`; the objects last known stay in force, and
//! the watcher is polled again after a backoff (none after a 410, which only asks for a relist).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::runtime::watcher::{self, Event, watcher};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::objects::{self, Key, NamespaceView, PodView, ServiceView, SliceView};
use super::slim_pod::SlimPod;
use super::translate::Objects;
use crate::metrics::Metrics;

/// The first wait after an error; doubled on each error in a row, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The objects, which resources have been listed once, and a bell rung on every change.
#[derive(Default)]
pub struct Shared {
    pub state: Mutex<State>,
    pub changed: Notify,
}

#[derive(Default)]
pub struct State {
    pub objects: Objects,
    /// Resources whose first list is complete.
    pub listed: Vec<&'static str>,
}

impl Shared {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; carry on with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A resource discovery watches: its label in metrics and logs, and how it is kept.
pub trait Watched:
    kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
    /// The resource's plural (`pods`), as in RBAC rules and `weft_kubernetes_*{resource}`.
    const RESOURCE: &'static str;
    type Key: Ord + Clone + Send;
    type View: PartialEq + Send;
    /// What discovery keeps of the object; `None`: nothing (and forget any older version).
    fn view(&self) -> (Self::Key, Option<Self::View>);
    fn map(objects: &mut Objects) -> &mut BTreeMap<Self::Key, Self::View>;
}

impl Watched for Service {
    const RESOURCE: &'static str = "services";
    type Key = Key;
    type View = ServiceView;
    fn view(&self) -> (Key, Option<ServiceView>) {
        let (key, view) = objects::service(self);
        (key, Some(view))
    }
    fn map(objects: &mut Objects) -> &mut BTreeMap<Key, ServiceView> {
        &mut objects.services
    }
}

impl Watched for EndpointSlice {
    const RESOURCE: &'static str = "endpointslices";
    type Key = Key;
    type View = SliceView;
    fn view(&self) -> (Key, Option<SliceView>) {
        objects::slice(self)
    }
    fn map(objects: &mut Objects) -> &mut BTreeMap<Key, SliceView> {
        &mut objects.slices
    }
}

impl Watched for SlimPod {
    const RESOURCE: &'static str = "pods";
    type Key = Key;
    type View = PodView;
    fn view(&self) -> (Key, Option<PodView>) {
        let (key, view) = objects::pod(self);
        (key, Some(view))
    }
    fn map(objects: &mut Objects) -> &mut BTreeMap<Key, PodView> {
        &mut objects.pods
    }
}

impl Watched for Namespace {
    const RESOURCE: &'static str = "namespaces";
    type Key = String;
    type View = NamespaceView;
    fn view(&self) -> (String, Option<NamespaceView>) {
        let (key, view) = objects::namespace(self);
        (key, Some(view))
    }
    fn map(objects: &mut Objects) -> &mut BTreeMap<String, NamespaceView> {
        &mut objects.namespaces
    }
}

/// The resources watched, for RBAC and for counting the first lists.
pub const RESOURCES: [&str; 4] = crate::metrics::KUBERNETES_RESOURCES;

/// Watches `K` in every namespace until `stop`.
pub async fn run<K: Watched>(
    client: kube::Client,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let resource = K::RESOURCE;
    let errors = metrics
        .kubernetes_watch_errors
        .with_label_values(&[resource]);
    let held = metrics.kubernetes_objects.with_label_values(&[resource]);
    let mut events = std::pin::pin!(watcher(Api::<K>::all(client), watcher::Config::default()));
    // A relist in progress: the objects listed so far.
    let mut relist: Option<BTreeMap<K::Key, K::View>> = None;
    let mut backoff = FIRST_BACKOFF;
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => return,
            event = events.next() => event,
        };
        let event = match event {
            // A watcher stream does not end; were it to, there is nothing left to watch.
            None => return,
            Some(Ok(event)) => {
                backoff = FIRST_BACKOFF;
                event
            }
            Some(Err(e)) => {
                errors.inc();
                let gone = matches!(&e, watcher::Error::WatchError(status) if status.code == 410);
                if gone {
                    tracing::info!(
                        resource,
                        "Kubernetes watch expired (410 Gone); listing again"
                    );
                    continue;
                }
                tracing::warn!(resource, retry_in = ?backoff, "Kubernetes watch failed, keeping the objects last known: {e}");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let changed = match event {
            Event::Init => {
                relist = Some(BTreeMap::new());
                false
            }
            Event::InitApply(object) => {
                if let (Some(listed), (key, Some(view))) = (relist.as_mut(), object.view()) {
                    listed.insert(key, view);
                }
                false
            }
            Event::InitDone => {
                let listed = relist.take().unwrap_or_default();
                let mut state = shared.lock();
                let first = !state.listed.contains(&resource);
                if first {
                    state.listed.push(resource);
                    metrics.kubernetes_unsynced.dec();
                    tracing::info!(resource, objects = listed.len(), "Kubernetes list complete");
                }
                let map = K::map(&mut state.objects);
                let changed = *map != listed;
                *map = listed;
                held.set(map.len() as i64);
                changed || first
            }
            Event::Apply(object) => {
                let (key, view) = object.view();
                let mut state = shared.lock();
                let map = K::map(&mut state.objects);
                let changed = match view {
                    Some(view) => {
                        let changed = map.get(&key) != Some(&view);
                        if changed {
                            map.insert(key, view);
                        }
                        changed
                    }
                    None => map.remove(&key).is_some(),
                };
                held.set(map.len() as i64);
                changed
            }
            Event::Delete(object) => {
                let (key, _) = object.view();
                let mut state = shared.lock();
                let map = K::map(&mut state.objects);
                let changed = map.remove(&key).is_some();
                held.set(map.len() as i64);
                changed
            }
        };
        if changed {
            shared.changed.notify_one();
        }
    }
}

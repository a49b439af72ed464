//! Discovery: which service and which endpoints (with the identities they must prove) stand
//! behind a destination address, kept current for every proxy that asks.
//!
//! Sources: a YAML file of `MeshService` documents ([`services`]), MeshService custom resources,
//! and, with `--kubernetes`, the cluster's Services, EndpointSlices, Pods and Namespaces
//! ([`kubernetes`]). Each version of any becomes one immutable [`Index`] over all, published on
//! a `tokio::sync::watch` channel: readers never lock against the sources, and every open watch
//! wakes on a new version, recomputes its own answer ([`resolve`]) and speaks only if that answer
//! changed ([`watch_service`]). A version equal to the one in force is not published at all.
//!
//! The Kubernetes services come first; the file's are added to them, then the custom resources'.
//! A file service or custom resource with the name of a Kubernetes service is left out (logged):
//! Kubernetes wins, since it is what the cluster actually runs. An address claimed by both goes
//! to the Kubernetes service (the index keeps an address's first claim).
//!
//! A broken edit is logged (`file:line: what`), counted in `weft_config_reloads_total` and
//! otherwise ignored: proxies keep the last good answers. At startup a broken file is an error,
//! since there is no good version to fall back on.

pub mod caller;
pub mod kubernetes;
pub mod resolve;
pub mod services;
pub mod stream_limit;
pub mod watch_service;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use resolve::{Index, Resolution};
pub use services::Service;
pub use watch_service::{INITIAL_SYNC_WAIT, WatchService};

use crate::metrics::Metrics;
use crate::reload;

/// The current index and the channel that announces new ones.
///
/// Besides the `--services` file, MeshService custom resources add services one at a time
/// ([`crate::policy::custom_resources`]); a service the file defines wins over a custom resource
/// of the same name, and a custom resource may not claim an address another service answers for.
pub struct Store {
    index: watch::Sender<Arc<Index>>,
    metrics: Arc<Metrics>,
    trust_domain: String,
    sources: Mutex<Sources>,
    /// Whether every source has delivered its first complete version (false from
    /// [`Store::expect_kubernetes`] until the first lists of every watched resource).
    synced: watch::Sender<bool>,
}

#[derive(Default)]
struct Sources {
    file: Vec<services::Service>,
    /// The last accepted version of each MeshService custom resource, by `<name>.<namespace>`.
    custom: BTreeMap<String, services::Service>,
    /// The services learnt from Kubernetes Services and EndpointSlices (a complete version).
    kubernetes: Vec<services::Service>,
}

impl Sources {
    fn services(&self) -> Vec<services::Service> {
        let in_kubernetes = |name: &str| self.kubernetes.iter().any(|k| k.name == name);
        let mut all = self.kubernetes.clone();
        for service in &self.file {
            if in_kubernetes(&service.name) {
                tracing::warn!(service = %service.name, "the services file defines a service Kubernetes also has; using Kubernetes' one");
                continue;
            }
            all.push(service.clone());
        }
        all.extend(
            self.custom
                .values()
                .filter(|s| !self.file.iter().any(|f| f.name == s.name) && !in_kubernetes(&s.name))
                .cloned(),
        );
        all
    }

    fn index(&self) -> Index {
        Index::new(self.services())
    }
}

impl Store {
    /// A store with `index` in it, and nothing that changes it.
    pub fn fixed(index: Index, metrics: Arc<Metrics>, trust_domain: &str) -> Arc<Self> {
        let store = Self {
            index: watch::Sender::new(Arc::new(Index::default())),
            metrics,
            trust_domain: trust_domain.to_owned(),
            sources: Mutex::new(Sources {
                file: index.all().to_vec(),
                ..Sources::default()
            }),
            synced: watch::Sender::new(true),
        };
        store.publish(index);
        Arc::new(store)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sources> {
        // Nothing panics while holding the lock; a poisoned one still holds a consistent set.
        self.sources.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// Whether the `--services` file defines `name` (`<name>.<namespace>`).
    pub fn in_file(&self, name: &str) -> bool {
        self.lock().file.iter().any(|s| s.name == name)
    }

    /// Puts the accepted version of a MeshService custom resource in force (`None`: deleted),
    /// unless it claims an `ip:port` that another service in force answers for: then the error
    /// says which, and nothing changes.
    pub fn set_custom(&self, name: &str, service: Option<services::Service>) -> Result<(), String> {
        let mut sources = self.lock();
        let previous = sources.custom.remove(name);
        if let Some(service) = service {
            let others = sources.index();
            if let Some(conflict) = resolve::first_conflict(&others, &service) {
                if let Some(previous) = previous {
                    sources.custom.insert(name.to_owned(), previous);
                }
                return Err(conflict);
            }
            sources.custom.insert(name.to_owned(), service);
        }
        self.publish(sources.index());
        Ok(())
    }

    /// The names of the MeshService custom resources in force.
    pub fn custom_names(&self) -> Vec<String> {
        self.lock().custom.keys().cloned().collect()
    }

    /// Loads `path` (or, without one, an empty index: every address unknown) and reloads it when
    /// it changes until `stop`.
    pub fn start(
        path: Option<&Path>,
        trust_domain: &str,
        metrics: Arc<Metrics>,
        stop: &CancellationToken,
    ) -> anyhow::Result<Arc<Self>> {
        let Some(path) = path else {
            tracing::info!("no --services given: every destination is unknown to discovery");
            return Ok(Self::fixed(Index::default(), metrics, trust_domain));
        };
        let initial =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let file = services::parse(&initial, path, trust_domain)?;
        let store = Self::fixed(Index::default(), metrics.clone(), trust_domain);
        let index = {
            let mut sources = store.lock();
            sources.file = file;
            sources.index()
        };
        tracing::info!(file = %path.display(), "loaded {}", summary(&index));
        store.publish(index);
        let reloading = store.clone();
        let watched = path.to_owned();
        reload::watch_file(
            path.to_owned(),
            &initial,
            metrics.reload_counters(reload::FileKind::Services),
            stop.clone(),
            move |text| reloading.reload(text, &watched),
        );
        Ok(store)
    }

    /// Replaces the index with the contents of a changed file, or keeps it if the file is broken.
    pub fn reload(&self, text: &[u8], path: &Path) -> anyhow::Result<String> {
        let file = services::parse(text, path, &self.trust_domain)?;
        let mut sources = self.lock();
        sources.file = file;
        let index = sources.index();
        let summary = summary(&index);
        self.publish(index);
        Ok(summary)
    }

    /// Marks the store as waiting for a Kubernetes source's first complete version: until
    /// [`Store::set_kubernetes`], [`Store::synced`] says no.
    pub fn expect_kubernetes(&self) {
        self.synced.send_replace(false);
    }

    /// Replaces the services learnt from Kubernetes (a complete version) and marks the store
    /// synced. Nothing is published when the index would be the same.
    pub fn set_kubernetes(&self, services: Vec<services::Service>) {
        let mut sources = self.lock();
        sources.kubernetes = services;
        let merged = sources.services();
        if !self.index.borrow().is_built_from(&merged) {
            self.publish(Index::new(merged));
        }
        drop(sources);
        self.synced.send_replace(true);
    }

    /// Whether every source has delivered its first version, and its changes.
    pub fn synced(&self) -> watch::Receiver<bool> {
        self.synced.subscribe()
    }

    /// The index now, and a receiver that is told about every new one.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Index>> {
        self.index.subscribe()
    }

    pub fn current(&self) -> Arc<Index> {
        self.index.borrow().clone()
    }

    fn publish(&self, index: Index) {
        self.metrics.discovery_services.set(index.services() as i64);
        self.metrics
            .discovery_endpoints
            .set(index.endpoints() as i64);
        self.index.send_replace(Arc::new(index));
    }
}

fn summary(index: &Index) -> String {
    format!(
        "{} services, {} endpoints",
        index.services(),
        index.endpoints()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_reload_keeps_the_last_good_index_and_the_gauges() {
        let metrics = Arc::new(Metrics::new());
        let path = Path::new("services.yaml");
        let store = Store::fixed(Index::default(), metrics.clone(), "cluster.local");
        let mut changes = store.subscribe();
        let good = "apiVersion: weft.dev/v1alpha1\nkind: MeshService\nmetadata: {name: a, namespace: b}\nspec:\n  addresses: [10.0.0.1]\n  ports: [{port: 80}]\n  endpoints: [{address: 10.1.0.1, meshed: false}]\n";
        assert_eq!(
            store.reload(good.as_bytes(), path).unwrap(),
            "1 services, 1 endpoints"
        );
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        assert_eq!(metrics.discovery_endpoints.get(), 1);

        let err = store
            .reload(good.replace("80}", "0}").as_bytes(), path)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "services.yaml:6: port 0 is out of range (1-65535)"
        );
        assert!(!changes.has_changed().unwrap());
        assert_eq!(store.current().services(), 1);
        assert_eq!(metrics.discovery_services.get(), 1);
    }

    fn service(name: &str, vip: &str) -> Service {
        Service {
            name: name.to_owned(),
            addresses: vec![vip.parse().unwrap()],
            ports: vec![services::Port {
                port: 80,
                target_port: 80,
                protocol: services::Protocol::Http,
            }],
            endpoints: vec![],
        }
    }

    #[test]
    fn kubernetes_services_win_over_the_file_s_and_the_rest_of_the_file_is_added() {
        let metrics = Arc::new(Metrics::new());
        let file = vec![service("a.b", "10.0.0.1"), service("c.d", "10.0.0.3")];
        let store = Store::fixed(Index::new(file), metrics.clone(), "cluster.local");
        store.set_kubernetes(vec![service("a.b", "10.0.0.2")]);
        let index = store.current();
        let addr = |a: &str| a.parse().unwrap();
        assert!(matches!(
            index.resolve(addr("10.0.0.2:80")),
            Resolution::Known { .. }
        ));
        assert_eq!(index.resolve(addr("10.0.0.1:80")), Resolution::Unknown);
        assert!(matches!(
            index.resolve(addr("10.0.0.3:80")),
            Resolution::Known { .. }
        ));
        assert_eq!(metrics.discovery_services.get(), 2);
    }

    #[test]
    fn an_unchanged_version_is_not_published_and_sync_is_announced() {
        let metrics = Arc::new(Metrics::new());
        let store = Store::fixed(Index::default(), metrics, "cluster.local");
        assert!(*store.synced().borrow());
        store.expect_kubernetes();
        let synced = store.synced();
        assert!(!*synced.borrow());
        let mut changes = store.subscribe();
        store.set_kubernetes(vec![service("a.b", "10.0.0.2")]);
        assert!(*synced.borrow());
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        store.set_kubernetes(vec![service("a.b", "10.0.0.2")]);
        assert!(
            !changes.has_changed().unwrap(),
            "the same services wake nobody"
        );
    }
}

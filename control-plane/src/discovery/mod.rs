//! Discovery: which service and which endpoints (with the identities they must prove) stand
//! behind a destination address, kept current for every proxy that asks.
//!
//! Two sources feed it: a YAML file of `MeshService` documents ([`services`]) and, with
//! `--kubernetes`, the cluster's Services, EndpointSlices, Pods and Namespaces ([`kubernetes`]).
//! Each version of either becomes one immutable [`Index`] over both, published on a
//! `tokio::sync::watch` channel: readers never lock against the sources, and every open watch
//! wakes on a new version, recomputes its own answer ([`resolve`]) and speaks only if that answer
//! changed ([`watch_service`]). A version equal to the one in force is not published at all.
//!
//! Both sources on: the Kubernetes services come first and the file's are added to them. A file
//! service with the name of a Kubernetes one is left out (logged): Kubernetes wins, since it is
//! what the cluster actually runs. An address claimed by both goes to the Kubernetes service
//! (the index keeps an address's first claim).
//!
//! A broken edit is logged (`file:line: what`), counted in `weft_config_reloads_total` and
//! otherwise ignored: proxies keep the last good answers. At startup a broken file is an error,
//! since there is no good version to fall back on.

pub mod kubernetes;
pub mod resolve;
pub mod services;
pub mod watch_service;

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
pub struct Store {
    index: watch::Sender<Arc<Index>>,
    metrics: Arc<Metrics>,
    trust_domain: String,
    sources: Mutex<Sources>,
    /// Whether every source has delivered its first complete version (false from
    /// [`Store::expect_kubernetes`] until the first lists of every watched resource).
    synced: watch::Sender<bool>,
}

/// The services of each source, as last delivered.
#[derive(Default)]
struct Sources {
    file: Vec<Service>,
    kubernetes: Vec<Service>,
}

impl Store {
    /// A store with `index` in it, and nothing that changes it.
    pub fn fixed(services: Vec<Service>, metrics: Arc<Metrics>, trust_domain: &str) -> Arc<Self> {
        let store = Self {
            index: watch::Sender::new(Arc::new(Index::default())),
            metrics,
            trust_domain: trust_domain.to_owned(),
            sources: Mutex::new(Sources::default()),
            synced: watch::Sender::new(true),
        };
        store.set_file(services);
        Arc::new(store)
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
            return Ok(Self::fixed(Vec::new(), metrics, trust_domain));
        };
        let initial =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let services = services::parse(&initial, path, trust_domain)?;
        tracing::info!(file = %path.display(), "loaded {}", summary(&services));
        let store = Self::fixed(services, metrics.clone(), trust_domain);
        let reloading = store.clone();
        let watched = path.to_owned();
        reload::watch_file(
            path.to_owned(),
            &initial,
            metrics.config_reloads.clone(),
            stop.clone(),
            move |text| reloading.reload(text, &watched),
        );
        Ok(store)
    }

    /// Replaces the index with the contents of a changed file, or keeps it if the file is broken.
    pub fn reload(&self, text: &[u8], path: &Path) -> anyhow::Result<String> {
        let services = services::parse(text, path, &self.trust_domain)?;
        let summary = summary(&services);
        self.set_file(services);
        Ok(summary)
    }

    fn set_file(&self, services: Vec<Service>) {
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        sources.file = services;
        self.publish(&sources);
    }

    /// Marks the store as waiting for a Kubernetes source's first complete version: until
    /// [`Store::set_kubernetes`], [`Store::synced`] says no.
    pub fn expect_kubernetes(&self) {
        self.synced.send_replace(false);
    }

    /// Replaces the services learnt from Kubernetes (a complete version) and marks the store
    /// synced.
    pub fn set_kubernetes(&self, services: Vec<Service>) {
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        sources.kubernetes = services;
        self.publish(&sources);
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

    /// Publishes the index over both sources, unless it equals the one in force. Called with
    /// the sources locked, so versions are published in the order they were made.
    fn publish(&self, sources: &Sources) {
        let mut merged = sources.kubernetes.clone();
        for service in &sources.file {
            if sources.kubernetes.iter().any(|k| k.name == service.name) {
                tracing::warn!(
                    service = %service.name,
                    "the services file defines a service Kubernetes also has; using Kubernetes' one"
                );
                continue;
            }
            merged.push(service.clone());
        }
        if self.index.borrow().is_built_from(&merged) {
            return;
        }
        let index = Index::new(merged);
        self.metrics.discovery_services.set(index.services() as i64);
        self.metrics
            .discovery_endpoints
            .set(index.endpoints() as i64);
        self.index.send_replace(Arc::new(index));
    }
}

fn summary(services: &[Service]) -> String {
    format!(
        "{} services, {} endpoints",
        services.len(),
        services.iter().map(|s| s.endpoints.len()).sum::<usize>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_reload_keeps_the_last_good_index_and_the_gauges() {
        let metrics = Arc::new(Metrics::new());
        let path = Path::new("services.yaml");
        let store = Store::fixed(Vec::new(), metrics.clone(), "cluster.local");
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
        let store = Store::fixed(file, metrics.clone(), "cluster.local");
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
        let store = Store::fixed(Vec::new(), metrics, "cluster.local");
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

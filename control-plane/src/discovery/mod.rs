//! Discovery: which service and which endpoints (with the identities they must prove) stand
//! behind a destination address, kept current for every proxy that asks.
//!
//! The source is a YAML file of `MeshService` documents ([`services`]); Kubernetes
//! EndpointSlices can feed the same [`Index`] later. Each version of the file becomes an
//! immutable [`Index`] published on a `tokio::sync::watch` channel: readers never lock against
//! the reloader, and every open watch wakes on a new version, recomputes its own answer
//! ([`resolve`]) and speaks only if that answer changed ([`watch_service`]).
//!
//! A broken edit is logged (`file:line: what`), counted in `weft_config_reloads_total` and
//! otherwise ignored: proxies keep the last good answers. At startup a broken file is an error,
//! since there is no good version to fall back on.

pub mod caller;
pub mod resolve;
pub mod services;
pub mod stream_limit;
pub mod watch_service;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use resolve::{Index, Resolution};
pub use watch_service::WatchService;

use crate::metrics::Metrics;
use crate::reload;

/// The current index and the channel that announces new ones.
pub struct Store {
    index: watch::Sender<Arc<Index>>,
    metrics: Arc<Metrics>,
    trust_domain: String,
}

impl Store {
    /// A store with `index` in it, and nothing that changes it.
    pub fn fixed(index: Index, metrics: Arc<Metrics>, trust_domain: &str) -> Arc<Self> {
        let store = Self {
            index: watch::Sender::new(Arc::new(Index::default())),
            metrics,
            trust_domain: trust_domain.to_owned(),
        };
        store.publish(index);
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
            return Ok(Self::fixed(Index::default(), metrics, trust_domain));
        };
        let initial =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let index = Index::new(services::parse(&initial, path, trust_domain)?);
        tracing::info!(file = %path.display(), "loaded {}", summary(&index));
        let store = Self::fixed(index, metrics.clone(), trust_domain);
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
        let index = Index::new(services::parse(text, path, &self.trust_domain)?);
        let summary = summary(&index);
        self.publish(index);
        Ok(summary)
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
}

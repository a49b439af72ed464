//! Policy: `kind: ServicePolicy` documents, one per service, and the effective client policy
//! each one becomes for the callers' sidecars.
//!
//! A document is read into a span-aware tree ([`node`]), walked by a checker that knows the
//! schema and reports every problem at once as `file:line:column: field.path: what`
//! ([`check`], [`walk`]), and merged over the built-in defaults ([`effective`]). The control
//! plane keeps the set in force in a [`Store`], published on a `tokio::sync::watch` channel like
//! discovery's index: discovery watches read it to attach `Resolution.policy`, and a broken edit
//! is logged, counted and otherwise ignored, so the last good set stays in force.

pub mod check;
mod check_client;
mod check_routes;
mod check_server;
mod conditions;
pub mod custom_resources;
pub mod documents;
pub mod effective;
pub mod explain;
pub mod gateway_rules;
pub mod known_services;
pub mod load;
pub mod model;
pub mod node;
mod server_policy;
pub mod walk;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use weft_api::policy::ClientPolicy;

pub use check_routes::is_dns_label;
pub use effective::client_policy;
pub use load::Loaded;
pub use model::ServicePolicy;
pub use server_policy::ServerHalf;

use crate::metrics::Metrics;
use crate::reload;

/// The policies in force, by `<name>.<namespace>`: each document's effective client half and
/// its server half.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Policies {
    by_service: HashMap<String, Arc<ClientPolicy>>,
    servers: HashMap<String, ServerHalf>,
}

impl Policies {
    pub fn new(loaded: &[Loaded]) -> Self {
        Self {
            by_service: loaded
                .iter()
                .map(|l| (l.policy.key(), Arc::new(client_policy(&l.policy))))
                .collect(),
            servers: loaded
                .iter()
                .filter_map(|l| Some((l.policy.key(), ServerHalf::of(&l.policy)?)))
                .collect(),
        }
    }

    /// What the sidecars of `service`'s endpoints enforce on `port`, if its document has a
    /// `server` section.
    pub fn server(&self, service: &str, port: u16) -> Option<weft_api::policy::ServerPolicy> {
        self.servers.get(service).map(|half| half.for_port(port))
    }

    /// The client policy of the service `<name>.<namespace>`, if it has a ServicePolicy.
    pub fn get(&self, service: &str) -> Option<&Arc<ClientPolicy>> {
        self.by_service.get(service)
    }

    pub fn len(&self) -> usize {
        self.by_service.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_service.is_empty()
    }
}

/// The policies in force and the channel that announces new ones.
///
/// Two sources feed it: the `--policies` files (all or nothing, as one set) and ServicePolicy
/// custom resources (one object at a time, [`custom_resources`]). When both define a service,
/// the file wins: the files are what the operator of the control plane deployed, and a namespace
/// that may write custom resources must not be able to loosen them.
pub struct Store {
    policies: watch::Sender<Arc<Policies>>,
    metrics: Arc<Metrics>,
    sources: Mutex<Sources>,
}

/// What each source holds now.
#[derive(Default)]
struct Sources {
    /// The files' set, and which file defines each service.
    files: Policies,
    file_names: HashMap<String, String>,
    /// The last accepted version of each custom resource, by `<name>.<namespace>`.
    custom: BTreeMap<String, Loaded>,
}

impl Sources {
    fn set_files(&mut self, loaded: &[Loaded]) {
        self.files = Policies::new(loaded);
        self.file_names = loaded
            .iter()
            .map(|l| (l.policy.key(), l.file.clone()))
            .collect();
    }

    /// The files' policies, and those of the custom resources for services no file defines.
    fn policies(&self) -> Policies {
        let mut all = self.files.clone();
        for (key, loaded) in &self.custom {
            if all.by_service.contains_key(key) {
                continue;
            }
            all.by_service
                .insert(key.clone(), Arc::new(client_policy(&loaded.policy)));
            if let Some(half) = ServerHalf::of(&loaded.policy) {
                all.servers.insert(key.clone(), half);
            }
        }
        all
    }
}

impl Store {
    /// A store with `policies` in it, and nothing that changes it.
    pub fn fixed(policies: Policies, metrics: Arc<Metrics>) -> Arc<Self> {
        let store = Self {
            policies: watch::Sender::new(Arc::new(Policies::default())),
            metrics,
            sources: Mutex::new(Sources {
                files: policies.clone(),
                ..Sources::default()
            }),
        };
        store.publish(policies);
        Arc::new(store)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sources> {
        // Nothing panics while holding the lock; a poisoned one still holds a consistent set.
        self.sources.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The file that defines the service `key`, if one does (it then wins over a custom
    /// resource of the same name).
    pub fn file_of(&self, key: &str) -> Option<String> {
        self.lock().file_names.get(key).cloned()
    }

    /// Puts the accepted version of a custom resource in force (`None`: it was deleted).
    pub fn set_custom(&self, key: &str, loaded: Option<Loaded>) {
        let mut sources = self.lock();
        match loaded {
            Some(loaded) => sources.custom.insert(key.to_owned(), loaded),
            None => sources.custom.remove(key),
        };
        self.publish(sources.policies());
    }

    /// The keys of the custom resources in force.
    pub fn custom_keys(&self) -> Vec<String> {
        self.lock().custom.keys().cloned().collect()
    }

    /// Loads `path` (a file or a directory; without one, no policies: every service gets the
    /// built-in defaults) and reloads it when it changes until `stop`.
    pub fn start(
        path: Option<&Path>,
        metrics: Arc<Metrics>,
        stop: &CancellationToken,
    ) -> anyhow::Result<Arc<Self>> {
        let Some(path) = path else {
            tracing::info!("no --policies given: every service gets the built-in client policy");
            return Ok(Self::fixed(Policies::default(), metrics));
        };
        let (files, examined) = load::load(path)?;
        let loaded = &examined.loaded;
        let found = summary(&Policies::new(loaded), files.len(), examined.skipped.len());
        tracing::info!(path = %path.display(), "loaded {found}");
        let store = Self::fixed(Policies::default(), metrics.clone());
        store.lock().set_files(loaded);
        store.publish(store.lock().policies());
        let reloading = store.clone();
        reload::watch_source(
            path.to_owned(),
            &load::fingerprint(&files),
            metrics.reload_counters(reload::FileKind::Policies),
            stop.clone(),
            |path| {
                let files = load::read(path)?;
                Ok((load::fingerprint(&files), files))
            },
            move |files| reloading.reload(&files),
        );
        Ok(store)
    }

    /// Replaces the policies with those of changed files, or keeps them if any file is broken
    /// (the error lists every problem, one per line) or empty ([`crate::empty_file`]).
    pub fn reload(&self, files: &[load::File]) -> anyhow::Result<String> {
        if let Some(empty) = load::first_empty(files) {
            return Err(empty.into());
        }
        let examined = load::examine(files);
        if !examined.problems.is_empty() {
            anyhow::bail!(examined.problems.join("\n"));
        }
        let loaded = examined.loaded;
        let summary = summary(&Policies::new(&loaded), files.len(), examined.skipped.len());
        let mut sources = self.lock();
        sources.set_files(&loaded);
        self.publish(sources.policies());
        Ok(summary)
    }

    /// The policies now, and a receiver that is told about every new set.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Policies>> {
        self.policies.subscribe()
    }

    pub fn current(&self) -> Arc<Policies> {
        self.policies.borrow().clone()
    }

    fn publish(&self, policies: Policies) {
        self.metrics.policies.set(policies.len() as i64);
        self.policies.send_replace(Arc::new(policies));
    }
}

/// `2 ServicePolicy documents in 2 files (hello.demo, web.demo)`, and how many other documents
/// (a GitOps folder's Deployments, Services, …) were skipped.
fn summary(policies: &Policies, files: usize, skipped: usize) -> String {
    let mut names: Vec<&str> = policies.by_service.keys().map(String::as_str).collect();
    names.sort_unstable();
    let others = match skipped {
        0 => String::new(),
        n => format!("; {n} other documents skipped (not ServicePolicies)"),
    };
    format!(
        "{} ServicePolicy documents in {files} files ({}){others}",
        policies.len(),
        names.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(name: &str, limit: &str) -> String {
        format!(
            "apiVersion: weft.dev/v1alpha1\nkind: ServicePolicy\nmetadata: {{name: {name}, namespace: demo}}\nspec:\n  client:\n    defaults:\n      retries: {{limit: {limit}}}\n"
        )
    }

    #[test]
    fn a_broken_reload_keeps_the_last_good_set_and_the_gauge() {
        let metrics = Arc::new(Metrics::new());
        let store = Store::fixed(Policies::default(), metrics.clone());
        let mut changes = store.subscribe();
        let good = vec![
            ("a.yaml".to_owned(), doc("hello", "2").into_bytes()),
            ("b.yaml".to_owned(), doc("web", "1").into_bytes()),
        ];
        assert_eq!(
            store.reload(&good).unwrap(),
            "2 ServicePolicy documents in 2 files (hello.demo, web.demo)"
        );
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        assert_eq!(metrics.policies.get(), 2);
        let limit = |p: &Policies| {
            p.get("hello.demo")
                .and_then(|p| p.default_rules.clone())
                .and_then(|r| r.retries)
                .map(|r| r.limit)
        };
        assert_eq!(limit(&store.current()), Some(2));

        let broken = vec![
            ("a.yaml".to_owned(), doc("hello", "9").into_bytes()),
            ("b.yaml".to_owned(), doc("hello", "1").into_bytes()),
        ];
        let err = store.reload(&broken).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a.yaml:7:24: spec.client.defaults.retries.limit: 9 is out of range (0-5)"
        );
        assert!(!changes.has_changed().unwrap());
        assert_eq!(limit(&store.current()), Some(2));
        assert_eq!(metrics.policies.get(), 2);
        assert!(store.current().get("nobody.demo").is_none());
    }

    #[test]
    fn an_empty_file_is_refused_and_an_empty_list_means_none() {
        let metrics = Arc::new(Metrics::new());
        let store = Store::fixed(Policies::default(), metrics.clone());
        let good = vec![
            ("a.yaml".to_owned(), doc("hello", "2").into_bytes()),
            ("b.yaml".to_owned(), doc("web", "1").into_bytes()),
        ];
        store.reload(&good).unwrap();
        // b.yaml caught between an editor's truncation and its write: nothing changes.
        let truncated = vec![good[0].clone(), ("b.yaml".to_owned(), b"# web\n".to_vec())];
        let err = store.reload(&truncated).unwrap_err();
        assert!(err.is::<crate::empty_file::EmptyFile>(), "{err:#}");
        assert!(
            err.to_string().starts_with("b.yaml: the file is empty"),
            "{err}"
        );
        assert_eq!(metrics.policies.get(), 2);
        // `[]`: none in b.yaml, on purpose.
        let emptied = vec![good[0].clone(), ("b.yaml".to_owned(), b"[]\n".to_vec())];
        assert_eq!(
            store.reload(&emptied).unwrap(),
            "1 ServicePolicy documents in 2 files (hello.demo)"
        );
        assert!(store.current().get("web.demo").is_none());
    }

    #[test]
    fn a_file_wins_over_a_custom_resource_of_the_same_service() {
        let metrics = Arc::new(Metrics::new());
        let store = Store::fixed(Policies::default(), metrics.clone());
        store
            .reload(&[("a.yaml".to_owned(), doc("hello", "2").into_bytes())])
            .unwrap();
        let object = |name: &str, limit: &str| {
            let files = vec![("object".to_owned(), doc(name, limit).into_bytes())];
            load::check(&files).unwrap().remove(0)
        };
        let limit = |service: &str| {
            store
                .current()
                .get(service)
                .and_then(|p| p.default_rules.clone())
                .and_then(|r| r.retries)
                .map(|r| r.limit)
        };
        store.set_custom("hello.demo", Some(object("hello", "1")));
        store.set_custom("web.demo", Some(object("web", "3")));
        assert_eq!(limit("hello.demo"), Some(2), "the file's");
        assert_eq!(limit("web.demo"), Some(3));
        assert_eq!(store.file_of("hello.demo").as_deref(), Some("a.yaml"));
        assert_eq!(metrics.policies.get(), 2);
        // The file goes: the object comes into force; a reload keeps the objects.
        store.reload(&[]).unwrap();
        assert_eq!(limit("hello.demo"), Some(1));
        store.set_custom("web.demo", None);
        assert_eq!(limit("web.demo"), None);
        assert_eq!(store.custom_keys(), ["hello.demo"]);
        assert_eq!(metrics.policies.get(), 1);
    }
}

//! Gateway API routes for the mesh (GAMMA): `HTTPRoute` and `GRPCRoute` documents whose
//! `parentRefs` name a Service change how every meshed caller reaches that Service: matches,
//! weighted backends, header modifiers, redirects, rewrites, timeouts and retries.
//!
//! The documents are read like ServicePolicies (the same span-aware tree and walker, so every
//! problem of every file is reported at once as `file:line:column: field.path: what`), from
//! `--routes FILE|DIR`, reloaded on change with the last good set kept, and with `--kubernetes`
//! from the cluster's objects ([`cluster`], which also writes their `status.parents[]`). Both
//! feed one [`Store`]; a file wins over an object of the same kind and name. `ReferenceGrant`s
//! from both decide which cross-namespace backends are allowed ([`grant`]). Discovery attaches
//! to each answer for a Service port the table its caller gets ([`compile`]), so routes,
//! endpoints and policy reach the proxy together and a weight edit is one new `Resolution`.

pub mod check;
mod check_grpc;
mod check_match;
mod check_mirror;
mod check_rule;
pub mod cluster;
pub mod compile;
pub mod explain;
pub mod grant;
pub mod model;
mod status;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use weft_api::policy::RouteTable;

use crate::metrics::Metrics;
use crate::policy::load::{self as files, File};
use crate::policy::node::Node;
use crate::reload;
pub use grant::Grant;
pub use model::HttpRoute;

/// The Gateway API's groups (standard and experimental channels).
const GATEWAY_GROUPS: [&str; 2] = ["gateway.networking.k8s.io", "gateway.networking.x-k8s.io"];

/// The routes in force.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Routes {
    routes: Vec<HttpRoute>,
}

impl Routes {
    /// `routes` without any ReferenceGrant: backends in another namespace are refused.
    pub fn new(routes: Vec<HttpRoute>) -> Self {
        Self::with_grants(routes, &[])
    }

    /// `routes` with the backends in another namespace that no grant allows refused.
    pub fn with_grants(routes: Vec<HttpRoute>, grants: &[Grant]) -> Self {
        Self {
            routes: grant::resolve(routes, grants),
        }
    }

    /// The table of `service`'s `port` (`<name>.<namespace>`) for a caller in
    /// `caller_namespace`; `None` when no route applies.
    pub fn table(&self, service: &str, port: u16, caller_namespace: &str) -> Option<RouteTable> {
        compile::table(&self.routes, service, port, caller_namespace)
    }

    pub fn all(&self) -> &[HttpRoute] {
        &self.routes
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// Whether `node` is an `HTTPRoute` or a `GRPCRoute` of the Gateway API.
pub fn is_route(node: &Node) -> bool {
    let text = |key: &str| node.get(key).and_then(Node::text).unwrap_or_default();
    let group = text("apiVersion").rsplit_once('/').map_or("", |(g, _)| g);
    GATEWAY_GROUPS.contains(&group) && check::KINDS.contains(&text("kind"))
}

/// The route and grant documents of a set of files (or of the cluster).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Checked {
    pub routes: Vec<HttpRoute>,
    pub grants: Vec<Grant>,
}

/// Every route of `files`, or every problem of every file (ReferenceGrants included), one per
/// line.
pub fn examine(files: &[File]) -> Result<Vec<HttpRoute>, Vec<String>> {
    examine_all(files).map(|checked| checked.routes)
}

/// Every route and grant of `files`, or every problem of every file, one per line. Documents
/// that are neither (ServicePolicies, Deployments, Gateways …) are skipped: a GitOps folder
/// holds them side by side.
pub fn examine_all(files: &[File]) -> Result<Checked, Vec<String>> {
    let mut problems = Vec::new();
    let mut checked = Checked::default();
    let mut defined: HashMap<String, String> = HashMap::new();
    for (file, bytes) in files {
        let Some(documents) = files::documents_of(file, bytes, &mut problems) else {
            continue;
        };
        for document in &documents {
            let (key, at) = if is_route(document) {
                match check::document(document, checked.routes.len()) {
                    Ok(route) => {
                        let found = (format!("{} {}", route.kind, route.key()), route.at);
                        checked.routes.push(route);
                        found
                    }
                    Err(found) => {
                        problems.extend(found.iter().map(|p| format!("{file}:{p}")));
                        continue;
                    }
                }
            } else if grant::is_grant(document) {
                match grant::document(document) {
                    Ok(grant) => {
                        let key = format!("{} {}/{}", grant::KIND, grant.namespace, grant.name);
                        checked.grants.push(grant);
                        (key, document.at)
                    }
                    Err(found) => {
                        problems.extend(found.iter().map(|p| format!("{file}:{p}")));
                        continue;
                    }
                }
            } else {
                continue;
            };
            match defined.get(&key) {
                Some(first) => problems.push(format!(
                    "{file}:{at}: metadata.name: {key} is already defined at {first}"
                )),
                None => {
                    defined.insert(key, format!("{file}:{at}"));
                }
            }
        }
    }
    match problems.is_empty() {
        true => Ok(checked),
        false => Err(problems),
    }
}

/// The routes in force and the channel that announces new ones.
pub struct Store {
    routes: watch::Sender<Arc<Routes>>,
    sources: Mutex<Sources>,
    /// False from [`Store::expect_cluster`] until the cluster's first lists are in.
    synced: watch::Sender<bool>,
}

/// What the files and the cluster hold; the routes in force are made from both.
#[derive(Default)]
struct Sources {
    files: Checked,
    cluster: Checked,
}

impl Sources {
    /// Every route (a file's wins over a cluster object of the same kind and name) and every
    /// grant.
    fn merged(&self) -> Routes {
        let in_files = |r: &HttpRoute| {
            let same = |f: &&HttpRoute| f.kind == r.kind && f.key() == r.key();
            self.files.routes.iter().any(|f| same(&f))
        };
        let mut routes = self.files.routes.clone();
        let first = routes.len();
        for (i, route) in self.cluster.routes.iter().enumerate() {
            if !in_files(route) {
                routes.push(HttpRoute {
                    order: first + i,
                    ..route.clone()
                });
            }
        }
        Routes::with_grants(routes, &self.grants())
    }

    /// Every grant, from the files and the cluster.
    fn grants(&self) -> Vec<Grant> {
        [self.files.grants.clone(), self.cluster.grants.clone()].concat()
    }
}

impl Store {
    /// A store with `routes` in it, and nothing that changes it.
    pub fn fixed(routes: Routes) -> Arc<Self> {
        Arc::new(Self {
            routes: watch::Sender::new(Arc::new(routes)),
            sources: Mutex::default(),
            synced: watch::Sender::new(true),
        })
    }

    /// Routes will also come from the cluster: [`Store::synced`] says no until
    /// [`Store::cluster_listed`].
    pub fn expect_cluster(&self) {
        self.synced.send_replace(false);
    }

    /// The cluster's first lists are in force (or its Gateway API CRDs are absent).
    pub fn cluster_listed(&self) {
        self.synced
            .send_if_modified(|synced| !std::mem::replace(synced, true));
    }

    /// Whether every source of routes has delivered its first version, and its changes: the
    /// first discovery answers wait for it, so a proxy never starts on a table without the
    /// cluster's routes.
    pub fn synced(&self) -> watch::Receiver<bool> {
        self.synced.subscribe()
    }

    /// Loads `path` (a file or a directory; without one, no routes) and reloads it when it
    /// changes until `stop`.
    pub fn start(
        path: Option<&Path>,
        metrics: Arc<Metrics>,
        stop: &CancellationToken,
    ) -> anyhow::Result<Arc<Self>> {
        let Some(path) = path else {
            return Ok(Self::fixed(Routes::default()));
        };
        let read = files::read(path)?;
        let checked =
            examine_all(&read).map_err(|problems| anyhow::anyhow!(problems.join("\n")))?;
        tracing::info!(path = %path.display(), "loaded {}", summary(&checked, read.len()));
        let store = Self::fixed(Routes::default());
        store.set_files(checked);
        let reloading = store.clone();
        reload::watch_source(
            path.to_owned(),
            &files::fingerprint(&read),
            metrics.reload_counters(reload::FileKind::Routes),
            stop.clone(),
            |path| {
                let read = files::read(path)?;
                Ok((files::fingerprint(&read), read))
            },
            move |read| reloading.reload(&read),
        );
        Ok(store)
    }

    /// Replaces the routes with those of changed files, or keeps them if any file is broken
    /// (the error lists every problem, one per line) or empty.
    pub fn reload(&self, read: &[File]) -> anyhow::Result<String> {
        if let Some(empty) = files::first_empty(read) {
            return Err(empty.into());
        }
        let checked = examine_all(read).map_err(|problems| anyhow::anyhow!(problems.join("\n")))?;
        let summary = summary(&checked, read.len());
        self.set_files(checked);
        Ok(summary)
    }

    fn set_files(&self, checked: Checked) {
        self.update(|sources| sources.files = checked);
    }

    /// Replaces what the cluster holds (the objects in force, see [`cluster`]).
    pub fn set_cluster(&self, checked: Checked) {
        self.update(|sources| sources.cluster = checked);
    }

    fn update(&self, change: impl FnOnce(&mut Sources)) {
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut sources);
        let routes = sources.merged();
        self.routes.send_if_modified(|now| {
            let changed = **now != routes;
            if changed {
                *now = Arc::new(routes);
            }
            changed
        });
    }

    /// Every ReferenceGrant in force (from the files and the cluster).
    pub fn grants(&self) -> Vec<Grant> {
        let sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        sources.grants()
    }

    /// Whether a `--routes` file defines the route `kind` `<namespace>/<name>`.
    pub fn in_files(&self, kind: &str, key: &str) -> bool {
        let sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        sources
            .files
            .routes
            .iter()
            .any(|r| r.kind == kind && r.key() == key)
    }

    /// The routes now, and a receiver that is told about every new set.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Routes>> {
        self.routes.subscribe()
    }

    pub fn current(&self) -> Arc<Routes> {
        self.routes.borrow().clone()
    }
}

/// `2 Gateway API route documents in 1 files (demo/hello-canary, demo/web), 1 ReferenceGrant`
fn summary(checked: &Checked, files: usize) -> String {
    let mut names: Vec<String> = checked.routes.iter().map(HttpRoute::key).collect();
    names.sort_unstable();
    let grants = match checked.grants.len() {
        0 => String::new(),
        n => format!(", {n} ReferenceGrant"),
    };
    format!(
        "{} Gateway API route documents in {files} files ({}){grants}",
        checked.routes.len(),
        names.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(v1: u32, v2: u32) -> Vec<u8> {
        format!("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: hello, namespace: demo}}\nspec:\n  parentRefs: [{{group: \"\", kind: Service, name: hello, port: 8080}}]\n  rules:\n    - backendRefs:\n        - {{name: hello-v1, port: 8080, weight: {v1}}}\n        - {{name: hello-v2, port: 8080, weight: {v2}}}\n").into_bytes()
    }

    #[test]
    fn a_broken_reload_keeps_the_last_good_routes() {
        let store = Store::fixed(Routes::default());
        let mut changes = store.subscribe();
        let good = vec![("routes.yaml".to_owned(), canary(90, 10))];
        assert_eq!(
            store.reload(&good).unwrap(),
            "1 Gateway API route documents in 1 files (demo/hello)"
        );
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        let weights = |store: &Store| {
            let table = store.current().table("hello.demo", 8080, "web").unwrap();
            table.rules[0]
                .backends
                .iter()
                .map(|b| b.weight)
                .collect::<Vec<_>>()
        };
        assert_eq!(weights(&store), [90, 10]);
        let broken =
            String::from_utf8(canary(50, 50))
                .unwrap()
                .replacen("weight: 50", "weight: -1", 1);
        let err = store
            .reload(&[("routes.yaml".to_owned(), broken.into_bytes())])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "routes.yaml:8:48: spec.rules[0].backendRefs[0].weight: -1 is out of range (0-1000000)"
        );
        assert!(!changes.has_changed().unwrap());
        assert_eq!(weights(&store), [90, 10]);
        store
            .reload(&[("routes.yaml".to_owned(), canary(0, 100))])
            .unwrap();
        assert_eq!(weights(&store), [0, 100]);
        assert!(store.current().table("hello.demo", 9090, "web").is_none());
    }

    #[test]
    fn a_grant_in_the_files_lets_a_route_send_to_another_namespace() {
        let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: hello, namespace: demo}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: hello}]\n  rules:\n    - backendRefs: [{name: v1, port: 80}, {name: v3, namespace: shop, port: 80}]\n";
        let grant = "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: demo, namespace: shop}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: demo}]\n  to: [{group: \"\", kind: Service}]\n";
        let store = Store::fixed(Routes::default());
        let backends = |store: &Store| {
            let table = store.current().table("hello.demo", 80, "demo").unwrap();
            let rule = &table.rules[0];
            rule.backends
                .iter()
                .map(|b| {
                    format!(
                        "{}{}",
                        b.service,
                        if b.ref_not_permitted { " refused" } else { "" }
                    )
                })
                .collect::<Vec<_>>()
        };
        store
            .reload(&[("r.yaml".to_owned(), route.into())])
            .unwrap();
        assert_eq!(backends(&store), ["v1.demo", "v3.shop refused"]);
        let explained = explain::explain(&store.current());
        assert!(explained.contains("    v3.shop:80 weight 1 (50.0 % of the requests; answered 500: in another namespace, and no ReferenceGrant there allows it)"), "{explained}");
        let both = format!("{route}---\n{grant}");
        let summary = store.reload(&[("r.yaml".to_owned(), both.into())]).unwrap();
        assert_eq!(
            summary,
            "1 Gateway API route documents in 1 files (demo/hello), 1 ReferenceGrant"
        );
        assert_eq!(backends(&store), ["v1.demo", "v3.shop"]);
    }
}

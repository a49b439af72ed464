//! Gateway API routes for the mesh (GAMMA): `HTTPRoute` and `GRPCRoute` documents whose
//! `parentRefs` name a Service change how every meshed caller reaches that Service: matches,
//! weighted backends, header modifiers, redirects, rewrites, timeouts and retries.
//!
//! The documents are read like ServicePolicies (the same span-aware tree and walker, so every
//! problem of every file is reported at once as `file:line:column: field.path: what`), from
//! `--routes FILE|DIR`, reloaded on change with the last good set kept. Discovery attaches to
//! each answer for a Service port the table its caller gets ([`compile`]), so routes, endpoints
//! and policy reach the proxy together and a weight edit is one new `Resolution`.

pub mod check;
mod check_grpc;
mod check_match;
mod check_mirror;
mod check_rule;
pub mod compile;
pub mod explain;
pub mod model;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use weft_api::policy::RouteTable;

use crate::metrics::Metrics;
use crate::policy::load::{self as files, File};
use crate::policy::node::Node;
use crate::reload;
pub use model::HttpRoute;

/// The Gateway API's groups (standard and experimental channels).
const GATEWAY_GROUPS: [&str; 2] = ["gateway.networking.k8s.io", "gateway.networking.x-k8s.io"];

/// The routes in force.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Routes {
    routes: Vec<HttpRoute>,
}

impl Routes {
    pub fn new(routes: Vec<HttpRoute>) -> Self {
        Self { routes }
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

/// Every route of `files`, or every problem of every file, one per line. Documents that are
/// not routes (ServicePolicies, Deployments, Gateways …) are skipped: a GitOps folder holds
/// them side by side.
pub fn examine(files: &[File]) -> Result<Vec<HttpRoute>, Vec<String>> {
    let mut problems = Vec::new();
    let mut routes: Vec<HttpRoute> = Vec::new();
    let mut defined: HashMap<String, String> = HashMap::new();
    for (file, bytes) in files {
        let Some(documents) = files::documents_of(file, bytes, &mut problems) else {
            continue;
        };
        for document in documents.iter().filter(|d| is_route(d)) {
            match check::document(document, routes.len()) {
                Ok(route) => {
                    let key = format!("{} {}", route.kind, route.key());
                    if let Some(first) = defined.get(&key) {
                        problems.push(format!(
                            "{file}:{}: metadata.name: {key} is already defined at {first}",
                            route.at
                        ));
                        continue;
                    }
                    defined.insert(key, format!("{file}:{}", route.at));
                    routes.push(route);
                }
                Err(found) => problems.extend(found.iter().map(|p| format!("{file}:{p}"))),
            }
        }
    }
    match problems.is_empty() {
        true => Ok(routes),
        false => Err(problems),
    }
}

/// The routes in force and the channel that announces new ones.
pub struct Store {
    routes: watch::Sender<Arc<Routes>>,
}

impl Store {
    /// A store with `routes` in it, and nothing that changes it.
    pub fn fixed(routes: Routes) -> Arc<Self> {
        Arc::new(Self {
            routes: watch::Sender::new(Arc::new(routes)),
        })
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
        let routes = examine(&read).map_err(|problems| anyhow::anyhow!(problems.join("\n")))?;
        tracing::info!(path = %path.display(), "loaded {}", summary(&routes, read.len()));
        let store = Self::fixed(Routes::new(routes));
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
        let routes = examine(read).map_err(|problems| anyhow::anyhow!(problems.join("\n")))?;
        let summary = summary(&routes, read.len());
        self.routes.send_replace(Arc::new(Routes::new(routes)));
        Ok(summary)
    }

    /// The routes now, and a receiver that is told about every new set.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Routes>> {
        self.routes.subscribe()
    }

    pub fn current(&self) -> Arc<Routes> {
        self.routes.borrow().clone()
    }
}

/// `2 Gateway API route documents in 1 files (demo/hello-canary, demo/web)`
fn summary(routes: &[HttpRoute], files: usize) -> String {
    let mut names: Vec<String> = routes.iter().map(HttpRoute::key).collect();
    names.sort_unstable();
    format!(
        "{} Gateway API route documents in {files} files ({})",
        routes.len(),
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
}

//! With `--kubernetes`: `HTTPRoute` and `GRPCRoute` (`gateway.networking.k8s.io/v1`) and
//! `ReferenceGrant` (`v1beta1`) objects of every namespace, watched as the ServicePolicy custom
//! resources are. Each object is checked by the checks of the files (its JSON becomes the tree
//! the file checker walks), and the routes and grants that pass join the route [`Store`]
//! beside those of `--routes`. An object that fails keeps the last good version of that object
//! in force (a route that never passed is not applied, not even in part).
//!
//! Each route's `status.parents[]` says what came of it ([`super::status`]); it depends on the
//! object, the grants in force and the Services discovery knows, so it is judged again when any
//! of them changes, and written (a merge patch of the status subresource, field manager `weft`)
//! only when it differs from the stored one.
//!
//! The Gateway API CRDs are the user's to install. While they are not (the list answers 404),
//! the control plane says so once, serves without cluster routes and keeps retrying with kube's
//! backoff: they may be installed later.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use futures_util::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use prometheus::{IntCounterVec, IntGaugeVec, Opts};
use serde_json::{Value as Json, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::grant::{self, Grant};
use super::status::{self, Checked as Outcome, World};
use super::{Checked, HttpRoute, Store, check};
use crate::discovery;
use crate::metrics::Metrics;
use crate::policy::custom_resources::check::line;
use crate::policy::custom_resources::json_tree;

/// The kinds watched, in the order of [`KINDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Kind {
    Http,
    Grpc,
    Grant,
}

const KINDS: [Kind; 3] = [Kind::Http, Kind::Grpc, Kind::Grant];

/// The reasons of a False condition, the values of `weft_gateway_routes_refused{reason}`.
const REASONS: [&str; 6] = [
    "UnsupportedValue",
    "NoMatchingParent",
    "Overridden",
    "InvalidKind",
    "RefNotPermitted",
    "BackendNotFound",
];

impl Kind {
    fn resource(self) -> ApiResource {
        let (version, kind, plural) = match self {
            Kind::Http => ("v1", "HTTPRoute", "httproutes"),
            Kind::Grpc => ("v1", "GRPCRoute", "grpcroutes"),
            Kind::Grant => ("v1beta1", grant::KIND, "referencegrants"),
        };
        ApiResource {
            group: grant::GATEWAY_GROUP.to_owned(),
            version: version.to_owned(),
            api_version: format!("{}/{version}", grant::GATEWAY_GROUP),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
        }
    }
}

/// One route object as last seen, and what its check found.
struct Object {
    json: Json,
    generation: Option<i64>,
    checked: Outcome,
}

struct Cluster {
    client: kube::Client,
    store: Arc<Store>,
    services: Arc<discovery::Store>,
    objects: BTreeMap<(Kind, String), Object>,
    /// The last version of each route object that passed.
    in_force: BTreeMap<(Kind, String), HttpRoute>,
    grants: BTreeMap<String, Grant>,
    /// The keys of each kind's current list, to drop the objects a relist no longer shows.
    listed: BTreeMap<Kind, HashSet<String>>,
    /// The kinds whose list answered 404 (said once for all, until they are listed).
    absent: HashSet<Kind>,
    /// The kinds listed at least once, or whose list answered 404: when all are, the store
    /// is synced.
    answered: HashSet<Kind>,
    refused: IntGaugeVec,
    errors: IntCounterVec,
}

/// Watches the three kinds until `stop`; what passes joins `store`.
pub fn start(
    client: kube::Client,
    store: Arc<Store>,
    services: Arc<discovery::Store>,
    metrics: &Metrics,
    stop: CancellationToken,
) -> anyhow::Result<JoinHandle<()>> {
    let refused = IntGaugeVec::new(
        Opts::new(
            "weft_gateway_routes_refused",
            "HTTPRoute and GRPCRoute objects with a status condition False, by reason: UnsupportedValue (not applied), NoMatchingParent, Overridden, InvalidKind, RefNotPermitted, BackendNotFound.",
        ),
        &["reason"],
    )?;
    let errors = IntCounterVec::new(
        Opts::new(
            "weft_gateway_api_errors_total",
            "Failed watches (the Gateway API CRDs missing included) and status writes of HTTPRoute, GRPCRoute and ReferenceGrant objects, by operation (watch, status).",
        ),
        &["operation"],
    )?;
    for reason in REASONS {
        refused.with_label_values(&[reason]);
    }
    for operation in ["watch", "status"] {
        errors.with_label_values(&[operation]);
    }
    metrics.registry.register(Box::new(refused.clone()))?;
    metrics.registry.register(Box::new(errors.clone()))?;
    let cluster = Cluster {
        client,
        store,
        services,
        objects: BTreeMap::new(),
        in_force: BTreeMap::new(),
        grants: BTreeMap::new(),
        listed: BTreeMap::new(),
        absent: HashSet::new(),
        answered: HashSet::new(),
        refused,
        errors,
    };
    cluster.store.expect_cluster();
    Ok(tokio::spawn(cluster.run(stop)))
}

impl Cluster {
    async fn run(mut self, stop: CancellationToken) {
        let streams = KINDS.map(|kind| {
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &kind.resource());
            watcher(api, watcher::Config::default())
                .default_backoff()
                .map(move |event| (kind, event))
                .boxed()
        });
        let mut events = futures_util::stream::select_all(streams);
        let mut index = self.services.subscribe();
        let mut synced = self.services.synced();
        let mut routes = self.store.subscribe();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                event = events.next() => match event {
                    Some((kind, event)) => self.event(kind, event),
                    None => return,
                },
                Ok(()) = index.changed() => {}
                Ok(()) = synced.changed() => {}
                Ok(()) = routes.changed() => {}
            }
            self.publish();
            if self.answered.len() == KINDS.len() {
                self.store.cluster_listed();
            }
            routes.mark_unchanged();
            if *synced.borrow() {
                self.write_statuses().await;
            }
        }
    }

    fn event(&mut self, kind: Kind, event: Result<watcher::Event<DynamicObject>, watcher::Error>) {
        match event {
            Ok(watcher::Event::Init) => {
                self.listed.insert(kind, HashSet::new());
            }
            Ok(watcher::Event::InitApply(object)) => {
                let key = key(&object);
                self.listed.entry(kind).or_default().insert(key);
                self.apply(kind, object);
            }
            Ok(watcher::Event::InitDone) => {
                self.answered.insert(kind);
                let listed = self.listed.remove(&kind).unwrap_or_default();
                let gone: Vec<String> = self
                    .keys(kind)
                    .into_iter()
                    .filter(|k| !listed.contains(k))
                    .collect();
                for key in gone {
                    self.remove(kind, &key);
                }
                let resource = kind.resource();
                if self.absent.remove(&kind) {
                    tracing::info!(kind = resource.kind, "the Gateway API CRD is installed now");
                }
                tracing::info!(kind = resource.kind, objects = listed.len(), "listed");
            }
            Ok(watcher::Event::Apply(object)) => self.apply(kind, object),
            Ok(watcher::Event::Delete(object)) => self.remove(kind, &key(&object)),
            Err(e) => {
                self.errors.with_label_values(&["watch"]).inc();
                let resource = kind.resource();
                let not_found = matches!(&e, watcher::Error::InitialListFailed(kube::Error::Api(s)) if s.is_not_found());
                let first_absent = self.absent.is_empty();
                if not_found {
                    self.answered.insert(kind);
                }
                if !not_found {
                    tracing::warn!(kind = resource.kind, error = %e, "watch failed; what is in force stays, retrying");
                } else if self.absent.insert(kind) && first_absent {
                    tracing::warn!(
                        kind = resource.kind,
                        "the Gateway API CRDs are not installed ({} answers 404): serving without routes from the cluster, retrying; install them with kubectl apply -f https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.6.1/standard-install.yaml",
                        resource.plural
                    );
                }
            }
        }
    }

    /// The keys of the objects of `kind` held.
    fn keys(&self, kind: Kind) -> Vec<String> {
        match kind {
            Kind::Grant => self.grants.keys().cloned().collect(),
            _ => self
                .objects
                .keys()
                .filter(|(k, _)| *k == kind)
                .map(|(_, key)| key.clone())
                .collect(),
        }
    }

    fn apply(&mut self, kind: Kind, object: DynamicObject) {
        let key = key(&object);
        let resource = kind.resource();
        let Ok(mut json) = serde_json::to_value(&object) else {
            return;
        };
        // List items may leave the type out; it is the one asked for.
        json["apiVersion"] = json!(resource.api_version);
        json["kind"] = json!(resource.kind);
        let source = format!("{} {key}", resource.kind);
        let tree = json_tree::tree(&document(&json));
        if kind == Kind::Grant {
            match grant::document(&tree) {
                Ok(grant) => {
                    tracing::info!(object = %source, "in force");
                    self.grants.insert(key, grant);
                }
                Err(problems) => tracing::warn!(
                    object = %source,
                    "invalid, the last good version stays in force: {}",
                    problems.iter().map(|p| line(&source, p)).collect::<Vec<_>>().join("; ")
                ),
            }
            return;
        }
        let generation = object.metadata.generation;
        let id = (kind, key);
        if let Some(seen) = self.objects.get_mut(&id)
            && generation.is_some()
            && seen.generation == generation
        {
            // A status write (ours or another controller's): nothing to check again.
            seen.json = json;
            return;
        }
        let checked = match check::document(&tree, 0) {
            Ok(route) => {
                tracing::info!(object = %source, generation = ?generation, "in force");
                self.in_force.insert(id.clone(), route);
                Outcome::InForce
            }
            Err(problems) => {
                let problems: Vec<String> = problems.iter().map(|p| line(&source, p)).collect();
                tracing::warn!(object = %source, generation = ?generation, "invalid, not applied (the last accepted version, if any, stays in force): {}", problems.join("; "));
                Outcome::Refused(problems)
            }
        };
        self.objects.insert(
            id,
            Object {
                json,
                generation,
                checked,
            },
        );
    }

    fn remove(&mut self, kind: Kind, key: &str) {
        let id = (kind, key.to_owned());
        tracing::info!(kind = kind.resource().kind, object = %key, "deleted: out of force");
        self.objects.remove(&id);
        self.in_force.remove(&id);
        if kind == Kind::Grant {
            self.grants.remove(key);
        }
    }

    /// Puts the routes and grants in force into the store (which tells the watches if that
    /// changes anything).
    fn publish(&self) {
        self.store.set_cluster(Checked {
            routes: self.in_force.values().cloned().collect(),
            grants: self.grants.values().cloned().collect(),
        });
    }

    /// Writes the status of every route object whose status is not what it should be.
    async fn write_statuses(&mut self) {
        for ((kind, key), parents) in self.statuses_to_write() {
            let (namespace, name) = key.split_once('/').unwrap_or_default();
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), namespace, &kind.resource());
            let patch = json!({"status": {"parents": parents}});
            let params = PatchParams {
                field_manager: Some("weft".to_owned()),
                ..PatchParams::default()
            };
            match api.patch_status(name, &params, &Patch::Merge(&patch)).await {
                Ok(_) => {
                    // Until the watch brings the object back, compare with what was written.
                    if let Some(object) = self.objects.get_mut(&(kind, key)) {
                        object.json["status"]["parents"] = json!(parents);
                    }
                }
                Err(e) => {
                    self.errors.with_label_values(&["status"]).inc();
                    tracing::warn!(kind = kind.resource().kind, object = %key, error = %e, "cannot write the status");
                }
            }
        }
    }

    /// The `status.parents` of each route object whose stored one differs; counts the objects
    /// refused, by reason.
    fn statuses_to_write(&self) -> Vec<((Kind, String), Vec<Json>)> {
        let index = self.services.current();
        let services: HashMap<String, Vec<u16>> = index
            .all()
            .iter()
            .map(|s| (s.name.clone(), s.ports.iter().map(|p| p.port).collect()))
            .collect();
        let grants = self.store.grants();
        let world = World {
            services: &services,
            grants: &grants,
        };
        let mut counts: BTreeMap<String, i64> =
            REASONS.iter().map(|r| ((*r).to_owned(), 0)).collect();
        let mut writes = Vec::new();
        for ((kind, key), object) in &self.objects {
            let resource = kind.resource();
            let outcome = match &object.checked {
                Outcome::InForce if self.store.in_files(&resource.kind, key) => Outcome::Overridden,
                checked => checked.clone(),
            };
            let parents = status::parents(&resource.kind, &object.json, &outcome, &world);
            let mut reasons = status::false_reasons(&parents);
            reasons.dedup();
            for reason in reasons {
                *counts.entry(reason).or_default() += 1;
            }
            let stored = object.json["status"]["parents"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if stored != parents {
                writes.push(((*kind, key.clone()), parents));
            }
        }
        for (reason, count) in counts {
            self.refused.with_label_values(&[&reason]).set(count);
        }
        writes
    }
}

/// `<namespace>/<name>`
fn key(object: &DynamicObject) -> String {
    format!(
        "{}/{}",
        object.metadata.namespace.as_deref().unwrap_or_default(),
        object.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The document the files would hold for `object`: the metadata Kubernetes adds is left out,
/// but for the creation time (a route's age decides ties between routes).
fn document(object: &Json) -> Json {
    let meta = &object["metadata"];
    let mut metadata = json!({"name": meta["name"], "namespace": meta["namespace"]});
    if meta["creationTimestamp"].is_string() && object["kind"] != grant::KIND {
        metadata["creationTimestamp"] = meta["creationTimestamp"].clone();
    }
    let mut document = json!({
        "apiVersion": object["apiVersion"],
        "kind": object["kind"],
        "metadata": metadata,
    });
    if let Some(spec) = object.get("spec") {
        document["spec"] = spec.clone();
    }
    document
}

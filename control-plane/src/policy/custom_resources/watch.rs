//! Watching one kind of custom resource: list, then follow changes (kube's watcher relists
//! after a 410 Gone or a broken connection, backing off while the API server is away), check
//! each object that changed, put it in force if it passes, and say so in its status.
//!
//! The loop keeps, per object, the generation it last checked and the verdict, so the MODIFIED
//! event that our own status write causes (the `resourceVersion` moves, the generation does
//! not) is answered without checking or writing again.

use std::collections::{HashMap, HashSet};

use futures_util::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use prometheus::IntCounterVec;
use serde_json::{Value as Json, json};
use tokio_util::sync::CancellationToken;

use super::status::{self, Status, Verdict};

/// What one kind does with its objects.
pub trait Handler: Send + 'static {
    /// `ServicePolicy` or `MeshService`.
    fn kind(&self) -> &'static str;
    /// Checks `object` and, when it passes, puts it in force under `key`.
    fn apply(&self, key: &str, object: &Json) -> Verdict;
    /// Takes the object `key` out of force.
    fn remove(&self, key: &str);
    /// The keys in force, to drop those a relist no longer shows.
    fn keys(&self) -> Vec<String>;
}

/// Counters shared by both kinds.
#[derive(Clone)]
pub struct Counters {
    /// `weft_custom_resources_checked_total{kind,result}`: accepted, invalid, overridden.
    pub checked: IntCounterVec,
    /// `weft_custom_resource_errors_total{kind,operation}`: failed watches and status writes.
    pub errors: IntCounterVec,
}

struct Seen {
    generation: Option<i64>,
    verdict: Verdict,
    accepted_generation: Option<i64>,
}

/// `<name>.<namespace>`, the key policies and services share.
fn key(object: &DynamicObject) -> String {
    format!(
        "{}.{}",
        object.metadata.name.as_deref().unwrap_or_default(),
        object.metadata.namespace.as_deref().unwrap_or_default()
    )
}

/// Runs until `stop`.
pub async fn run<H: Handler>(
    client: kube::Client,
    resource: ApiResource,
    handler: H,
    counters: Counters,
    stop: CancellationToken,
) {
    let kind = handler.kind();
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let mut listed: HashSet<String> = HashSet::new();
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return,
            event = events.next() => event,
        };
        let Some(event) = event else { return };
        match event {
            Ok(watcher::Event::Init) => listed.clear(),
            Ok(watcher::Event::InitApply(object)) => {
                listed.insert(key(&object));
                changed(&client, &resource, &handler, &counters, &mut seen, object).await;
            }
            Ok(watcher::Event::InitDone) => {
                for gone in handler.keys().into_iter().filter(|k| !listed.contains(k)) {
                    tracing::info!(kind, object = %gone, "no longer listed: out of force");
                    handler.remove(&gone);
                    seen.remove(&gone);
                }
                tracing::info!(kind, objects = listed.len(), "listed");
            }
            Ok(watcher::Event::Apply(object)) => {
                changed(&client, &resource, &handler, &counters, &mut seen, object).await;
            }
            Ok(watcher::Event::Delete(object)) => {
                let key = key(&object);
                tracing::info!(kind, object = %key, "deleted: out of force");
                handler.remove(&key);
                seen.remove(&key);
            }
            Err(e) => {
                counters.errors.with_label_values(&[kind, "watch"]).inc();
                tracing::warn!(kind, error = %e, "watch failed; the objects in force stay, retrying");
            }
        }
    }
}

async fn changed<H: Handler>(
    client: &kube::Client,
    resource: &ApiResource,
    handler: &H,
    counters: &Counters,
    seen: &mut HashMap<String, Seen>,
    object: DynamicObject,
) {
    let kind = handler.kind();
    let key = key(&object);
    let generation = object.metadata.generation;
    let (Some(name), Some(namespace)) = (
        object.metadata.name.clone(),
        object.metadata.namespace.clone(),
    ) else {
        return;
    };
    let mut json = match serde_json::to_value(&object) {
        Ok(json) => json,
        Err(e) => {
            tracing::warn!(kind, object = %key, error = %e, "cannot read the object");
            return;
        }
    };
    // List items may leave the type out; it is the one we asked for.
    json["apiVersion"] = json!(resource.api_version);
    json["kind"] = json!(resource.kind);
    let previous: Option<Status> = json
        .get("status")
        .and_then(|s| serde_json::from_value(s.clone()).ok());

    let unchanged_spec = seen
        .get(&key)
        .is_some_and(|s| generation.is_some() && s.generation == generation);
    if !unchanged_spec {
        let verdict = handler.apply(&key, &json);
        counters
            .checked
            .with_label_values(&[kind, verdict.label()])
            .inc();
        let accepted_generation = match verdict {
            Verdict::Accepted => generation,
            _ => seen.get(&key).and_then(|s| s.accepted_generation),
        };
        // `metadata.generation` is always set by the API server; "none" only for a test object.
        let shown = |g: Option<i64>| g.map_or_else(|| "none".to_owned(), |g| g.to_string());
        match &verdict {
            Verdict::Accepted => {
                tracing::info!(kind, object = %key, generation = %shown(generation), "accepted: in force")
            }
            Verdict::Invalid(problems) => tracing::warn!(
                kind, object = %key, generation = %shown(generation),
                accepted_generation = %shown(accepted_generation),
                "invalid, the last accepted version stays in force: {}", problems.join("; ")
            ),
            Verdict::Overridden(why) => tracing::warn!(kind, object = %key, "not in force: {why}"),
        }
        seen.insert(
            key.clone(),
            Seen {
                generation,
                verdict,
                accepted_generation,
            },
        );
    }
    let Some(now) = seen.get(&key) else { return };
    let desired = status::desired(
        generation,
        now.accepted_generation,
        &now.verdict,
        previous.as_ref(),
    );
    if status::unchanged(previous.as_ref(), &desired) {
        return;
    }
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, resource);
    let mut patch = json!({ "status": desired });
    // A merge patch keeps what it does not mention: say "nothing in force" explicitly.
    patch["status"]["acceptedGeneration"] = json!(now.accepted_generation);
    if let Err(e) = api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        counters.errors.with_label_values(&[kind, "status"]).inc();
        tracing::warn!(kind, object = %key, error = %e, "cannot write the status");
    }
}

//! The fake API server's objects: one revision counter, an event log, and open watches.
//!
//! It keeps the semantics kube's watcher depends on: every write gets the next
//! `resourceVersion`; a watch from revision N first receives every event after N (so nothing
//! between a list and its watch is lost), then live ones; a watch from before the compaction
//! point gets `410 Gone` and must relist.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Where objects of one kind live: `api/v1/pods`, `apis/discovery.k8s.io/v1/endpointslices`.
pub type Collection = String;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub collection: Collection,
    pub namespace: Option<String>,
    pub name: String,
}

/// What a watch asked for.
#[derive(Debug, Clone)]
pub struct Filter {
    pub collection: Collection,
    pub namespace: Option<String>,
    /// `labelSelector` equality terms.
    pub labels: Vec<(String, String)>,
    /// `fieldSelector` equality terms (`metadata.name=x`).
    pub fields: Vec<(String, String)>,
}

impl Filter {
    pub fn matches(&self, key: &Key, object: &Value) -> bool {
        key.collection == self.collection
            && (self.namespace.is_none() || self.namespace == key.namespace)
            && self
                .labels
                .iter()
                .all(|(k, v)| object["metadata"]["labels"][k.as_str()].as_str() == Some(v.as_str()))
            && self.fields.iter().all(|(path, v)| {
                let found = path.split('.').fold(object, |o, part| &o[part]);
                found.as_str() == Some(v.as_str())
            })
    }
}

struct Watch {
    filter: Filter,
    bookmarks: bool,
    events: mpsc::UnboundedSender<Value>,
}

struct Logged {
    revision: u64,
    key: Key,
    kind: &'static str,
    object: Value,
}

#[derive(Default)]
pub struct Store {
    revision: u64,
    /// Watches from before this revision are answered `410 Gone`.
    compacted: u64,
    objects: BTreeMap<Key, Value>,
    /// `apiVersion` and `kind` of each collection seen, for list and bookmark type metadata.
    kinds: BTreeMap<Collection, (String, String)>,
    log: Vec<Logged>,
    watches: Vec<Watch>,
}

/// `api/v1` or `apis/<group>/<version>` for an `apiVersion`.
pub fn prefix(api_version: &str) -> String {
    if api_version.contains('/') {
        format!("apis/{api_version}")
    } else {
        format!("api/{api_version}")
    }
}

/// The resource name Kubernetes uses for a kind: `EndpointSlice` → `endpointslices`,
/// `ServicePolicy` → `servicepolicies`.
pub fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    match lower.strip_suffix('y') {
        Some(stem) => format!("{stem}ies"),
        None if lower.ends_with('s') => format!("{lower}es"),
        None => format!("{lower}s"),
    }
}

pub fn key_of(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Key {
    Key {
        collection: format!("{}/{}", prefix(api_version), plural(kind)),
        namespace: namespace.map(str::to_owned),
        name: name.to_owned(),
    }
}

impl Store {
    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Creates or replaces `object`, stamping the metadata the API server owns (uid,
    /// creationTimestamp, resourceVersion, and generation, which moves when `spec` changes).
    pub fn put(&mut self, mut object: Value) -> Value {
        let api_version = object["apiVersion"]
            .as_str()
            .expect("apiVersion")
            .to_owned();
        let kind = object["kind"].as_str().expect("kind").to_owned();
        let name = object["metadata"]["name"].as_str().expect("metadata.name");
        let namespace = object["metadata"]["namespace"].as_str();
        let key = key_of(&api_version, &kind, namespace, name);
        self.kinds
            .insert(key.collection.clone(), (api_version, kind));
        self.revision += 1;
        let (uid, created, generation) = match self.objects.get(&key) {
            Some(old) => {
                let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
                let spec_changed = old.get("spec") != object.get("spec");
                (
                    old["metadata"]["uid"].clone(),
                    old["metadata"]["creationTimestamp"].clone(),
                    generation + i64::from(spec_changed),
                )
            }
            None => (
                json!(format!("00000000-0000-4000-8000-{:012x}", self.revision)),
                json!("2026-12-01T12:00:00Z"),
                1,
            ),
        };
        let event = if self.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        let metadata = &mut object["metadata"];
        metadata["uid"] = uid;
        metadata["creationTimestamp"] = created;
        metadata["resourceVersion"] = json!(self.revision.to_string());
        metadata["generation"] = json!(generation);
        self.objects.insert(key.clone(), object.clone());
        self.record(key, event, object.clone());
        object
    }

    /// Replaces only `status` (the status subresource: generation unchanged).
    pub fn put_status(&mut self, key: &Key, status: Value) -> Option<Value> {
        let mut object = self.objects.get(key)?.clone();
        self.revision += 1;
        object["status"] = status;
        object["metadata"]["resourceVersion"] = json!(self.revision.to_string());
        self.objects.insert(key.clone(), object.clone());
        self.record(key.clone(), "MODIFIED", object.clone());
        Some(object)
    }

    pub fn delete(&mut self, key: &Key) -> Option<Value> {
        let mut object = self.objects.remove(key)?;
        self.revision += 1;
        object["metadata"]["resourceVersion"] = json!(self.revision.to_string());
        self.record(key.clone(), "DELETED", object.clone());
        Some(object)
    }

    /// The list answer for `filter`.
    pub fn list(&self, filter: &Filter) -> Value {
        let items: Vec<&Value> = self
            .objects
            .iter()
            .filter(|(key, object)| filter.matches(key, object))
            .map(|(_, object)| object)
            .collect();
        let (api_version, kind) = self.kind_of(&filter.collection);
        json!({
            "kind": format!("{kind}List"),
            "apiVersion": api_version,
            "metadata": {"resourceVersion": self.revision.to_string()},
            "items": items,
        })
    }

    /// Opens a watch from `since`: the events after it now, later ones as they happen. `None`
    /// when `since` is older than the compaction point (the caller answers 410).
    pub fn watch(
        &mut self,
        filter: Filter,
        since: u64,
        bookmarks: bool,
        initial_events: bool,
    ) -> Option<mpsc::UnboundedReceiver<Value>> {
        let (tx, rx) = mpsc::unbounded_channel();
        if initial_events {
            for (key, object) in &self.objects {
                if filter.matches(key, object) {
                    let _ = tx.send(json!({"type": "ADDED", "object": object}));
                }
            }
            let mut bookmark = self.bookmark(&filter.collection);
            bookmark["object"]["metadata"]["annotations"] =
                json!({"k8s.io/initial-events-end": "true"});
            let _ = tx.send(bookmark);
        } else {
            if since != 0 && since < self.compacted {
                return None;
            }
            for logged in self.log.iter().filter(|l| l.revision > since) {
                if filter.matches(&logged.key, &logged.object) {
                    let _ = tx.send(json!({"type": logged.kind, "object": logged.object}));
                }
            }
        }
        self.watches.push(Watch {
            filter,
            bookmarks,
            events: tx,
        });
        Some(rx)
    }

    /// Ends every watch with `410 Gone` and makes older revisions unwatchable.
    pub fn expire_watches(&mut self) {
        self.compacted = self.revision;
        for watch in self.watches.drain(..) {
            let _ = watch.events.send(gone(self.revision));
        }
    }

    /// Ends every watch without a word (a dropped connection).
    pub fn drop_watches(&mut self) {
        self.watches.clear();
    }

    pub fn send_bookmarks(&mut self) {
        let bookmarks: Vec<(usize, Value)> = self
            .watches
            .iter()
            .enumerate()
            .filter(|(_, w)| w.bookmarks)
            .map(|(i, w)| (i, self.bookmark(&w.filter.collection)))
            .collect();
        for (i, bookmark) in bookmarks {
            let _ = self.watches[i].events.send(bookmark);
        }
    }

    fn bookmark(&self, collection: &str) -> Value {
        let (api_version, kind) = self.kind_of(collection);
        json!({"type": "BOOKMARK", "object": {
            "kind": kind, "apiVersion": api_version,
            "metadata": {"resourceVersion": self.revision.to_string()},
        }})
    }

    fn record(&mut self, key: Key, kind: &'static str, object: Value) {
        self.watches.retain(|watch| {
            !watch.filter.matches(&key, &object)
                || watch
                    .events
                    .send(json!({"type": kind, "object": object}))
                    .is_ok()
        });
        self.log.push(Logged {
            revision: self.revision,
            key,
            kind,
            object,
        });
    }

    fn kind_of(&self, collection: &str) -> (String, String) {
        self.kinds.get(collection).cloned().unwrap_or_else(|| {
            // Nothing of this kind was ever stored: guess from the path, as clients only read
            // `items` and `metadata` of an empty list.
            let (prefix, plural) = collection.rsplit_once('/').unwrap_or(("", collection));
            let api_version = prefix
                .trim_start_matches("apis/")
                .trim_start_matches("api/")
                .to_owned();
            (api_version, plural.to_owned())
        })
    }
}

/// The event a real API server sends when a watch starts from a compacted revision.
pub fn gone(current: u64) -> Value {
    json!({"type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure",
        "message": format!("too old resource version: the watch must relist (current {current})"),
        "reason": "Expired", "code": 410,
    }})
}

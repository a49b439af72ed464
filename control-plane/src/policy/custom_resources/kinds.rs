//! What each kind's objects do once checked: a ServicePolicy joins the policy store, a
//! MeshService the discovery index. In both, a file of the same service wins (the object is
//! then `Overridden`), and an invalid object changes nothing. An overridden ServicePolicy is
//! still kept (the store prefers the file), so it is in force as soon as the file drops it.

use std::sync::Arc;

use serde_json::Value as Json;

use super::check;
use super::status::Verdict;
use super::watch::Handler;
use crate::discovery;
use crate::policy::{self, Loaded};

pub struct ServicePolicies(pub Arc<policy::Store>);

impl Handler for ServicePolicies {
    fn kind(&self) -> &'static str {
        policy::check::KIND
    }

    fn apply(&self, key: &str, object: &Json) -> Verdict {
        let policy = match check::service_policy(object) {
            Ok(policy) => policy,
            Err(problems) => return Verdict::Invalid(problems),
        };
        let source = check::source(self.kind(), object);
        // Kept even when a file wins now, so that it comes into force if the file goes.
        self.0.set_custom(
            key,
            Some(Loaded {
                file: source.clone(),
                policy,
            }),
        );
        match self.0.file_of(key) {
            Some(file) => Verdict::Overridden(format!(
                "{source}: {file} (--policies) also defines ServicePolicy {key}; the file is in force"
            )),
            None => Verdict::Accepted,
        }
    }

    fn remove(&self, key: &str) {
        self.0.set_custom(key, None);
    }

    fn keys(&self) -> Vec<String> {
        self.0.custom_keys()
    }
}

pub struct MeshServices(pub Arc<discovery::Store>);

impl Handler for MeshServices {
    fn kind(&self) -> &'static str {
        discovery::services::KIND
    }

    fn apply(&self, key: &str, object: &Json) -> Verdict {
        let service = match check::mesh_service(object, self.0.trust_domain()) {
            Ok(service) => service,
            Err(problems) => return Verdict::Invalid(problems),
        };
        let source = check::source(self.kind(), object);
        if self.0.in_file(key) {
            // Not kept: its addresses could not be checked against the file's service it would
            // replace.
            return Verdict::Overridden(format!(
                "{source}: the --services file also defines service {key}; the file is in force"
            ));
        }
        match self.0.set_custom(key, Some(service)) {
            Ok(()) => Verdict::Accepted,
            Err(conflict) => Verdict::Invalid(vec![format!("{source}: {conflict}")]),
        }
    }

    fn remove(&self, key: &str) {
        // Removing never conflicts.
        let _ = self.0.set_custom(key, None);
    }

    fn keys(&self) -> Vec<String> {
        self.0.custom_names()
    }
}

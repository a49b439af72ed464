//! `weft policy check --services PATH`: the services a policy may govern, so that a policy
//! naming none of them (a typo in `metadata.name`, the wrong namespace) is pointed out before the
//! control plane silently gives it to nobody.
//!
//! The services are the `MeshService` documents (what `--services` of the control plane reads)
//! and the Kubernetes `Service` documents (what it learns with `--kubernetes`) of a file or a
//! directory, read like `--policies`: a GitOps folder can be given as both. A `Service` without
//! `metadata.namespace` (kustomize fills it in later) stands for that name in every namespace.

use super::load::File;
use super::model::ServicePolicy;
use super::node::{self, Node};
use super::walk::did_you_mean;

/// A service's name and, when written, its namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownService {
    pub name: String,
    pub namespace: Option<String>,
}

/// The services in `files`, or the files' syntax problems (`file:line:column: what`).
pub fn read(files: &[File]) -> Result<Vec<KnownService>, Vec<String>> {
    let mut services = Vec::new();
    let mut problems = Vec::new();
    for (file, bytes) in files {
        let Ok(text) = std::str::from_utf8(bytes) else {
            problems.push(format!("{file}: not UTF-8 text"));
            continue;
        };
        match node::parse(text) {
            Ok(nodes) => services.extend(nodes.iter().filter_map(service)),
            Err(e) => problems.push(format!("{file}:{}: {}", e.at, e.message)),
        }
    }
    if problems.is_empty() {
        Ok(services)
    } else {
        Err(problems)
    }
}

fn service(doc: &Node) -> Option<KnownService> {
    let text = |key: &str| doc.get(key).and_then(Node::text);
    let is_service = match (text("apiVersion")?, text("kind")?) {
        (api, "MeshService") => api.starts_with("weft.dev/"),
        ("v1", "Service") => true,
        _ => false,
    };
    if !is_service {
        return None;
    }
    let meta = doc.get("metadata")?;
    Some(KnownService {
        name: meta.get("name")?.text()?.to_owned(),
        namespace: meta
            .get("namespace")
            .and_then(Node::text)
            .map(str::to_owned),
    })
}

/// The warning for a policy that governs none of `services`, if it does not.
pub fn unknown(policy: &ServicePolicy, services: &[KnownService]) -> Option<String> {
    let governs = |s: &KnownService| {
        s.name == policy.name
            && s.namespace
                .as_deref()
                .is_none_or(|ns| ns == policy.namespace)
    };
    if services.iter().any(governs) {
        return None;
    }
    // A Service without a namespace could be in the policy's.
    let keys: Vec<String> = services
        .iter()
        .map(|s| {
            let namespace = s.namespace.as_deref().unwrap_or(&policy.namespace);
            format!("{}.{namespace}", s.name)
        })
        .collect();
    let key = policy.key();
    let hint = match did_you_mean(&key, &keys.iter().map(String::as_str).collect::<Vec<_>>()) {
        Some(close) => format!("; did you mean {close}?"),
        None if keys.is_empty() => " (it has none)".to_owned(),
        None => String::new(),
    };
    Some(format!(
        "{}: metadata.name: warning: this policy governs nothing: --services has no Service or MeshService {key}{hint}",
        policy.at
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, namespace: &str) -> ServicePolicy {
        let text = format!(
            "apiVersion: weft.dev/v1alpha1\nkind: ServicePolicy\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec: {{}}\n"
        );
        let files = vec![("p.yaml".to_owned(), text.into_bytes())];
        let mut loaded = crate::policy::load::check(&files).unwrap();
        loaded.remove(0).policy
    }

    #[test]
    fn services_and_mesh_services_are_known() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n---\napiVersion: weft.dev/v1alpha1\nkind: MeshService\nmetadata: {name: payments, namespace: prod}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: other, namespace: prod}\n";
        let known = read(&[("s.yaml".to_owned(), text.as_bytes().to_vec())]).unwrap();
        assert_eq!(known.len(), 2);
        assert_eq!(unknown(&policy("payments", "prod"), &known), None);
        assert_eq!(unknown(&policy("web", "anywhere"), &known), None);
        assert_eq!(
            unknown(&policy("payment", "prod"), &known).unwrap(),
            "3:18: metadata.name: warning: this policy governs nothing: --services has no Service or MeshService payment.prod; did you mean payments.prod?"
        );
        assert_eq!(
            unknown(&policy("other", "prod"), &known).unwrap(),
            "3:18: metadata.name: warning: this policy governs nothing: --services has no Service or MeshService other.prod"
        );
    }
}

//! Reading a set of policy files: one file, or every `*.yaml` / `*.yml` in a directory (not
//! recursive, sorted by name), each holding one or more documents separated by `---`. Documents
//! that are not ServicePolicies (a GitOps folder's Deployments, Services, kustomization.yaml,
//! Gateway API routes, MeshServices) are skipped by the rule of [`super::documents`], the same
//! for `--policies` and `weft policy check`.
//!
//! The result is all the ServicePolicy documents, or every problem of every file as
//! `file:line:column: field.path: what` lines. A `ServicePolicy` defined twice (the same
//! `name.namespace`, in one file or across files) is a problem naming both places: there is
//! one document per service, never a merge.
//!
//! A file with no documents at all (empty, or only comments) is a problem too: that is what a
//! file looks like while an editor rewrites it, and applying it would drop its policies. A file
//! meant to hold none says so with `[]` ([`crate::empty_file`]).

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;

use super::check;
use super::documents::{self, Skipped};
use super::model::ServicePolicy;
use super::node;
use crate::empty_file::{self, Contents, EmptyFile};

/// One file's name (as shown in messages) and contents.
pub type File = (String, Vec<u8>);

/// A checked document and the file it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub file: String,
    pub policy: ServicePolicy,
}

/// The files `path` names: itself, or the YAML files in it.
pub fn read(path: &Path) -> anyhow::Result<Vec<File>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_dir() {
        let text =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        return Ok(vec![(path.display().to_string(), text)]);
    }
    let mut names = Vec::new();
    for entry in
        std::fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))?
    {
        let entry = entry.with_context(|| format!("cannot list {}", path.display()))?;
        let file = entry.path();
        let yaml = matches!(
            file.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        if yaml && file.is_file() {
            names.push(file);
        }
    }
    names.sort();
    names
        .into_iter()
        .map(|file| {
            let text =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            Ok((file.display().to_string(), text))
        })
        .collect()
}

/// The entries of directory `path` that [`read`] does not read, each with the reason: files
/// that are not `*.yaml` / `*.yml`, and subdirectories. Empty for a file.
pub fn not_read(path: &Path) -> Vec<(String, &'static str)> {
    let Ok(entries) = std::fs::read_dir(path) else {
        return Vec::new();
    };
    let mut out: Vec<(String, &'static str)> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter_map(|file| {
            let yaml = matches!(
                file.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            );
            let why = if file.is_dir() {
                "a directory: only the files of the directory itself are read, not its subdirectories"
            } else if !yaml {
                "not a .yaml or .yml file"
            } else {
                return None;
            };
            Some((file.display().to_string(), why))
        })
        .collect();
    out.sort();
    out
}

/// Bytes that change whenever a file is added, removed, renamed or edited.
pub fn fingerprint(files: &[File]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, text) in files {
        out.extend_from_slice(&(name.len() as u64).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(text.len() as u64).to_be_bytes());
        out.extend_from_slice(text);
    }
    out
}

/// Everything found in a set of files.
#[derive(Debug, Default)]
pub struct Examined {
    pub loaded: Vec<Loaded>,
    /// The documents that are not ServicePolicies, by file.
    pub skipped: Vec<(String, Skipped)>,
    /// `file:line:column: field.path: what`
    pub problems: Vec<String>,
}

/// Checks every ServicePolicy document of every file.
pub fn check(files: &[File]) -> Result<Vec<Loaded>, Vec<String>> {
    let examined = examine(files);
    if examined.problems.is_empty() {
        Ok(examined.loaded)
    } else {
        Err(examined.problems)
    }
}

/// The YAML documents of `file`, read into span-aware trees; `None`, with the problem noted,
/// when it has none to read (a file meant to hold none, `[]`, is no problem), is not UTF-8 or
/// does not parse. ServicePolicies and Gateway API routes are read from the same folders this
/// way.
pub fn documents_of(
    file: &str,
    bytes: &[u8],
    problems: &mut Vec<String>,
) -> Option<Vec<node::Node>> {
    match empty_file::contents(bytes) {
        Contents::Documents => {}
        Contents::NoneOnPurpose => return None,
        Contents::Nothing => {
            problems.push(
                EmptyFile {
                    file: file.to_owned(),
                }
                .to_string(),
            );
            return None;
        }
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        problems.push(format!("{file}: not UTF-8 text"));
        return None;
    };
    match node::parse(text) {
        Ok(documents) => Some(documents),
        Err(e) => {
            problems.push(format!("{file}:{}: {}", e.at, e.message));
            None
        }
    }
}

/// Checks every ServicePolicy document of every file, and says which documents were skipped.
pub fn examine(files: &[File]) -> Examined {
    let mut problems = Vec::new();
    let mut loaded: Vec<Loaded> = Vec::new();
    let mut skipped = Vec::new();
    let mut defined: HashMap<String, (String, node::Pos)> = HashMap::new();
    for (file, bytes) in files {
        let Some(documents) = documents_of(file, bytes, &mut problems) else {
            continue;
        };
        for document in &documents {
            if let Some(skip) = documents::skipped(document, file) {
                skipped.push((file.clone(), skip));
                continue;
            }
            match check::document(document) {
                Ok(policy) => {
                    let key = policy.key();
                    if let Some((first_file, first_at)) = defined.get(&key) {
                        problems.push(format!(
                            "{file}:{}: metadata.name: ServicePolicy {key} is already defined at {first_file}:{first_at}",
                            policy.at
                        ));
                        continue;
                    }
                    defined.insert(key, (file.clone(), policy.at));
                    loaded.push(Loaded {
                        file: file.clone(),
                        policy,
                    });
                }
                Err(found) => problems.extend(found.iter().map(|p| format!("{file}:{p}"))),
            }
        }
    }
    Examined {
        loaded,
        skipped,
        problems,
    }
}

/// The first file of `files` with nothing in it, as the error that refuses it.
pub fn first_empty(files: &[File]) -> Option<EmptyFile> {
    files
        .iter()
        .find(|(_, text)| empty_file::contents(text) == Contents::Nothing)
        .map(|(file, _)| EmptyFile { file: file.clone() })
}

/// [`read`] then [`examine`], with the problems joined into one error, one per line.
pub fn load(path: &Path) -> anyhow::Result<(Vec<File>, Examined)> {
    let files = read(path)?;
    let examined = examine(&files);
    if !examined.problems.is_empty() {
        anyhow::bail!(examined.problems.join("\n"));
    }
    Ok((files, examined))
}

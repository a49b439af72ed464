//! Running a container of a pod spec the way the kubelet would, in the pods harness: the
//! command, args and environment exactly as written, with the kubelet's own substitutions and
//! nothing else.
//!
//! The translation, all of it:
//! - `valueFrom.fieldRef` environment variables get the pod's facts (`metadata.name`,
//!   `metadata.namespace`, `status.podIP`, `spec.serviceAccountName`), as the downward API does;
//! - `$(VAR)` in `value`, `command` and `args` expands to a variable defined earlier in the list
//!   (`$$` is a literal `$`; an undefined reference stays as written), as the kubelet does;
//! - a `volumeMounts[].mountPath` prefix of an environment value or an argument becomes the
//!   directory the test put that volume's files in (the one thing a mount namespace would do);
//! - `command[0]` is the binary's path on this machine;
//! - `securityContext.runAsUser` / `runAsGroup` become the process's UID and GID.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

/// What the downward API knows about the pod.
#[derive(Debug, Clone)]
pub struct PodFacts {
    pub name: String,
    pub namespace: String,
    pub ip: String,
    pub service_account: String,
}

/// A container ready to start: program, arguments, environment, user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translated {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub uid: u32,
    pub gid: u32,
}

/// Translates `container` (a JSON container of a pod spec). `binaries` maps `command[0]` to a
/// path; `volumes` maps a volume name to the directory holding its files.
pub fn translate(
    container: &Value,
    facts: &PodFacts,
    binaries: &BTreeMap<String, PathBuf>,
    volumes: &BTreeMap<String, PathBuf>,
) -> Result<Translated, String> {
    let name = container["name"].as_str().unwrap_or("?");
    let mounts: Vec<(String, PathBuf)> = container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let volume = m["name"].as_str().unwrap_or_default();
            let dir = volumes
                .get(volume)
                .ok_or_else(|| format!("{name}: no directory for volume {volume}"))?;
            Ok((
                m["mountPath"].as_str().unwrap_or_default().to_owned(),
                dir.clone(),
            ))
        })
        .collect::<Result<_, String>>()?;
    let remap = |text: String| -> String {
        for (path, dir) in &mounts {
            if let Some(rest) = text.strip_prefix(path.as_str())
                && (rest.is_empty() || rest.starts_with('/'))
            {
                return format!("{}{rest}", dir.display());
            }
        }
        text
    };
    let mut env: Vec<(String, String)> = Vec::new();
    for var in container["env"].as_array().into_iter().flatten() {
        let key = var["name"]
            .as_str()
            .ok_or(format!("{name}: env without a name"))?;
        let value = if let Some(value) = var.get("value").and_then(Value::as_str) {
            expand(value, &env)
        } else if let Some(path) = var
            .pointer("/valueFrom/fieldRef/fieldPath")
            .and_then(Value::as_str)
        {
            match path {
                "metadata.name" => facts.name.clone(),
                "metadata.namespace" => facts.namespace.clone(),
                "status.podIP" => facts.ip.clone(),
                "spec.serviceAccountName" => facts.service_account.clone(),
                other => return Err(format!("{name}: env {key}: fieldRef {other} not supported")),
            }
        } else {
            return Err(format!(
                "{name}: env {key}: only value and fieldRef are supported"
            ));
        };
        env.push((key.to_owned(), remap(value)));
    }
    let strings = |field: &str| -> Vec<String> {
        container[field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|s| remap(expand(s, &env)))
            .collect()
    };
    let command = strings("command");
    let first = command.first().ok_or(format!("{name}: no command"))?;
    let program = binaries
        .get(first)
        .ok_or(format!("{name}: no binary for {first}"))?
        .clone();
    let mut args: Vec<String> = command[1..].to_vec();
    args.extend(strings("args"));
    let id = |field: &str| {
        container["securityContext"][field]
            .as_u64()
            .map(|n| n as u32)
            .unwrap_or(0)
    };
    Ok(Translated {
        program,
        args,
        env,
        uid: id("runAsUser"),
        gid: id("runAsGroup"),
    })
}

/// The kubelet's `$(VAR)` expansion against the variables defined so far.
pub fn expand(text: &str, defined: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some((name, tail)) = after.strip_prefix('(').and_then(|a| a.split_once(')')) {
            match defined.iter().rev().find(|(k, _)| k == name) {
                Some((_, value)) => out.push_str(value),
                None => out.push_str(&format!("$({name})")),
            }
            rest = tail;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

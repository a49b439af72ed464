//! Names of the namespaces, and cleanup after test processes that died without dropping their
//! [`super::Pods`]: a namespace is named after the pid that created it, so anyone can tell when
//! its owner is gone.

use std::sync::Once;

use super::netns;
use super::process::alive;

/// The most pods one instance holds: addresses `.2` to `.126`.
pub(crate) const MAX_PODS: usize = 125;

/// Every namespace the harness creates starts with this.
pub const PREFIX: &str = "wpod-";

/// The bridge namespace of instance `instance` of process `pid`.
pub fn bridge_namespace(pid: u32, instance: u32) -> String {
    format!("{PREFIX}{pid}-{instance}")
}

/// The namespace of pod `pod` in instance `instance` of process `pid`.
pub fn pod_namespace(pid: u32, instance: u32, pod: &str) -> String {
    format!("{}-{pod}", bridge_namespace(pid, instance))
}

/// The pid that created namespace `name`, if the harness named it.
fn creator(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let mut parts = rest.splitn(3, '-');
    let pid = parts.next()?.parse().ok()?;
    parts.next()?.parse::<u32>().ok()?;
    Some(pid)
}

/// Deletes the namespaces (and kills the processes in them) of test processes that are gone,
/// and, on its first call in a process, those named after this process's pid (left by an
/// earlier process that had the same pid). Returns the names removed. [`super::Pods::create`]
/// calls it.
pub fn remove_stale() -> Vec<String> {
    static OWN_LEFTOVERS: Once = Once::new();
    let me = std::process::id();
    let mut removed = Vec::new();
    // Inside `call_once`: no thread creates namespaces in this process before this has run.
    OWN_LEFTOVERS.call_once(|| removed.extend(remove_where(|pid| pid == me)));
    removed.extend(remove_where(|pid| pid != me && !alive(pid)));
    removed
}

fn remove_where(stale: impl Fn(u32) -> bool) -> Vec<String> {
    let mut names: Vec<String> = netns::list()
        .into_iter()
        .filter(|name| creator(name).is_some_and(&stale))
        .collect();
    // Pods (longer names) before their bridge.
    names.sort_by_key(|name| std::cmp::Reverse(name.len()));
    for name in &names {
        netns::destroy(name);
    }
    names
}

/// Panics unless `names` are usable pod names: short, unique, and fit for interface names.
pub(crate) fn check_names(names: &[&str]) {
    assert!(names.len() <= MAX_PODS, "at most {MAX_PODS} pods");
    for (i, name) in names.iter().enumerate() {
        let valid = (1..=32).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        assert!(valid, "pod name {name:?}: use 1 to 32 of [a-z0-9-]");
        assert!(!names[..i].contains(name), "pod name {name:?} given twice");
    }
}

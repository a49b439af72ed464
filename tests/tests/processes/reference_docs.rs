//! The reference pages in `docs/reference/` cannot drift from the code.
//!
//! Flags: every long flag each binary's `--help` lists (every subcommand of `weft`, recursively,
//! and `weft-proxy init`) has a row in its page, with the environment variable `--help` names,
//! and every row names a flag the binary has. Metrics: every family a running mesh with traffic
//! exposes on the proxies' and the control plane's `/metrics` has a row in `metrics.md` with the
//! same type and label names, and every row names a family the code registers (families that
//! appear only after rare events are checked that way).
//!
//! The pages are written for people; the rules they must follow to be read here are few: a flag
//! row starts with `` | `--flag` | `` (then, where the binary reads one, the environment variable
//! as the first code span of the next cell) under a heading naming the command
//! (`` ## `weft ca create` ``); a metric row is
//! `` | `name` | type | `label`, `label` | meaning | `` under a heading saying whose metrics
//! follow (`## The proxy …`, `## The control plane …`).

#![allow(clippy::unwrap_used)] // a failed step fails the test, with its message

use std::path::Path;

use weft_tests::process::bins;
use weft_tests::reference::{
    CommandFlags, Component, documented_flags, documented_metrics, exposed_metrics, help_flags,
    metrics_drift, registered_in_code,
};

/// The binaries, with the page documenting each.
const BINARIES: &[(&str, &str)] = &[
    ("weft-proxy", "weft-proxy.md"),
    ("weft-control-plane", "weft-control-plane.md"),
    ("weft", "weft.md"),
];

#[test]
fn every_flag_of_every_binary_is_in_its_reference_page_and_no_other() {
    let mut problems = Vec::new();
    for (binary, page) in BINARIES {
        let from_help: Vec<CommandFlags> = help_flags(&bins::path(binary), binary);
        let documented = documented_flags(&reference_page(page));
        for command in &from_help {
            let Some(rows) = documented.get(&command.command) else {
                problems.push(format!(
                    "{page}: no heading `{}` (its flags: {:?})",
                    command.command,
                    command.flags.keys().collect::<Vec<_>>()
                ));
                continue;
            };
            for (flag, env) in &command.flags {
                match rows.get(flag) {
                    None => problems.push(format!(
                        "{page}: `{}` has {flag} (--help) but no row for it",
                        command.command
                    )),
                    Some(documented_env) if env.is_some() && documented_env != env => problems
                        .push(format!(
                            "{page}: `{}` {flag}: --help says env {env:?}, the page {:?}",
                            command.command, documented_env
                        )),
                    Some(_) => {}
                }
            }
            for flag in rows.keys() {
                if !command.flags.contains_key(flag) {
                    problems.push(format!(
                        "{page}: `{}` documents {flag}, which --help does not list",
                        command.command
                    ));
                }
            }
        }
        for command in documented.keys() {
            if !from_help.iter().any(|c| &c.command == command) {
                problems.push(format!(
                    "{page}: documents `{command}`, which is no command"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the flag reference drifted:\n{}",
        problems.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_exposed_is_in_the_metrics_reference_with_its_type_and_labels() {
    let documented = documented_metrics(&reference_page("metrics.md"));
    let exposed = exposed_metrics().await;
    let mut problems = metrics_drift(&documented, &exposed);
    for (component, rows) in &documented {
        for name in rows.keys() {
            if !registered_in_code(*component, name) {
                problems.push(format!(
                    "metrics.md: {name} ({component:?}) is not registered anywhere in {}",
                    component.source_dir()
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the metrics reference drifted:\n{}",
        problems.join("\n")
    );
    // The comparison above is only as good as the mesh's coverage; keep it wide.
    for component in [Component::Proxy, Component::ControlPlane] {
        let seen = exposed.get(&component).map_or(0, |families| families.len());
        assert!(
            seen >= 10,
            "{component:?} exposed only {seen} families: {exposed:?}"
        );
    }
}

fn reference_page(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/reference")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

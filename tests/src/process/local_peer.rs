//! Programs from `tests/e2e/peers.py` run on this host (no pods), for loopback meshes: a server
//! that prints "ready" once listening, killed when dropped, and one-shot clients whose JSON line
//! is returned.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::pods::pod_mesh::peers_script;
use crate::process::programs;

/// A `python3` that can import `module` (the one on `PATH`, else the system's), or `None` after
/// printing why the calling test is skipped (a failure under `WEFT_REQUIRE_PEERS`).
pub fn python_with(module: &str) -> Option<String> {
    python_importing(
        &[module],
        "pip install grpcio, or apt-get install python3-grpcio",
    )
}

/// A `python3` that can import every one of `modules` (the one on `PATH`, else the system's), or
/// `None` after printing why the calling test is skipped, with `install` saying how to get them
/// (a failure under `WEFT_REQUIRE_PEERS`).
pub fn python_importing(modules: &[&str], install: &str) -> Option<String> {
    let imports = modules.join(", ");
    for python in ["python3", "/usr/bin/python3"] {
        let imported = Command::new(python)
            .args(["-c", &format!("import {imports}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if imported {
            return Some(python.to_owned());
        }
    }
    programs::skip(&format!(
        "python3 with {imports} is missing ({install}); .ci/run installs it"
    ));
    None
}

/// A server from `peers.py`, running until dropped.
pub struct LocalPeer {
    child: Child,
    pub what: String,
}

impl LocalPeer {
    /// Starts `python peers.py args…` and waits (at most 15 s) for its "ready" line.
    pub fn spawn(python: &str, args: &[&str]) -> Self {
        let what = args.join(" ");
        let mut child = Command::new(python)
            .arg(peers_script())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {python} peers.py {what}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.trim() == "ready" {
                    let _ = tx.send(());
                }
            }
        });
        if rx.recv_timeout(Duration::from_secs(15)).is_err() {
            let _ = child.kill();
            panic!("peers.py {what} did not print ready within 15 s");
        }
        Self { child, what }
    }
}

impl Drop for LocalPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the client `python peers.py args…` (at most `deadline`) and parses its JSON line.
pub fn run_client(python: &str, args: &[&str], deadline: Duration) -> serde_json::Value {
    let seconds = format!("{}", deadline.as_secs().max(1));
    let script = peers_script();
    let mut all = vec![seconds.as_str(), python, script.to_str().unwrap()];
    all.extend_from_slice(args);
    let (output, text) = programs::run("timeout", &all);
    let line = String::from_utf8_lossy(&output.stdout)
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("peers.py {} printed no JSON: {text}", args.join(" ")));
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad JSON from peers.py: {e}: {line}"))
}

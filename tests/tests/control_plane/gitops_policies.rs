//! A GitOps folder (Deployments, Services, a ConfigMap, kustomization.yaml, Gateway API routes, a
//! MeshService and ServicePolicies side by side, several documents per file) given to
//! `weft policy check` and to the control plane's `--policies` and `--routes`: both read the
//! ServicePolicies and the routes and skip the rest by one rule, so a folder the check accepts
//! is one the control plane loads, and a broken one is refused by both with the same
//! `file:line:column` lines.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use weft_tests::process::bins;
use weft_tests::process::control_plane_process::ControlPlaneProcess;

const GOOD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../cli/tests/policies/gitops");
const BROKEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../cli/tests/policies/gitops-broken"
);

/// A control plane refusing its files stops at once.
const EXIT_DEADLINE: Duration = Duration::from_secs(10);

fn policy_check(path: &str) -> Output {
    Command::new(bins::path("weft"))
        .args(["policy", "check", path])
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_loads_the_folder_weft_policy_check_accepts() {
    let checked = policy_check(GOOD);
    assert_eq!(
        checked.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    assert_eq!(
        String::from_utf8(checked.stdout).unwrap(),
        "ok: 2 ServicePolicy documents in 6 files (web.demo, payments.prod); 2 Gateway API routes (demo/web, prod/payments); 6 other documents skipped (-v lists them)\n"
    );
    let data = tempfile::tempdir().unwrap();
    let control_plane = ControlPlaneProcess::start(
        data.path(),
        &[
            format!("--policies={GOOD}"),
            format!("--routes={GOOD}"),
            "--webhook-listen=off".to_owned(),
        ],
    )
    .await;
    let log = control_plane.log();
    assert!(
        log.contains("loaded 2 ServicePolicy documents in 6 files (payments.prod, web.demo); 8 other documents skipped (not ServicePolicies)"),
        "{log}"
    );
    assert!(
        log.contains("loaded 2 Gateway API route documents in 6 files (demo/web, prod/payments)"),
        "{log}"
    );
    let metrics = control_plane.metrics().await.unwrap();
    assert!(metrics.contains("\nweft_policies 2\n"), "{metrics}");
}

#[test]
fn the_control_plane_refuses_the_folder_weft_policy_check_refuses_with_the_same_lines() {
    let checked = policy_check(BROKEN);
    assert_eq!(checked.status.code(), Some(1));
    let stderr = String::from_utf8(checked.stderr).unwrap();
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.ends_with("problems found"))
        .collect();
    let web = format!("{BROKEN}/web.yaml");
    let grammar = "expected a number and a unit (ms, s, m, h, d), like 300ms or 1h30m";
    assert_eq!(
        problems,
        [
            format!(
                "{web}:14:11: metadata.labels: expected a map of names to strings, found a list"
            ),
            format!(
                "{web}:18:27: spec.client.defaults.timeouts.request: `10 sec` is not a duration: {grammar}; did you mean 10s?"
            ),
            format!(
                "{web}:18:43: spec.client.defaults.timeouts.perTry: `1.5s` is not a duration: {grammar}; did you mean 1500ms?"
            ),
            format!("{web}:19:24: spec.client.defaults.retries.limit: 9 is out of range (0-5)"),
            format!("{web}:22:7: kind: is `ServicePolicys`, expected ServicePolicy"),
        ]
    );

    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(bins::path("weft-control-plane"))
        .args([
            "--listen=127.0.0.1:0",
            "--admin-listen=127.0.0.1:0",
            "--webhook-listen=off",
        ])
        .arg(format!("--data-dir={}", data.path().display()))
        .arg(format!("--policies={BROKEN}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > EXIT_DEADLINE {
            child.kill().unwrap();
            panic!("the control plane started on a folder weft policy check refuses");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    let log = String::from_utf8(output.stderr).unwrap();
    for problem in &problems {
        assert!(log.contains(problem), "{problem}\nnot in:\n{log}");
    }
}

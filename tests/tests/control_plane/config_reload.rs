//! The control plane's watched files under what editors and operators do to them, against the
//! real `weft-control-plane` process and a discovery watch as a proxy holds one: a file
//! truncated or deleted keeps the last good version in force (logged once, counted by kind and
//! reason), `[]` empties it on purpose, a rewrite applies, and a burst of writes makes one
//! reload.

use std::path::Path;
use std::time::Duration;

use tonic::Streaming;
use weft_api::discovery::Resolution;
use weft_certs::SpiffeId;
use weft_tests::mesh::control_plane_client::{
    self, certified_by_data_dir, discovery_client_at, next, quiet,
};
use weft_tests::mesh::identity;
use weft_tests::mesh::policy_mesh::timeout_policy;
use weft_tests::observe::metrics::metric_in;
use weft_tests::process::control_plane_process::ControlPlaneProcess;
use weft_tests::wait;

/// A poll (0.5 s), the settling re-reads and the watch's answer, with room to spare.
const UPDATE_DEADLINE: Duration = Duration::from_secs(5);
/// Long enough for several polls to have seen a change, were one going to be applied.
const QUIET: Duration = Duration::from_secs(2);

const SERVICES: &str = "apiVersion: weft.dev/v1alpha1\nkind: MeshService\nmetadata: {name: hello, namespace: demo}\nspec:\n  ports: [{port: 8080}]\n  endpoints: [{address: 127.0.0.1, serviceAccount: hello}]\n";

/// The request timeout of an answer's client policy, in milliseconds; `None` without a policy.
fn request_timeout_ms(resolution: &Resolution) -> Option<u64> {
    let policy = resolution.policy.as_ref()?;
    Some(policy.default_rules.as_ref()?.timeouts.as_ref()?.request_ms)
}

fn failures(metrics: &str, kind: &str, reason: &str) -> f64 {
    metric_in(
        metrics,
        &format!(r#"weft_config_reload_failures_total{{kind="{kind}",reason="{reason}"}}"#),
    )
}

fn reloads(metrics: &str, file: &Path, result: &str) -> f64 {
    metric_in(
        metrics,
        &format!(
            r#"weft_config_reloads_total{{file="{}",result="{result}"}}"#,
            file.display()
        ),
    )
}

struct Setup {
    _dir: tempfile::TempDir,
    control_plane: ControlPlaneProcess,
    services: std::path::PathBuf,
    policies: std::path::PathBuf,
    watch: Streaming<Resolution>,
}

/// A control plane with `hello.demo` and its policy (a 2 s request timeout), and a watch of
/// `hello.demo:8080` past its first answer.
async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (services, policies) = (
        dir.path().join("services.yaml"),
        dir.path().join("policies.yaml"),
    );
    std::fs::write(&services, SERVICES).unwrap();
    std::fs::write(&policies, timeout_policy("2s")).unwrap();
    let data = dir.path().join("data");
    let control_plane = ControlPlaneProcess::start(
        &data,
        &[
            format!("--services={}", services.display()),
            format!("--policies={}", policies.display()),
        ],
    )
    .await;
    let cp_identity = SpiffeId::new("cluster.local", "weft-system", "weft-control-plane").unwrap();
    let client = discovery_client_at(
        &control_plane.grpc_addr.to_string(),
        &cp_identity,
        certified_by_data_dir(&identity("web"), &data),
        true,
    );
    let mut watch = control_plane_client::watch(&client, "hello.demo:8080")
        .await
        .unwrap();
    let first = next(&mut watch, UPDATE_DEADLINE).await;
    assert!(first.known, "{first:?}");
    assert_eq!(request_timeout_ms(&first), Some(2000), "{first:?}");
    Setup {
        _dir: dir,
        control_plane,
        services,
        policies,
        watch,
    }
}

/// Waits until the control plane's `/metrics` satisfies `check`.
async fn metrics_until(
    control_plane: &ControlPlaneProcess,
    what: &str,
    check: impl Fn(&str) -> bool,
) -> String {
    wait::until(UPDATE_DEADLINE, what, || async {
        let text = control_plane.metrics().await?;
        check(&text).then_some(text)
    })
    .await
}

/// Truncated (what an editor does before writing) and then deleted, the policies file keeps its
/// policy in force: the watch hears nothing, each is logged once and counted by kind and
/// reason. `[]` then removes the policy on purpose, and a rewrite brings a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_or_deleted_policies_file_keeps_the_last_good_policy() {
    let mut s = setup().await;

    std::fs::File::create(&s.policies).unwrap(); // truncates
    quiet(
        &mut s.watch,
        QUIET,
        "an emptied policies file changes nothing",
    )
    .await;
    let metrics = metrics_until(&s.control_plane, "the empty file counted", |m| {
        failures(m, "policies", "empty") == 1.0
    })
    .await;
    assert_eq!(metric_in(&metrics, "weft_policies"), 1.0, "{metrics}");
    assert_eq!(reloads(&metrics, &s.policies, "error"), 1.0, "{metrics}");
    let log = s.control_plane.log();
    let empty_lines = log
        .lines()
        .filter(|l| l.contains("the file is empty") && l.contains("keeping the previous version"))
        .count();
    assert_eq!(empty_lines, 1, "{log}");

    std::fs::remove_file(&s.policies).unwrap();
    quiet(
        &mut s.watch,
        QUIET,
        "a deleted policies file changes nothing",
    )
    .await;
    let metrics = metrics_until(&s.control_plane, "the missing file counted", |m| {
        failures(m, "policies", "missing") == 1.0
    })
    .await;
    assert_eq!(metric_in(&metrics, "weft_policies"), 1.0, "{metrics}");
    let log = s.control_plane.log();
    let missing_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&format!("cannot read {}", s.policies.display())))
        .collect();
    assert_eq!(
        missing_lines.len(),
        1,
        "logged once, not at every poll:\n{log}"
    );
    assert!(
        missing_lines[0].contains("No such file")
            && missing_lines[0].contains("keeping the previous version"),
        "{}",
        missing_lines[0]
    );

    std::fs::write(&s.policies, "# no policies for now\n[]\n").unwrap();
    let none = next(&mut s.watch, UPDATE_DEADLINE).await;
    assert_eq!(
        none.policy, None,
        "`[]` removes the policy on purpose: {none:?}"
    );

    std::fs::write(&s.policies, timeout_policy("3s")).unwrap();
    let rewritten = next(&mut s.watch, UPDATE_DEADLINE).await;
    assert_eq!(request_timeout_ms(&rewritten), Some(3000), "{rewritten:?}");
    let metrics = s.control_plane.metrics().await.unwrap();
    assert_eq!(reloads(&metrics, &s.policies, "ok"), 2.0, "{metrics}");
    assert_eq!(failures(&metrics, "policies", "invalid"), 0.0, "{metrics}");
}

/// The services file gets the same treatment: emptied, the service stays known.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_services_file_keeps_the_last_good_services() {
    let mut s = setup().await;
    std::fs::write(&s.services, "# being rewritten\n").unwrap();
    quiet(
        &mut s.watch,
        QUIET,
        "an emptied services file changes nothing",
    )
    .await;
    let metrics = metrics_until(&s.control_plane, "the empty services file counted", |m| {
        failures(m, "services", "empty") == 1.0
    })
    .await;
    assert_eq!(
        metric_in(&metrics, "weft_discovery_services"),
        1.0,
        "{metrics}"
    );
    assert_eq!(reloads(&metrics, &s.services, "error"), 1.0, "{metrics}");
}

/// Twelve saves 50 ms apart (each truncating, then writing), longer than a poll interval: one
/// reload, of the last version, and one answer on the watch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_writes_makes_one_reload_of_the_last_version() {
    let mut s = setup().await;
    for seconds in 3..=14 {
        std::fs::write(&s.policies, timeout_policy(&format!("{seconds}s"))).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answer = next(&mut s.watch, UPDATE_DEADLINE).await;
    assert_eq!(
        request_timeout_ms(&answer),
        Some(14_000),
        "the first answer after the burst is its last version: {answer:?}"
    );
    quiet(&mut s.watch, QUIET, "one answer for the whole burst").await;
    let metrics = s.control_plane.metrics().await.unwrap();
    assert_eq!(reloads(&metrics, &s.policies, "ok"), 1.0, "{metrics}");
    assert_eq!(reloads(&metrics, &s.policies, "error"), 0.0, "{metrics}");
}

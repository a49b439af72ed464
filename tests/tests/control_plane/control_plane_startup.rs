//! Starting `weft-control-plane` as a process: `trust-bundle.pem`, which proxies (and the by-hand
//! mesh in docs/getting-started.md) start from, appears only once the control plane serves. One
//! that cannot start (its port taken, a broken policy) exits non-zero with a readable error and
//! leaves no bundle behind for anyone to wait on.

use std::path::Path;
use std::time::Duration;

use weft_tests::clients;
use weft_tests::process::control_plane_process::ControlPlaneProcess;

const EXIT_DEADLINE: Duration = Duration::from_secs(20);

fn flags(data: &Path, listen: &str, extra: &[String]) -> Vec<String> {
    let mut flags = vec![
        format!("--listen={listen}"),
        "--admin-listen=127.0.0.1:0".to_owned(),
        format!("--data-dir={}", data.display()),
    ];
    flags.extend_from_slice(extra);
    flags
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_grpc_port_stops_the_control_plane_before_it_writes_the_trust_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let run = flags(&data, &addr.to_string(), &[]);
    let (status, log) =
        tokio::task::spawn_blocking(move || ControlPlaneProcess::run_to_exit(&run, EXIT_DEADLINE))
            .await
            .unwrap();
    assert!(!status.success(), "{status}; log:\n{log}");
    assert!(
        log.contains(&format!("cannot listen for gRPC on {addr}"))
            && log.contains("Address already in use"),
        "the error names the address and why:\n{log}"
    );
    assert!(
        !data.join("trust-bundle.pem").exists(),
        "a control plane that never served wrote trust-bundle.pem; log:\n{log}"
    );
    drop(taken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_policy_stops_the_control_plane_before_it_writes_the_trust_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let policies = dir.path().join("policies.yaml");
    std::fs::write(
        &policies,
        "apiVersion: weft.dev/v1alpha1\nkind: ServicePolicy\nmetadata: {name: hello, namespace: demo}\nspec:\n  client:\n    defaults:\n      retries: {limit: 9}\n",
    )
    .unwrap();
    let run = flags(
        &data,
        "127.0.0.1:0",
        &[format!("--policies={}", policies.display())],
    );
    let (status, log) =
        tokio::task::spawn_blocking(move || ControlPlaneProcess::run_to_exit(&run, EXIT_DEADLINE))
            .await
            .unwrap();
    assert!(!status.success(), "{status}; log:\n{log}");
    assert!(
        log.contains(&format!("{}:7:", policies.display())),
        "the error names the file and line:\n{log}"
    );
    assert!(
        !data.join("trust-bundle.pem").exists(),
        "a control plane that never served wrote trust-bundle.pem; log:\n{log}"
    );
}

/// And when it does serve, the bundle is there by the time `/ready` answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trust_bundle_is_there_once_the_control_plane_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let control_plane = ControlPlaneProcess::start(&data, &[]).await;
    let ready = clients::get(control_plane.admin_addr, "/ready", "control-plane")
        .await
        .unwrap();
    assert_eq!(ready.status, 200, "{ready:?}");
    let bundle = std::fs::read_to_string(data.join("trust-bundle.pem")).unwrap();
    assert!(
        bundle.starts_with("-----BEGIN CERTIFICATE-----"),
        "{bundle}"
    );
}

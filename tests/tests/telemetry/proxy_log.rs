//! What a `weft-proxy` process logs about its control plane, read as a person reads it: one
//! line per event, in words (no `Error(…)` or `Some(…)` dumps), and the sentence for what
//! happened: a first certificate obtained (not "renewed"), a dead address, a control plane whose
//! CA is not the one in `--trust-anchors` (not "unreachable").

use std::time::Duration;

use weft_tests::mesh::ProxyOptions;
use weft_tests::process::control_plane_process::ControlPlaneProcess;
use weft_tests::process::proxy_process::ProxyProcess;
use weft_tests::{Mesh, wait};

/// Long enough for a few certify attempts and discovery retries (backoff from 100 ms).
const DEADLINE: Duration = Duration::from_secs(15);

/// A proxy that also watches a destination, so discovery's lines are in its log too.
fn watching() -> ProxyOptions {
    ProxyOptions {
        forward_services: vec!["hello.demo:8080".to_owned()],
        ..ProxyOptions::default()
    }
}

/// Waits until `proxy`'s log has a line containing every one of `parts`; returns that line.
async fn line_with(proxy: &ProxyProcess, parts: &[&str]) -> String {
    let what = format!("a log line with {parts:?}");
    wait::until(DEADLINE, &what, || {
        let log = proxy.log();
        async move {
            log.lines()
                .find(|l| parts.iter().all(|p| l.contains(p)))
                .map(str::to_owned)
        }
    })
    .await
}

/// No line of `log` is a debug dump.
fn assert_readable(log: &str) {
    for line in log.lines() {
        for dump in ["Error(", "Some(", "=None", "Custom {"] {
            assert!(!line.contains(dump), "`{dump}` in a log line: {line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_certificate_is_obtained_and_the_next_ones_renewed() {
    // Certificates of 4 s: the first renewal comes after about 2 s.
    let mesh = Mesh::start(Duration::from_secs(4)).await;
    let proxy = ProxyProcess::start(&mesh, "web", &ProxyOptions::default(), &[]).await;
    line_with(&proxy, &["INFO", "renewed the certificate"]).await;
    let log = proxy.log();
    let obtained = log.find("obtained the first certificate");
    let renewed = log.find("renewed the certificate");
    assert!(obtained.is_some() && obtained < renewed, "{log}");
    assert_eq!(
        log.matches("obtained the first certificate").count(),
        1,
        "{log}"
    );
    assert!(!log.contains("cannot renew"), "{log}");
    assert_readable(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_control_plane_is_unreachable_and_there_is_no_certificate_to_renew() {
    let mesh = Mesh::start(Duration::from_secs(3600)).await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap().to_string();
    drop(dead);
    let proxy = ProxyProcess::spawn(&mesh, "web", &watching(), &[], |args| {
        args.control_plane_addr = Some(dead_addr.clone());
    })
    .await;
    let certify = line_with(&proxy, &["WARN", "cannot get the first certificate"]).await;
    assert!(
        certify.contains(&format!(
            "cannot get the first certificate: the control plane is unreachable: cannot connect to the control plane at {dead_addr}: {dead_addr} ({dead_addr}): Connection refused"
        )),
        "{certify}"
    );
    let watch = line_with(&proxy, &["discovery watch ended"]).await;
    assert!(
        watch.contains("discovery watch ended: this proxy has no certificate yet to present to the control plane; no answer yet, retrying in"),
        "{watch}"
    );
    let log = proxy.log();
    assert!(!log.contains("renew"), "{log}");
    assert_readable(&log);
    let metrics = proxy.admin("/metrics").await.unwrap().body;
    assert!(
        metrics.contains("weft_identity_certify_total{result=\"unavailable\"}"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_with_another_ca_does_not_match_the_trust_anchors() {
    let mesh = Mesh::start(Duration::from_secs(3600)).await;
    // A second control plane with its own data directory: its own CA, the mesh's tokens.
    let foreign_dir = tempfile::tempdir().unwrap();
    let tokens = mesh.dir.path().join("tokens.yaml");
    let foreign = ControlPlaneProcess::start(
        foreign_dir.path(),
        &[
            format!("--bootstrap-tokens={}", tokens.display()),
            "--webhook-listen=off".to_owned(),
        ],
    )
    .await;
    let foreign_addr = foreign.grpc_addr.to_string();
    let proxy = ProxyProcess::spawn(&mesh, "web", &watching(), &[], |args| {
        args.control_plane_addr = Some(foreign_addr.clone());
    })
    .await;
    let certify = line_with(&proxy, &["ERROR", "cannot get the first certificate"]).await;
    assert!(
        certify.contains(&format!(
            "cannot get the first certificate: the control plane's CA does not match --trust-anchors: {foreign_addr} ({foreign_addr}): the peer's certificate is not signed by a trusted root (unknown CA)"
        )),
        "{certify}"
    );
    // The control plane's side of the same handshake.
    let refused = wait::until(
        DEADLINE,
        "the foreign control plane's handshake line",
        || {
            let log = foreign.log();
            async move {
                log.lines()
                    .find(|l| l.contains("TLS handshake failed"))
                    .map(str::to_owned)
            }
        },
    )
    .await;
    assert!(
        refused.contains("TLS handshake failed on the gRPC port: the client does not trust this control plane's certificate (its --trust-anchors do not hold this control plane's CA)"),
        "{refused}"
    );
    assert_readable(&foreign.log());
    let log = proxy.log();
    assert!(!log.contains("unreachable"), "{log}");
    assert!(!log.contains("renew"), "{log}");
    assert_readable(&log);
    let metrics = proxy.admin("/metrics").await.unwrap().body;
    assert!(
        metrics.contains("weft_identity_certify_total{result=\"untrusted_control_plane\"}"),
        "{metrics}"
    );
}

//! `weft edges --kubernetes`: the views reach every meshed pod's sidecar through the API
//! server's pod proxy (here the fake's, forwarding to loopback sidecars), as `weft check
//! --proxy` does: pods without a `weft-proxy` container are not read, and the edge between the
//! mesh's workloads is the one the sidecars measured.

use std::time::Duration;

use serde_json::json;
use weft_tests::clients::traffic::Traffic;
use weft_tests::kubernetes::fake_apiserver::{FakeApiServer, fixture};
use weft_tests::mesh::policy_mesh::PolicyMesh;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_read_through_the_pod_proxy() {
    let mesh = PolicyMesh::start(2, None).await;
    let traffic = Traffic::start(
        mesh.addr(),
        "/",
        2,
        Duration::from_millis(10),
        2000,
        Duration::from_secs(30),
    );
    let api = FakeApiServer::start().await;
    let mut admins = vec![("web-0", mesh.client.admin_addr)];
    for (i, backend) in mesh.backends.iter().enumerate() {
        let name = if i == 0 { "hello-0" } else { "hello-1" };
        admins.push((name, backend.proxy.as_ref().unwrap().admin_addr));
    }
    for (name, admin) in &admins {
        let mut pod = fixture("pod-weft-control-plane");
        pod["metadata"] = json!({"name": name, "namespace": "demo"});
        pod["spec"]["initContainers"] = json!([{"name": "weft-proxy", "image": "ghcr.io/weft-mesh/weft:0.1.0", "restartPolicy": "Always"}]);
        api.put(pod);
        api.proxy_pod_port("demo", name, 15000, *admin);
    }
    // A pod without a sidecar: never read (its pod proxy would fail the read).
    let mut plain = fixture("pod-weft-control-plane");
    plain["metadata"] = json!({"name": "batch-0", "namespace": "demo"});
    api.put(plain);

    let kubeconfig = api.kubeconfig().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(weft_tests::process::bins::path("weft"))
            .args([
                "edges",
                "--kubernetes",
                "--namespace",
                "demo",
                "--window",
                "2s",
                "-o",
                "json",
            ])
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "weft edges: {stderr}"
    );
    let edges: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let edge = &edges.as_array().unwrap()[0];
    assert_eq!(edges.as_array().unwrap().len(), 1, "{edges}");
    assert_eq!(edge["id"], "demo/web->demo/hello");
    assert_eq!(edge["mtls"], true);
    assert!(
        edge["stats"]["requests_per_second"].as_f64().unwrap() > 10.0,
        "{edge}"
    );
    assert_eq!(edge["stats"]["success_rate"], 1.0);
    traffic.stop().await;
}

//! The resilience harness itself, with what exists today: the MeshService it writes is accepted
//! by the control plane, endpoint proxies on distinct loopback addresses sharing one port each
//! reach their own app, the metrics reader parses Prometheus text, and the python gRPC fault
//! server counts and fails calls as told. If these fail, `resilience.rs` failing says nothing
//! about the proxy.

use std::time::Duration;

use weft_tests::mesh::policy_mesh::{
    endpoint_addresses, policy, send, services_yaml, start_backends,
};
use weft_tests::mesh::{Mesh, ProxyOptions, identity};
use weft_tests::observe::metrics::metric_in;
use weft_tests::ports::free_port;
use weft_tests::process::local_peer::{LocalPeer, python_with, run_client};

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn metric_in_matches_label_subsets_and_adds_them_up() {
    let text = r#"# HELP weft_outbound_retries_total Retries.
# TYPE weft_outbound_retries_total counter
weft_outbound_retries_total{destination="hello.demo",route="default",reason="status"} 2
weft_outbound_retries_total{destination="hello.demo",route="create",reason="status"} 1
weft_outbound_retries_total{destination="other.demo",route="default",reason="reset"} 5
weft_outbound_request_attempts_sum{destination="hello.demo",route="default"} 3.0
weft_discovery_watches 4
"#;
    let m = |series| metric_in(text, series);
    assert_eq!(m("weft_outbound_retries_total"), 8.0);
    assert_eq!(
        m(r#"weft_outbound_retries_total{destination="hello.demo"}"#),
        3.0
    );
    assert_eq!(
        m(r#"weft_outbound_retries_total{route="default",destination="hello.demo"}"#),
        2.0
    );
    assert_eq!(m(r#"weft_outbound_retries_total{route="nope"}"#), 0.0);
    assert_eq!(m("weft_outbound_request_attempts_sum"), 3.0);
    assert_eq!(m("weft_discovery_watches"), 4.0);
    assert_eq!(m("weft_outbound_retries"), 0.0, "names match whole");
}

#[test]
fn policy_documents_are_yaml_with_the_contract_header() {
    let doc = policy("  client:\n    defaults:\n      retries: {limit: 1}\n");
    assert!(doc.starts_with("apiVersion: weft.dev/v1alpha1\nkind: ServicePolicy\n"));
    assert!(doc.contains("metadata: {name: hello, namespace: demo}\nspec:\n  client:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_on_loopback_addresses_sharing_a_port_each_reach_their_app() {
    let (ips, port) = endpoint_addresses(3);
    assert!(ips.iter().all(|ip| ip.is_loopback() && ip.octets()[3] >= 2));
    // The services file is accepted (a broken one stops the control plane from starting), and
    // the policies directory, empty, does not get in the way.
    let mesh = Mesh::start_with(HOUR, &services_yaml(port, &ips), None).await;
    assert!(mesh.policies_dir.as_ref().unwrap().is_dir());
    let backends = start_backends(&mesh, &ips, port, None).await;
    // Until discovery-resolved listeners exist: one explicit forward listener per endpoint.
    let client = mesh
        .proxy(
            "web",
            ProxyOptions {
                forwards: ips
                    .iter()
                    .map(|ip| vec![(identity("hello"), std::net::SocketAddr::from((*ip, port)))])
                    .collect(),
                ..ProxyOptions::default()
            },
        )
        .await;
    for (i, backend) in backends.iter().enumerate() {
        let answer = send(
            client.forward_addrs[i],
            http::Method::GET,
            "/which",
            bytes::Bytes::new(),
        )
        .await
        .unwrap();
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.header("x-app"), Some(backend.app.name.as_str()));
        assert_eq!(backend.app.count(), 1);
        assert_eq!(
            backend.app.seen()[0].header("weft-client-identity"),
            Some("spiffe://cluster.local/ns/demo/sa/web")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_policies_replaces_the_document_atomically() {
    let (ips, port) = endpoint_addresses(1);
    // Valid documents: once the control plane reads them, a broken one would stop its start.
    let first = policy("  client:\n    defaults:\n      retries: {limit: 1}\n");
    let second = policy("  client:\n    defaults:\n      retries: {limit: 2}\n");
    let mesh = Mesh::start_with(HOUR, &services_yaml(port, &ips), Some(&first)).await;
    let dir = mesh.policies_dir.clone().unwrap();
    let file = dir.join(weft_tests::mesh::POLICY_FILE);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), first);
    mesh.write_policies(&second);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), second);
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "no temporary file left behind: {names:?}");
    mesh.remove_policies();
    assert!(!file.exists());
}

#[test]
fn the_python_grpc_fault_server_fails_counts_and_succeeds_as_told() {
    let Some(python) = python_with("grpc") else {
        return;
    };
    let port = free_port();
    let _server = LocalPeer::spawn(&python, &["grpc_fault_server", &port.to_string()]);
    let addr = format!("127.0.0.1:{port}");
    let call = |key: &str, code: &str, times: &str| {
        run_client(
            &python,
            &["grpc-fault-call", &addr, key, code, times],
            Duration::from_secs(20),
        )
    };
    for n in 1..=2 {
        let result = call("k", "UNAVAILABLE", "2");
        assert_eq!(result["code"], "UNAVAILABLE", "{result}");
        assert_eq!(result["count"], n);
    }
    let result = call("k", "UNAVAILABLE", "2");
    assert_eq!(
        result["code"], "OK",
        "the third call with key k succeeds: {result}"
    );
    assert_eq!(result["count"], 3);
    let result = call("other", "PERMISSION_DENIED", "1");
    assert_eq!(result["code"], "PERMISSION_DENIED");
    assert_eq!(result["count"], 1, "counts are per key");
}

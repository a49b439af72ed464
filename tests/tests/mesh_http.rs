//! Requests through a client proxy and a server proxy to an app, on loopback.

use std::time::Duration;

use weft_tests::apps::HttpApp;
use weft_tests::mesh::identity;
use weft_tests::{Mesh, ProxyOptions, clients};

#[tokio::test]
async fn http1_request_reaches_the_app_and_the_app_learns_the_callers_identity() {
    let mesh = Mesh::start(Duration::from_secs(3600)).await;
    let app = HttpApp::start("hello").await;
    let server = mesh.proxy("hello", ProxyOptions::app(app.addr)).await;
    let client = mesh
        .proxy(
            "web",
            ProxyOptions::forward_to(vec![(identity("hello"), server.inbound_addr)]),
        )
        .await;

    let reply = clients::get(client.forward_addrs[0], "/greet", "hello.demo:8080")
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, "hello from hello\n");

    let seen = app.last_seen();
    assert_eq!(seen.path, "/greet");
    assert_eq!(seen.version, http::Version::HTTP_11);
    assert_eq!(seen.host.as_deref(), Some("hello.demo:8080"));
    assert_eq!(
        seen.client_identity.as_deref(),
        Some("spiffe://cluster.local/ns/demo/sa/web")
    );
    assert!(!seen.headers.contains_key("weft-orig-proto"));

    let metrics = server.metrics.render();
    assert!(
        metrics.contains(r#"weft_inbound_requests_total{client_identity="spiffe://cluster.local/ns/demo/sa/web",status_code="200"} 1"#),
        "{metrics}"
    );
}

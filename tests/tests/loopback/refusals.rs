//! Every way into a proxy that must be refused, each with its own readable reason, and the
//! permissive/strict treatment of callers outside the mesh.

use std::time::{Duration, SystemTime};

use weft_certs::SpiffeId;
use weft_proxy::tls::alpn;
use weft_tests::apps::HttpApp;
use weft_tests::clients::tls_probe::{Answer, ClientCert, foreign_cert, mesh_cert_valid, probe};
use weft_tests::mesh::identity;
use weft_tests::observe::metrics::find_metric;
use weft_tests::{Mesh, ProxyOptions, clients};

const HOUR: Duration = Duration::from_secs(3600);

fn refused(answer: Answer) -> String {
    match answer {
        Answer::Refused(why) => why,
        Answer::Accepted { .. } => panic!("the proxy accepted a connection it should refuse"),
    }
}

#[tokio::test]
async fn mesh_connections_are_refused_for_a_missing_foreign_or_expired_certificate() {
    let mesh = Mesh::start(HOUR).await;
    let app = HttpApp::start("hello").await;
    let server = mesh.proxy("hello", ProxyOptions::app(app.addr)).await;
    let hello = identity("hello");
    let bundle = mesh.trust_bundle();
    let ca_dir = mesh.dir.path().join("control-plane");
    let now = SystemTime::now();

    // A good certificate is accepted (so the refusals below are about the certificate).
    let good = mesh.client_cert("web");
    let answer = probe(
        server.inbound_addr,
        alpn::MESH_H2,
        &bundle,
        &hello,
        Some(good),
    )
    .await;
    assert!(matches!(answer, Answer::Accepted { .. }), "{answer:?}");

    // Signed by the mesh's CA, but for a name of another trust domain.
    let evil: SpiffeId = "spiffe://evil.example/ns/demo/sa/web".parse().unwrap();
    let cases: [(Option<ClientCert>, &str, &str); 4] = [
        (None, "CertificateRequired", "no_client_certificate"),
        (
            Some(foreign_cert(&identity("web"))),
            "UnknownCA",
            "unknown_ca",
        ),
        (
            Some(mesh_cert_valid(
                &ca_dir,
                &identity("web"),
                now - 2 * HOUR,
                now - HOUR,
            )),
            "CertificateExpired",
            "certificate_expired",
        ),
        (
            Some(mesh_cert_valid(&ca_dir, &evil, now - HOUR, now + HOUR)),
            "CertificateUnknown",
            "foreign_trust_domain",
        ),
    ];
    for (cert, alert, reason) in cases {
        let why = refused(probe(server.inbound_addr, alpn::MESH_H2, &bundle, &hello, cert).await);
        assert!(why.contains(alert), "expected a {alert} alert, got: {why}");
        let metrics = server.metrics.render();
        let line = format!(
            r#"weft_tls_handshake_errors_total{{direction="inbound",reason="{reason}"}} 1"#
        );
        assert!(metrics.contains(&line), "missing {line} in\n{metrics}");
    }
    assert_eq!(app.requests(), 0, "no refused connection may reach the app");
}

#[tokio::test]
async fn outbound_refuses_a_server_with_the_wrong_identity() {
    let mesh = Mesh::start(HOUR).await;
    let app = HttpApp::start("hello").await;
    let server = mesh.proxy("hello", ProxyOptions::app(app.addr)).await;
    // The client expects `db` at the address where `hello` answers.
    let client = mesh
        .proxy(
            "web",
            ProxyOptions::forward_to(vec![(identity("db"), server.inbound_addr)]),
        )
        .await;

    let reply = clients::get(client.forward_addrs[0], "/", "db.demo")
        .await
        .unwrap();
    assert_eq!(reply.status, 502);
    assert_eq!(reply.header("weft-error"), Some("identity_mismatch"));
    assert!(
        reply.body.contains("peer presented identity spiffe://cluster.local/ns/demo/sa/hello, expected spiffe://cluster.local/ns/demo/sa/db"),
        "{}",
        reply.body
    );
    assert_eq!(app.requests(), 0);
    let metrics = client.metrics.render();
    assert!(
        find_metric(
            &metrics,
            r#"weft_tls_handshake_errors_total{direction="outbound",reason="identity_mismatch"}"#
        )
        .is_some(),
        "{metrics}"
    );
}

#[tokio::test]
async fn permissive_mode_accepts_plaintext_marked_unauthenticated() {
    let mesh = Mesh::start(HOUR).await;
    let app = HttpApp::start("hello").await;
    let server = mesh.proxy("hello", ProxyOptions::app(app.addr)).await;

    // A caller outside the mesh, trying to claim an identity with the header.
    let tcp = tokio::net::TcpStream::connect(server.inbound_addr)
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/")
        .header("host", "hello.demo")
        .header(
            "weft-client-identity",
            "spiffe://cluster.local/ns/demo/sa/admin",
        )
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let reply = clients::read(sender.send_request(req).await.unwrap()).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        app.last_seen().client_identity,
        None,
        "a spoofed identity reached the app"
    );

    let metrics = server.metrics.render();
    assert!(
        metrics.contains(r#"weft_inbound_connections_total{tls="plaintext"} 1"#),
        "{metrics}"
    );
    assert_eq!(
        weft_tests::observe::metrics::metric_in(
            &metrics,
            r#"weft_requests_total{direction="inbound",source_identity="unauthenticated",status_code="200"}"#
        ),
        1.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn strict_mode_refuses_plaintext_but_serves_the_mesh() {
    let mesh = Mesh::start(HOUR).await;
    let app = HttpApp::start("hello").await;
    let server = mesh
        .proxy(
            "hello",
            ProxyOptions {
                app: Some(app.addr),
                strict: true,
                ..ProxyOptions::default()
            },
        )
        .await;

    let reply = clients::get(server.inbound_addr, "/", "hello.demo")
        .await
        .unwrap();
    assert_eq!(reply.status, 403);
    assert_eq!(reply.header("weft-error"), Some("plaintext_refused"));
    assert!(reply.body.contains("requires mutual TLS"), "{}", reply.body);
    assert_eq!(app.requests(), 0);

    let client = mesh
        .proxy(
            "web",
            ProxyOptions::forward_to(vec![(identity("hello"), server.inbound_addr)]),
        )
        .await;
    let reply = clients::get(client.forward_addrs[0], "/", "hello.demo")
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(
        app.last_seen().client_identity.as_deref(),
        Some("spiffe://cluster.local/ns/demo/sa/web")
    );
    let metrics = server.metrics.render();
    assert!(
        metrics.contains(r#"weft_inbound_connections_total{tls="refused"} 1"#),
        "{metrics}"
    );
}

//! Programs nobody here wrote, talking to weft: curl as the app's HTTP client, and
//! `openssl s_client` as a TLS peer with and without the right certificate.
//! Skipped with a message when the program is not installed; `.ci/run` installs them.

use std::time::{Duration, SystemTime};

use weft_tests::apps::HttpApp;
use weft_tests::clients::tls_probe::{foreign_cert, mesh_cert_valid};
use weft_tests::mesh::identity;
use weft_tests::{Mesh, ProxyOptions, process::programs};

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_speaks_http1_and_http2_through_the_mesh() {
    if !programs::available("curl", "curl") {
        return;
    }
    let mesh = Mesh::start(HOUR).await;
    let app = HttpApp::start("hello").await;
    let weft_tests::mesh::Sidecars {
        client,
        server: _server,
    } = mesh.sidecars("web", "hello", app.addr).await;
    let url = format!("http://{}/from-curl", client.forward_addrs[0]);

    for (flag, version) in [
        ("--http1.1", http::Version::HTTP_11),
        ("--http2-prior-knowledge", http::Version::HTTP_2),
    ] {
        let (output, text) = tokio::task::spawn_blocking({
            let url = url.clone();
            move || programs::run("curl", &["-sS", "-i", flag, "-H", "host: hello.demo", &url])
        })
        .await
        .unwrap();
        assert!(output.status.success(), "{text}");
        assert!(text.contains(" 200"), "{text}");
        assert!(text.contains("hello from hello"), "{text}");
        assert!(
            text.to_lowercase()
                .contains("weft-server-identity: spiffe://cluster.local/ns/demo/sa/hello"),
            "{text}"
        );
        let seen = app.last_seen();
        assert_eq!(seen.version, version, "{flag}");
        assert_eq!(seen.path, "/from-curl");
        assert_eq!(
            seen.client_identity.as_deref(),
            Some("spiffe://cluster.local/ns/demo/sa/web")
        );
    }
}

/// `openssl s_client` against the inbound listener, offering the mesh protocol.
fn s_client(
    addr: std::net::SocketAddr,
    bundle: &std::path::Path,
    cert: Option<(&std::path::Path, &std::path::Path)>,
) -> String {
    let connect = addr.to_string();
    let cafile = bundle.display().to_string();
    let mut args = vec![
        "3", "openssl", "s_client", "-connect", &connect, "-alpn", "weft-h2", "-tls1_3", "-CAfile",
        &cafile, "-ign_eof",
    ];
    let (cert_path, key_path);
    if let Some((c, k)) = cert {
        cert_path = c.display().to_string();
        key_path = k.display().to_string();
        args.extend(["-cert", &cert_path, "-key", &key_path]);
    }
    // `timeout` ends a session that stays open (the successful case).
    let (_, text) = programs::run("timeout", &args);
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_sees_each_refusal_and_a_valid_mesh_certificate_succeeds() {
    if !programs::available("openssl", "openssl") {
        return;
    }
    let mesh = Mesh::start(HOUR).await;
    let app = HttpApp::start("hello").await;
    let server = mesh.proxy("hello", ProxyOptions::app(app.addr)).await;
    let ca_dir = mesh.dir.path().join("control-plane");
    let now = SystemTime::now();
    let dir = mesh.dir.path();
    let bundle = mesh.trust_bundle_path();
    let addr = server.inbound_addr;

    let good =
        mesh_cert_valid(&ca_dir, &identity("web"), now - HOUR, now + HOUR).write_pem(dir, "good");
    let foreign = foreign_cert(&identity("web")).write_pem(dir, "foreign");
    let expired = mesh_cert_valid(&ca_dir, &identity("web"), now - 2 * HOUR, now - HOUR)
        .write_pem(dir, "expired");

    let cases: Vec<(Option<(std::path::PathBuf, std::path::PathBuf)>, &str)> = vec![
        (None, "alert certificate required"),
        (Some(foreign), "alert unknown ca"),
        (Some(expired), "alert certificate expired"),
    ];
    for (cert, alert) in cases {
        let text = tokio::task::spawn_blocking({
            let bundle = bundle.clone();
            move || {
                s_client(
                    addr,
                    &bundle,
                    cert.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
                )
            }
        })
        .await
        .unwrap();
        // openssl checked our server certificate against the bundle, then got refused.
        assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
        assert!(text.contains(alert), "expected {alert:?} in:\n{text}");
    }

    let text =
        tokio::task::spawn_blocking(move || s_client(addr, &bundle, Some((&good.0, &good.1))))
            .await
            .unwrap();
    assert!(text.contains("ALPN protocol: weft-h2"), "{text}");
    assert!(!text.contains("alert"), "{text}");
    let metrics = server.metrics.render();
    assert!(
        metrics.contains(r#"weft_inbound_connections_total{tls="mtls"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"weft_inbound_connections_total{tls="refused"} 3"#),
        "{metrics}"
    );
}

//! The `weft-*` headers are believed only from whoever may set them: real requests through a
//! caller's proxy and a server's proxy (or straight to the server's inbound listener, as a
//! plaintext caller or as a peer proxy over mutual TLS), checked by what the app received and
//! what the caller got back.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Version};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use weft_proxy::tls::alpn;
use weft_tests::apps::fault_app::{self, FaultApp};
use weft_tests::clients::{self, Reply};
use weft_tests::mesh::{Sidecars, identity};
use weft_tests::observe::metrics::metric;
use weft_tests::{Mesh, ProxyOptions};

const HOUR: Duration = Duration::from_secs(3600);

/// One HTTP/1.x request on `io` (a connection made by the test).
async fn send_h1<I>(io: I, req: Request<Empty<Bytes>>) -> Reply
where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn);
    clients::read(sender.send_request(req).await.unwrap()).await
}

fn get(path: &str) -> http::request::Builder {
    Request::get(path).header("host", "hello.demo:8080")
}

#[tokio::test]
async fn a_connection_header_cannot_remove_the_identity_the_proxy_sets() {
    let mesh = Mesh::start(HOUR).await;
    let app = FaultApp::start("hello").await;
    let server = mesh.proxy("hello", ProxyOptions::app(app.addr)).await;

    // A mesh workload speaking HTTP/1.1 over mutual TLS (as a peer proxy does for upgrades),
    // asking the proxy to drop `weft-client-identity` as a hop-by-hop header, and forging one.
    let tls = mesh
        .connect_as("web", server.inbound_addr, "hello", alpn::MESH_HTTP1)
        .await;
    let req = get("/as-peer")
        .header("connection", "weft-client-identity")
        .header(
            "weft-client-identity",
            "spiffe://cluster.local/ns/demo/sa/admin",
        )
        .body(Empty::new())
        .unwrap();
    let reply = send_h1(tls, req).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let seen = app.seen_path("/as-peer");
    let values: Vec<_> = seen[0]
        .headers
        .get_all("weft-client-identity")
        .iter()
        .collect();
    assert_eq!(
        values,
        [identity("web").to_string().as_str()],
        "the app must learn the identity the caller proved, and only it"
    );

    // A plaintext caller's forged identity never reaches the app.
    let req = get("/plaintext")
        .header(
            "weft-client-identity",
            "spiffe://cluster.local/ns/demo/sa/admin",
        )
        .body(Empty::new())
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(server.inbound_addr)
        .await
        .unwrap();
    assert_eq!(send_h1(tcp, req).await.status, 200);
    let seen = app.seen_path("/plaintext");
    assert_eq!(seen[0].header("weft-client-identity"), None);
}

#[tokio::test]
async fn a_plaintext_callers_orig_proto_does_not_change_the_version_the_app_sees() {
    let mesh = Mesh::start(HOUR).await;
    let app = FaultApp::start("hello").await;
    let server = mesh.proxy("hello", ProxyOptions::app(app.addr)).await;

    let mut h2 = clients::h2(server.inbound_addr).await;
    let mut req = clients::h2_get("hello.demo:8080", "/h2");
    req.headers_mut()
        .insert("weft-orig-proto", "HTTP/1.0".parse().unwrap());
    let reply = clients::read(h2.send_request(req).await.unwrap()).await;
    assert_eq!(reply.status, 200, "{reply:?}");

    let req = get("/h1")
        .header("weft-orig-proto", "HTTP/1.0")
        .body(Empty::new())
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(server.inbound_addr)
        .await
        .unwrap();
    let reply = send_h1(tcp, req).await;
    assert_eq!(reply.status, 200, "{reply:?}");

    for (path, version) in [("/h2", Version::HTTP_2), ("/h1", Version::HTTP_11)] {
        let seen = &app.seen_path(path)[0];
        assert_eq!(
            seen.version, version,
            "{path}: the version the caller spoke"
        );
        assert_eq!(seen.header("weft-orig-proto"), None, "{path}");
    }
}

#[tokio::test]
async fn an_apps_own_orig_proto_does_not_travel_but_the_proxys_does() {
    let mesh = Mesh::start(HOUR).await;
    let app = FaultApp::start("hello").await;
    let Sidecars {
        client,
        server: _server,
    } = mesh.sidecars("web", "hello", app.addr).await;
    let forward = client.forward_addrs[0];

    // An HTTP/2 app claiming its request was HTTP/1.0.
    let mut h2 = clients::h2(forward).await;
    let mut req = clients::h2_get("hello.demo:8080", "/forged-h2");
    req.headers_mut()
        .insert("weft-orig-proto", "HTTP/1.0".parse().unwrap());
    let reply = clients::read(h2.send_request(req).await.unwrap()).await;
    assert_eq!(reply.status, 200, "{reply:?}");

    // An HTTP/1.1 app claiming HTTP/1.0.
    let req = get("/forged-h1")
        .header("weft-orig-proto", "HTTP/1.0")
        .body(Empty::new())
        .unwrap();
    let reply = send_h1(tokio::net::TcpStream::connect(forward).await.unwrap(), req).await;
    assert_eq!(reply.status, 200, "{reply:?}");

    // A real HTTP/1.0 app: the proxies carry its version across HTTP/2.
    let req = get("/real-h10")
        .version(Version::HTTP_10)
        .body(Empty::new())
        .unwrap();
    let reply = send_h1(tokio::net::TcpStream::connect(forward).await.unwrap(), req).await;
    assert_eq!(reply.status, 200, "{reply:?}");

    for (path, version) in [
        ("/forged-h2", Version::HTTP_2),
        ("/forged-h1", Version::HTTP_11),
        ("/real-h10", Version::HTTP_10),
    ] {
        let seen = &app.seen_path(path)[0];
        assert_eq!(seen.version, version, "{path}: the version the app spoke");
        assert_eq!(seen.header("weft-orig-proto"), None, "{path}");
    }
}

#[tokio::test]
async fn an_apps_weft_error_is_not_taken_for_its_proxys() {
    let mesh = Mesh::start(HOUR).await;
    let app = FaultApp::start("hello").await;
    // What a proxy answers when it cannot reach its app, written by the app itself.
    app.set_default(
        fault_app::Reply::status(502)
            .header("weft-error", "app_unreachable")
            .body("the app's own 502\n"),
    );
    let server = mesh.proxy("hello", ProxyOptions::app(app.addr)).await;
    // A proxy in front of an app that is not there: its 502 is its own.
    let gone = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let dead = mesh.proxy("db", ProxyOptions::app(gone)).await;
    let client = mesh
        .proxy(
            "web",
            ProxyOptions {
                forwards: vec![
                    vec![(identity("hello"), server.inbound_addr)],
                    vec![(identity("db"), dead.inbound_addr)],
                ],
                ..ProxyOptions::default()
            },
        )
        .await;

    let reply = clients::get(client.forward_addrs[0], "/through", "hello.demo:8080")
        .await
        .unwrap();
    assert_eq!(reply.status, 502, "{reply:?}");
    assert_eq!(reply.body, "the app's own 502\n");
    assert_eq!(reply.header("weft-error"), None, "{reply:?}");
    assert_eq!(
        app.seen_path("/through").len(),
        1,
        "the app answered: its caller's proxy must not retry as if the app never saw it"
    );
    assert_eq!(metric(&client, "weft_outbound_retries_total").await, 0.0);

    let reply = clients::get(server.inbound_addr, "/direct", "hello.demo:8080")
        .await
        .unwrap();
    assert_eq!(
        (reply.status.as_u16(), reply.header("weft-error")),
        (502, None)
    );

    // The proxy's own answer keeps its mark (and is retried: the app never saw it).
    let reply = clients::get(client.forward_addrs[1], "/nowhere", "db.demo:8080")
        .await
        .unwrap();
    assert_eq!(reply.status, 502, "{reply:?}");
    assert_eq!(reply.header("weft-error"), Some("app_unreachable"));
    assert_eq!(
        metric(
            &client,
            r#"weft_outbound_retries_total{reason="connect_failure"}"#
        )
        .await,
        1.0
    );
}

//! On a port known to carry HTTP, the app never receives bytes weft did not parse.
//!
//! The app here is a raw TCP server that records every byte it is sent, so the tests see exactly
//! what reached it. Requests come from raw sockets written by the test: late (after the
//! detection timeout), in shapes the detector does not recognise, one byte a second, with a
//! forged `weft-client-identity`. Each test first shows the hole on a port nobody declared HTTP
//! (the detection fallback still splices there), so it can tell a fixed port from a broken one.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use weft_tests::mesh::policy_mesh::{PolicyMesh, policy};
use weft_tests::observe::metrics::metric;

const FORGED: &str = "spiffe://cluster.local/ns/kube-system/sa/admin";
/// Longer than the proxies' `--detect-timeout` (300ms in the tests).
const LATE: Duration = Duration::from_millis(600);
const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

/// A TCP app that records every byte it receives and answers `200 ok` to every request head.
struct RawApp {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<u8>>>,
}

impl RawApp {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let all = received.clone();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let all = all.clone();
                tokio::spawn(async move {
                    let mut connection = Vec::new();
                    let mut answered = 0;
                    let mut buf = [0u8; 4096];
                    while let Ok(n @ 1..) = tcp.read(&mut buf).await {
                        all.lock().unwrap().extend_from_slice(&buf[..n]);
                        connection.extend_from_slice(&buf[..n]);
                        let heads = connection.windows(4).filter(|w| w == b"\r\n\r\n").count();
                        for _ in answered..heads {
                            if tcp.write_all(ANSWER).await.is_err() {
                                return;
                            }
                        }
                        answered = heads;
                    }
                });
            }
        });
        Self { addr, received }
    }

    fn received(&self) -> String {
        String::from_utf8_lossy(&self.received.lock().unwrap()).into_owned()
    }

    fn clear(&self) {
        self.received.lock().unwrap().clear();
    }
}

/// Writes `request` on a new connection to `addr` after `delay`, and reads until the peer closes
/// or 5 s pass; returns what came back.
async fn late_request(addr: SocketAddr, delay: Duration, request: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(delay).await;
    tcp.write_all(request).await.unwrap();
    read_for(&mut tcp, Duration::from_secs(5), usize::MAX).await
}

/// Reads until the peer closes, `limit` passes or `answers` answers (`HTTP/1.1 ` lines) came.
async fn read_for(tcp: &mut TcpStream, limit: Duration, answers: usize) -> String {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Ok(Ok(n @ 1..)) => out.extend_from_slice(&buf[..n]),
            _ => break,
        }
        if String::from_utf8_lossy(&out).matches("HTTP/1.1 ").count() >= answers {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn forged_get(path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nhost: hello.demo:8080\r\nweft-client-identity: {FORGED}\r\n\r\n"
    )
    .into_bytes()
}

/// The `hello.demo` policy: every caller allowed, one request a second per caller.
fn rate_limited() -> String {
    policy(
        "  server:\n    authorization: {default: allow}\n    rateLimit:\n      perIdentity: {rps: 1, burst: 1}\n",
    )
}

#[tokio::test]
async fn a_late_request_is_parsed_on_an_http_port_and_spliced_only_on_an_undeclared_one() {
    // The hole, on a port nobody declared HTTP: a request that comes after the detection
    // timeout is carried as opaque TCP, forged identity and all.
    let app = RawApp::start().await;
    let undeclared = PolicyMesh::start_in_front_of(app.addr, None).await;
    let reply = late_request(undeclared.addr(), LATE, &forged_get("/late")).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        app.received().contains(FORGED),
        "the positive control: on an undeclared port the late request is spliced unparsed; the app got:\n{}",
        app.received()
    );
    drop(undeclared);

    // The same through a port whose service has a ServicePolicy (so it carries HTTP): parsed,
    // the identity is the caller's own.
    let app = RawApp::start().await;
    let mesh = PolicyMesh::start_in_front_of(app.addr, Some(&rate_limited())).await;
    app.clear();
    let reply = late_request(mesh.addr(), LATE, &forged_get("/late")).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let received = app.received();
    assert!(!received.contains(FORGED), "{received}");
    assert!(
        received.contains("weft-client-identity: spiffe://cluster.local/ns/demo/sa/web"),
        "{received}"
    );

    // Shapes the detector does not recognise are parsed too: served if weft's parser accepts
    // them (with the identity weft writes), refused with 400 if not; never spliced.
    for (request, status) in [
        (
            format!("GET /bare-lf HTTP/1.1\nhost: hello.demo\nweft-client-identity: {FORGED}\n\n"),
            None,
        ),
        (
            format!(
                "get /lower HTTP/1.1\r\nhost: hello.demo\r\nweft-client-identity: {FORGED}\r\n\r\n"
            ),
            None,
        ),
        (
            "G\x01T /ctl HTTP/1.1\r\nhost: hello.demo\r\n\r\n".to_owned(),
            Some("HTTP/1.1 400"),
        ),
        ("GET /http09\r\n".to_owned(), Some("HTTP/1.1 400")),
    ] {
        tokio::time::sleep(Duration::from_millis(1100)).await; // the rate limit's second
        let reply = late_request(mesh.addr(), Duration::ZERO, request.as_bytes()).await;
        if let Some(status) = status {
            assert!(reply.starts_with(status), "{request:?}: {reply}");
        }
        let received = app.received();
        assert!(
            !received.contains(FORGED),
            "{request:?} reached the app:\n{received}"
        );
        assert!(
            !received.contains("\x01"),
            "{request:?} reached the app:\n{received}"
        );
        assert!(!received.contains("/http09\r\n"), "{received}");
    }
}

#[tokio::test]
async fn a_plaintext_caller_of_an_http_port_meets_identity_and_rate_limits_however_slow() {
    let app = RawApp::start().await;
    let mesh = PolicyMesh::start_in_front_of(app.addr, Some(&rate_limited())).await;
    app.clear();
    let server = mesh.endpoint(0);

    // Late and pipelined, straight to the server's sidecar (permissive: plaintext accepted as
    // unauthenticated): ten requests, one token a second.
    let pipelined: Vec<u8> = (0..10)
        .flat_map(|i| forged_get(&format!("/p{i}")))
        .collect();
    let mut tcp = TcpStream::connect(server).await.unwrap();
    tokio::time::sleep(LATE).await;
    tcp.write_all(&pipelined).await.unwrap();
    let replies = read_for(&mut tcp, Duration::from_secs(5), 10).await;
    let statuses: Vec<&str> = replies
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &replies[i + 9..i + 12])
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "200").count(),
        1,
        "{replies}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == "429").count(),
        9,
        "{replies}"
    );
    let received = app.received();
    assert!(!received.contains(FORGED), "{received}");
    assert_eq!(received.matches("GET /p").count(), 1, "{received}");

    // TLS that is not the mesh's on an HTTP port is closed, counted, never passed through.
    let reply = late_request(server, Duration::ZERO, &client_hello()).await;
    assert_eq!(reply, "");
    let backend = mesh.backends[0].proxy.as_ref().unwrap();
    weft_tests::wait::until(Duration::from_secs(5), "the refusal is counted", || async {
        (metric(
            backend,
            r#"weft_inbound_connections_refused_total{reason="not_http"}"#,
        )
        .await
            == 1.0)
            .then_some(())
    })
    .await;
    assert!(!app.received().contains("example.com"));
}

/// The first flight of a TLS client that is not a mesh proxy (no weft ALPN), for example.com.
fn client_hello() -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = "example.com".try_into().unwrap();
    let mut tls = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut hello = Vec::new();
    tls.write_tls(&mut hello).unwrap();
    hello
}

#[tokio::test]
async fn a_head_sent_a_byte_a_second_gets_408_at_the_header_timeout() {
    let app = RawApp::start().await;
    let mesh = PolicyMesh::start_in_front_of(app.addr, Some(&rate_limited())).await;
    app.clear();
    for addr in [mesh.addr(), mesh.endpoint(0)] {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        let request = forged_get("/slowloris");
        let mut sent = 0;
        // One byte a second, for at most 15 s: the proxy must give up first.
        let reply = loop {
            let mut buf = [0u8; 1024];
            match tokio::time::timeout(Duration::from_secs(1), tcp.read(&mut buf)).await {
                Ok(Ok(n)) => break String::from_utf8_lossy(&buf[..n]).into_owned(),
                Ok(Err(e)) => break format!("error: {e}"),
                Err(_) => {}
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "{addr}: never cut off"
            );
            if tcp.write_all(&request[sent..sent + 1]).await.is_err() {
                break "write failed".to_owned();
            }
            sent += 1;
        };
        let waited = started.elapsed();
        assert!(reply.starts_with("HTTP/1.1 408"), "{addr}: {reply}");
        assert!(
            reply.contains("weft-error: request_header_timeout"),
            "{reply}"
        );
        assert!(
            waited >= Duration::from_secs(9) && waited < Duration::from_secs(12),
            "{addr}: cut off after {waited:?}"
        );
    }
    assert_eq!(
        app.received(),
        "",
        "nothing of the slow heads reached the app"
    );
    assert_eq!(
        metric(
            &mesh.client,
            r#"weft_proxy_errors_total{direction="outbound",reason="request_header_timeout"}"#
        )
        .await,
        1.0
    );
    let backend = mesh.backends[0].proxy.as_ref().unwrap();
    assert_eq!(
        metric(
            backend,
            r#"weft_inbound_connections_refused_total{reason="request_header_timeout"}"#
        )
        .await,
        1.0
    );
}

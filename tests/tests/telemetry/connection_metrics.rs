//! Connection-level telemetry as an operator reads it from `/metrics`: TCP connections and their
//! bytes by direction, peer identity and TLS status, mesh handshakes and their failures, the
//! proxy's identity and build, and its discovery watches; then the whole text through promtool.

use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weft_proxy::RunningProxy;
use weft_proxy::tls::alpn;
use weft_tests::apps::{HttpApp, TcpEcho};
use weft_tests::clients::tls_probe::{Answer, probe};
use weft_tests::mesh::identity;
use weft_tests::observe::metrics::metric_in;
use weft_tests::{Mesh, ProxyOptions, clients, wait};

const HOUR: Duration = Duration::from_secs(3600);
const DEADLINE: Duration = Duration::from_secs(10);
/// Requests over the one pooled mesh connection.
const REQUESTS: usize = 5;
/// The app's answer to each of them.
const HELLO_BODY: &str = "hello from hello\n";
/// Bytes echoed over one opaque TCP connection through the mesh.
const ECHO_BYTES: usize = 64 * 1024;

fn web() -> String {
    identity("web").to_string()
}

/// The value of `family{direction,peer_identity,tls}` (0 when absent).
fn tcp(text: &str, family: &str, direction: &str, peer: &str, tls: &str) -> f64 {
    metric_in(
        text,
        &format!(r#"{family}{{direction="{direction}",peer_identity="{peer}",tls="{tls}"}}"#),
    )
}

/// opened, closed and open of one series, checked to add up.
fn connections(text: &str, direction: &str, peer: &str, tls: &str) -> (f64, f64, f64) {
    let opened = tcp(
        text,
        "weft_tcp_connections_opened_total",
        direction,
        peer,
        tls,
    );
    let closed = tcp(
        text,
        "weft_tcp_connections_closed_total",
        direction,
        peer,
        tls,
    );
    let open = tcp(text, "weft_tcp_connections_open", direction, peer, tls);
    assert_eq!(
        opened,
        closed + open,
        "{direction} {peer} {tls}: opened != closed + open in\n{text}"
    );
    (opened, closed, open)
}

/// Waits until `closed` connections of the series are closed and none is open, then checks that
/// they add up. Not checked while waiting: a connection is counted closed and no longer open by
/// two updates, and a render on another thread may fall between them.
async fn wait_closed(proxy: &RunningProxy, direction: &str, peer: &str, tls: &str, closed: f64) {
    wait::until(
        DEADLINE,
        &format!("{closed} closed {direction} connections of {peer} ({tls}), none open"),
        || async {
            let text = proxy.metrics.render();
            (tcp(
                &text,
                "weft_tcp_connections_closed_total",
                direction,
                peer,
                tls,
            ) == closed
                && tcp(&text, "weft_tcp_connections_open", direction, peer, tls) == 0.0)
                .then_some(())
        },
    )
    .await;
    connections(&proxy.metrics.render(), direction, peer, tls);
}

/// Echoes `ECHO_BYTES` through `addr` (the client proxy's forward to the echo app), then closes.
async fn echo_through(addr: std::net::SocketAddr) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let sent: Vec<u8> = (0..ECHO_BYTES).map(|i| (i % 251) as u8).collect();
    let (mut reader, mut writer) = tcp.split();
    let mut echoed = vec![0u8; ECHO_BYTES];
    let (wrote, read) = tokio::join!(writer.write_all(&sent), reader.read_exact(&mut echoed));
    wrote.unwrap();
    read.unwrap();
    assert_eq!(echoed, sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_bytes_handshakes_and_identity_are_counted_by_peer() {
    let mut mesh = Mesh::start(HOUR).await;
    let app = HttpApp::start("hello").await;
    let echo = TcpEcho::start().await;
    let hello = mesh.proxy("hello", ProxyOptions::app(app.addr)).await;
    let db = mesh.proxy("db", ProxyOptions::app(echo.addr)).await;
    let mut options = ProxyOptions::forward_to(vec![(identity("hello"), hello.inbound_addr)]);
    options
        .forwards
        .push(vec![(identity("db"), db.inbound_addr)]);
    let client = mesh.proxy("web", options).await;

    // N requests over the client proxy's one pooled connection to `hello`.
    for _ in 0..REQUESTS {
        let reply = clients::get(client.forward_addrs[0], "/", "hello.demo:8080")
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.body, HELLO_BODY);
    }
    // One opaque TCP connection to `db`, echoed and closed.
    echo_through(client.forward_addrs[1]).await;

    // The server side of the pooled connection: one connection from web, still open.
    let text = hello.metrics.render();
    let (opened, _, open) = connections(&text, "inbound", &web(), "mtls");
    assert_eq!((opened, open), (1.0, 1.0), "{text}");
    let received = tcp(
        &text,
        "weft_tcp_received_bytes_total",
        "inbound",
        &web(),
        "mtls",
    );
    let sent = tcp(
        &text,
        "weft_tcp_sent_bytes_total",
        "inbound",
        &web(),
        "mtls",
    );
    assert!(received > 0.0, "{text}");
    assert!(sent >= (REQUESTS * HELLO_BODY.len()) as f64, "{text}");
    assert_eq!(
        metric_in(&text, r#"weft_tls_handshakes_total{direction="inbound"}"#),
        1.0,
        "{text}"
    );
    let expected_identity = format!(
        r#"weft_identity_info{{identity="{}"}} 1"#,
        identity("hello")
    );
    assert!(text.contains(&expected_identity), "{text}");
    assert!(
        text.contains(&format!(
            r#"weft_build_info{{version="{}"}} 1"#,
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    let expiry = metric_in(&text, "weft_identity_certificate_expiry_timestamp_seconds");
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        expiry > now && expiry <= now + HOUR.as_secs_f64() + 60.0,
        "{text}"
    );
    // The inbound port's server policy is watched, and its (empty) answer is in force.
    assert_eq!(
        metric_in(&text, "weft_discovery_server_policy_watches"),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric_in(
            &text,
            r#"weft_discovery_watch_states{kind="server_policy",state="current"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(metric_in(&text, "weft_discovery_watches"), 0.0, "{text}");

    // The opaque connection: every echoed byte each way, and closed once the client closed.
    wait_closed(&db, "inbound", &web(), "mtls", 1.0).await;
    let text = db.metrics.render();
    for family in ["weft_tcp_received_bytes_total", "weft_tcp_sent_bytes_total"] {
        let bytes = tcp(&text, family, "inbound", &web(), "mtls");
        assert!(bytes >= ECHO_BYTES as f64, "{family} {bytes} in\n{text}");
    }
    assert_eq!(
        metric_in(
            &text,
            r#"weft_tcp_connection_duration_seconds_count{direction="inbound",tls="mtls"}"#
        ),
        1.0,
        "{text}"
    );

    // The client proxy's own connections out, by the identity each server proved.
    let hello_id = identity("hello").to_string();
    let db_id = identity("db").to_string();
    wait_closed(&client, "outbound", &db_id, "mtls", 1.0).await;
    let text = client.metrics.render();
    assert_eq!(
        connections(&text, "outbound", &hello_id, "mtls"),
        (1.0, 0.0, 1.0),
        "{text}"
    );
    assert_eq!(connections(&text, "outbound", &db_id, "mtls").0, 1.0);
    for family in ["weft_tcp_received_bytes_total", "weft_tcp_sent_bytes_total"] {
        let bytes = tcp(&text, family, "outbound", &db_id, "mtls");
        assert!(bytes >= ECHO_BYTES as f64, "{family} {bytes} in\n{text}");
    }
    assert!(
        tcp(
            &text,
            "weft_tcp_received_bytes_total",
            "outbound",
            &hello_id,
            "mtls"
        ) >= (REQUESTS * HELLO_BODY.len()) as f64,
        "{text}"
    );
    assert_eq!(
        metric_in(&text, r#"weft_tls_handshakes_total{direction="outbound"}"#),
        2.0,
        "{text}"
    );
    assert_eq!(
        metric_in(
            &text,
            r#"weft_tcp_connections_opened_total{direction="inbound"}"#
        ),
        0.0,
        "the client proxy accepted nothing on its inbound listener:\n{text}"
    );

    // A caller outside the mesh: plaintext, unauthenticated, closed when it hangs up.
    let reply = clients::get(hello.inbound_addr, "/", "hello.demo:8080")
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    wait_closed(&hello, "inbound", "unauthenticated", "plaintext", 1.0).await;
    let text = hello.metrics.render();
    assert!(
        tcp(
            &text,
            "weft_tcp_sent_bytes_total",
            "inbound",
            "unauthenticated",
            "plaintext"
        ) >= HELLO_BODY.len() as f64,
        "{text}"
    );

    // A failed handshake (no client certificate) is an error, not a handshake.
    let answer = probe(
        hello.inbound_addr,
        alpn::MESH_H2,
        &mesh.trust_bundle(),
        &identity("hello"),
        None,
    )
    .await;
    assert!(matches!(answer, Answer::Refused(_)), "{answer:?}");
    wait::until(DEADLINE, "the refused handshake to be counted", || async {
        let text = hello.metrics.render();
        let reason = r#"weft_tls_handshake_errors_total{direction="inbound",reason="no_client_certificate"}"#;
        (metric_in(&text, reason) == 1.0).then_some(())
    })
    .await;
    let text = hello.metrics.render();
    assert_eq!(
        metric_in(&text, r#"weft_tls_handshakes_total{direction="inbound"}"#),
        1.0,
        "{text}"
    );
    assert_eq!(
        connections(&text, "inbound", &web(), "mtls").0,
        1.0,
        "a refused connection is not an opened one:\n{text}"
    );

    // The client goes away: the server's pooled connection from it closes.
    let client_text = client.metrics.render();
    client.shutdown().await;
    wait_closed(&hello, "inbound", &web(), "mtls", 1.0).await;

    // The control plane goes away: the server policy stays in force, marked stale.
    mesh.stop_control_plane().await;
    wait::until(DEADLINE, "the server policy watch to go stale", || async {
        let text = hello.metrics.render();
        let stale = r#"weft_discovery_watch_states{kind="server_policy",state="stale"}"#;
        let current = r#"weft_discovery_watch_states{kind="server_policy",state="current"}"#;
        (metric_in(&text, stale) == 1.0 && metric_in(&text, current) == 0.0).then_some(())
    })
    .await;

    for text in [client_text, hello.metrics.render(), db.metrics.render()] {
        promtool_accepts(&text);
    }
}

/// A peer that accepts TCP but never answers the TLS handshake: the connect timeout is counted
/// as a failed outbound handshake (reason timeout), and no connection is counted as opened.
#[tokio::test]
async fn an_outbound_handshake_that_times_out_is_a_handshake_error() {
    let mesh = Mesh::start(HOUR).await;
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut accepted = Vec::new();
        while let Ok((tcp, _)) = silent.accept().await {
            accepted.push(tcp);
        }
    });
    let client = mesh
        .proxy(
            "web",
            ProxyOptions::forward_to(vec![(identity("hello"), silent_addr)]),
        )
        .await;
    let reply = clients::get(client.forward_addrs[0], "/", "hello.demo:8080")
        .await
        .unwrap();
    assert!(reply.status.is_server_error(), "{reply:?}");
    let text = client.metrics.render();
    assert_eq!(
        metric_in(
            &text,
            r#"weft_tls_handshake_errors_total{direction="outbound",reason="timeout"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(metric_in(&text, "weft_tls_handshakes_total"), 0.0, "{text}");
    assert_eq!(
        metric_in(&text, "weft_tcp_connections_opened_total"),
        0.0,
        "{text}"
    );
    held.abort();
}

/// `promtool check metrics` finds nothing to say about `text`.
fn promtool_accepts(text: &str) {
    if !weft_tests::process::programs::available("promtool", "prometheus") {
        return;
    }
    let said = weft_tests::process::programs::promtool_complaints(text);
    assert!(said.is_empty(), "promtool check metrics: {said}\n{text}");
}

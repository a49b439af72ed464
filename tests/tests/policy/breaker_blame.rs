//! The circuit breaker counts only what the endpoint did. A client sidecar's own failures — the
//! app sending a malformed chunked body, the sidecar out of file descriptors — answer the app
//! with what went wrong on its side and leave a healthy endpoint in the balancer: the next good
//! request reaches it.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weft_tests::apps::HttpApp;
use weft_tests::mesh::identity;
use weft_tests::observe::metrics::metric_in as metric;
use weft_tests::process::proxy_process::ProxyProcess;
use weft_tests::{Mesh, ProxyOptions, clients, wait};

const HOUR: Duration = Duration::from_secs(3600);
/// More than the built-in policy's `consecutiveFailures` (7).
const FAULTS: usize = 10;

/// Sends `request` on a fresh connection and reads until the proxy closes it (bounded).
async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn malformed_chunked_bodies_from_the_app_get_400_and_do_not_eject_the_endpoint() {
    let mesh = Mesh::start(HOUR).await;
    let app = HttpApp::start("hello").await;
    let sidecars = mesh.sidecars("web", "hello", app.addr).await;
    let listener = sidecars.client.forward_addrs[0];
    // A chunk size that is not hexadecimal (RFC 9112 7.1).
    let malformed =
        b"POST /upload HTTP/1.1\r\nhost: hello\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n";
    for i in 0..FAULTS {
        let answer = raw(listener, malformed).await;
        assert!(
            answer.starts_with("HTTP/1.1 400 "),
            "body {i}: a malformed body is the app's bad request, got {answer:?}"
        );
        // Refused with the head, under the codec's reason (as `http1::smuggling_*` counts it).
        assert!(answer.contains("weft-error: invalid_chunk"), "{answer}");
    }
    let good = raw(
        listener,
        b"GET /after HTTP/1.1\r\nhost: hello\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(
        good.starts_with("HTTP/1.1 200 "),
        "the healthy endpoint still takes requests: {good:?}"
    );
    let metrics = sidecars.client.metrics.render();
    assert_eq!(
        metric(
            &metrics,
            r#"weft_proxy_errors_total{direction="outbound",reason="invalid_chunk"}"#
        ),
        FAULTS as f64,
        "every malformed body is counted"
    );
    assert_eq!(
        metric(
            &metrics,
            r#"weft_outbound_breaker_transitions_total{to="open"}"#
        ),
        0.0,
        "the breaker never opened"
    );
}

/// The lowest free descriptor number of `pid` (the next one a `socket()` would get).
fn lowest_free_descriptor(pid: u32) -> u64 {
    let fds: std::collections::HashSet<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    (0..).find(|n| !fds.contains(n)).unwrap()
}

/// Whether `pid` holds the accepted end of a TCP connection from `peer` (IPv4 loopback).
fn holds_connection_from(pid: u32, peer: SocketAddr) -> bool {
    let SocketAddr::V4(peer) = peer else {
        return false;
    };
    // /proc/net/tcp writes addresses as the hex of the address in host order, and the port.
    let wanted = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(peer.ip().octets()),
        peer.port()
    );
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap();
    let Some(inode) = table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(2) == Some(&wanted.as_str())).then(|| fields[9].to_owned())
    }) else {
        return false;
    };
    let socket = format!("socket:[{inode}]");
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(Result::ok)
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == socket))
}

fn prlimit(pid: u32, nofile: &str) {
    let status = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--nofile={nofile}")])
        .status()
        .expect("prlimit (util-linux) runs");
    assert!(status.success(), "prlimit --nofile={nofile} failed");
}

fn soft_nofile(pid: u32) -> String {
    let out = Command::new("prlimit")
        .args([
            "--pid",
            &pid.to_string(),
            "--nofile",
            "--output=SOFT",
            "--noheadings",
        ])
        .output()
        .expect("prlimit (util-linux) runs");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn a_sidecar_out_of_file_descriptors_answers_503_and_does_not_eject_the_endpoint() {
    let mesh = Mesh::start(HOUR).await;
    let app = HttpApp::start("hello").await;
    let server = mesh.proxy("hello", ProxyOptions::app(app.addr)).await;
    let options = ProxyOptions::forward_to(vec![(identity("hello"), server.inbound_addr)]);
    let client = ProxyProcess::start(&mesh, "web", &options, &[]).await;
    let pid = client.pid();

    // The app's connection, accepted by the sidecar before its descriptors run out.
    let tcp = TcpStream::connect(client.forward_addrs[0]).await.unwrap();
    let app_side = tcp.local_addr().unwrap();
    // A deadline, not a wait: the sidecar accepts at once, but a CI machine running every suite
    // at the same time has been seen to take over 5 s to schedule it.
    wait::until(
        Duration::from_secs(20),
        "the sidecar to accept the app's connection",
        || async { holds_connection_from(pid, app_side).then_some(()) },
    )
    .await;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = |path: &str| {
        Request::get(path)
            .header("host", "hello")
            .body(Empty::<Bytes>::new())
            .unwrap()
    };

    // No descriptor left for a connection to the peer: EMFILE, the sidecar's own failure.
    let original = soft_nofile(pid);
    prlimit(pid, &format!("{}:", lowest_free_descriptor(pid)));
    let mut answers = Vec::new();
    for _ in 0..FAULTS {
        let reply = clients::read(sender.send_request(request("/emfile")).await.unwrap()).await;
        let reason = reply.header("weft-error").map(str::to_owned);
        answers.push((reply.status.as_u16(), reason));
    }
    prlimit(pid, &format!("{original}:"));
    for (status, reason) in &answers {
        assert_eq!(
            (*status, reason.as_deref()),
            (503, Some("local_resources")),
            "every answer says the sidecar ran out of resources: {answers:?}"
        );
    }

    // Descriptors back: the next good request reaches the endpoint (once the pool's connect
    // backoff, at most 2 s, is over), which was never ejected.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let ok = loop {
        let reply = clients::read(sender.send_request(request("/after")).await.unwrap()).await;
        if reply.status == 200 {
            break reply;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no good answer within 10 s; the last: {reply:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(ok.body.contains("hello"), "{}", ok.body);
    let metrics = client.admin("/metrics").await.unwrap().body;
    assert_eq!(
        metric(
            &metrics,
            r#"weft_outbound_breaker_transitions_total{to="open"}"#
        ),
        0.0,
        "the breaker never opened:\n{metrics}"
    );
    assert!(
        metric(
            &metrics,
            r#"weft_proxy_errors_total{direction="outbound",reason="local_resources"}"#
        ) >= FAULTS as f64,
        "{metrics}"
    );
    assert_eq!(app.requests(), 1, "only the good request reached the app");
}

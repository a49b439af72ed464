//! `GET /tap` and `weft tap` on a live loopback mesh: a caller's sidecar (`web`) and one
//! endpoint of `hello.demo` whose policy retries gateway errors. Events match the requests sent
//! on both sides (count, method, path, status, identities, attempts); no query string and no
//! unlisted header value appears; bad queries and a ninth session are refused and counted (who
//! may tap at all is [`super::tap_access`]); a reader that stops reading costs requests nothing (their latency holds,
//! the events are dropped and counted); the real `weft tap -o json` merges two sidecars.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::Instant;
use weft_tests::apps::fault_app::{Reply, grpc_frame};
use weft_tests::clients;
use weft_tests::mesh::policy_mesh::{Caller, PolicyMesh, policy};
use weft_tests::observe::metrics::metric_at;
use weft_tests::process::bins;
use weft_tests::wait;

const WEB: &str = "spiffe://cluster.local/ns/demo/sa/web";
const HELLO: &str = "spiffe://cluster.local/ns/demo/sa/hello";
const DEADLINE: Duration = Duration::from_secs(10);
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// One endpoint; gateway errors retried twice.
async fn mesh() -> PolicyMesh {
    let retries = "{limit: 2, on: [gateway-error], backoff: {base: 10ms, max: 20ms}}";
    let doc = policy(&format!(
        "  client:\n    defaults:\n      retries: {retries}\n"
    ));
    PolicyMesh::start(1, Some(&doc)).await
}

fn client_admin(mesh: &PolicyMesh) -> SocketAddr {
    mesh.client.admin_addr
}

fn server_admin(mesh: &PolicyMesh) -> SocketAddr {
    mesh.backends[0].proxy.as_ref().unwrap().admin_addr
}

/// An open `GET /tap` stream, read line by line.
struct Tap {
    body: hyper::body::Incoming,
    pending: Vec<u8>,
    /// Every byte received, to search for what must never appear.
    raw: String,
}

impl Tap {
    /// Opens `/tap?query` on `admin`; returns the status and the body when it is not 200.
    async fn open(admin: SocketAddr, query: &str) -> Result<Tap, (u16, String)> {
        let tcp = TcpStream::connect(admin).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let request = http::Request::get(format!("/tap?{query}"))
            .header("host", "admin")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        if status != 200 {
            let body = response.into_body().collect().await.unwrap().to_bytes();
            return Err((status, String::from_utf8_lossy(&body).into_owned()));
        }
        assert_eq!(
            response.headers()["content-type"],
            "application/x-ndjson",
            "{query}"
        );
        Ok(Tap {
            body: response.into_body(),
            pending: Vec::new(),
            raw: String::new(),
        })
    }

    /// The next `n` lines, each a JSON object.
    async fn lines(&mut self, n: usize) -> Vec<Value> {
        let mut out = Vec::new();
        let give_up = Instant::now() + DEADLINE;
        while out.len() < n {
            if let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                let text = String::from_utf8(line).unwrap();
                out.push(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")));
                continue;
            }
            let frame = tokio::time::timeout_at(give_up, self.body.frame())
                .await
                .unwrap_or_else(|_| panic!("{n} tap lines within {DEADLINE:?}; got {out:#?}"))
                .expect("the stream goes on")
                .unwrap();
            if let Ok(data) = frame.into_data() {
                self.raw.push_str(&String::from_utf8_lossy(&data));
                self.pending.extend_from_slice(&data);
            }
        }
        out
    }
}

/// A unary gRPC call over HTTP/2 through `addr`: its `grpc-status`.
async fn grpc_call(addr: SocketAddr, path: &str) -> Option<u64> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let request = http::Request::post(format!("http://hello.demo:8080{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(http_body_util::Full::new(grpc_frame(b"hi")))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected.trailers()?;
    trailers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// The events of `lines` (not `{"dropped":N}`), sorted by path then status.
fn sorted(mut lines: Vec<Value>) -> Vec<Value> {
    lines.sort_by_key(|e| (e["path"].to_string(), e["status"].to_string()));
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_match_the_requests_on_both_sides_and_hide_what_they_must() {
    let mesh = mesh().await;
    mesh.app(0)
        .script("/flaky", [Reply::status(503), Reply::ok()]);
    mesh.app(0).script("/missing", [Reply::status(404)]);
    let mut outbound = Tap::open(client_admin(&mesh), "").await.unwrap();
    let mut inbound = Tap::open(server_admin(&mesh), "direction=inbound")
        .await
        .unwrap();
    let mut errors = Tap::open(server_admin(&mesh), "status=5xx").await.unwrap();

    let headers = [
        ("user-agent", "tap-test/1"),
        ("authorization", "Bearer hunter2"),
        ("x-private", "hunter2"),
        ("traceparent", TRACEPARENT),
    ];
    for path in ["/ok?secret=1", "/missing", "/flaky"] {
        clients::get_with_headers(mesh.addr(), path, "hello.demo:8080", &headers)
            .await
            .unwrap();
    }

    // The caller's side: three requests, the flaky one answered on its second attempt.
    let out = sorted(outbound.lines(3).await);
    let expected = [("/flaky", 200, 2), ("/missing", 404, 1), ("/ok", 200, 1)];
    for (event, (path, status, attempts)) in out.iter().zip(expected) {
        assert_eq!(event["direction"], "outbound", "{event}");
        assert_eq!(event["method"], "GET", "{event}");
        assert_eq!(event["authority"], "hello.demo:8080", "{event}");
        assert_eq!(event["path"], path, "{event}");
        assert_eq!(event["status"], status, "{event}");
        assert_eq!(event["attempts"], attempts, "{event}");
        assert_eq!(event["source"], WEB, "{event}");
        assert_eq!(event["destination"], HELLO, "{event}");
        assert_eq!(event["service"], "hello.demo", "{event}");
        assert_eq!(event["route"], "default", "{event}");
        assert_eq!(event["weft_error"], Value::Null, "{event}");
        assert_eq!(event["grpc_status"], Value::Null, "{event}");
        assert_eq!(
            event["headers"],
            serde_json::json!({"user-agent": "tap-test/1"})
        );
        assert_eq!(
            event["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736",
            "{event}"
        );
        assert!(event["latency_ms"].as_f64().unwrap() > 0.0, "{event}");
        assert!(event["time"].as_str().unwrap().ends_with('Z'), "{event}");
    }

    // The server's side sees each attempt: the flaky path twice.
    let seen = sorted(inbound.lines(4).await);
    let expected = [
        ("/flaky", 200),
        ("/flaky", 503),
        ("/missing", 404),
        ("/ok", 200),
    ];
    for (event, (path, status)) in seen.iter().zip(expected) {
        assert_eq!(event["direction"], "inbound", "{event}");
        assert_eq!(
            (
                event["path"].as_str().unwrap(),
                event["status"].as_u64().unwrap()
            ),
            (path, status)
        );
        assert_eq!(event["source"], WEB, "{event}");
        assert_eq!(event["destination"], HELLO, "{event}");
        assert_eq!(event["attempts"], 1, "{event}");
        assert_eq!(
            event["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736",
            "{event}"
        );
    }

    // A gRPC call's status comes from its trailers.
    mesh.app(0).script("/pkg.Svc/Find", [Reply::grpc_error(5)]);
    assert_eq!(grpc_call(mesh.addr(), "/pkg.Svc/Find").await, Some(5));
    for event in [&outbound.lines(1).await[0], &inbound.lines(1).await[0]] {
        assert_eq!(event["path"], "/pkg.Svc/Find", "{event}");
        assert_eq!(event["method"], "POST", "{event}");
        assert_eq!(event["status"], 200, "{event}");
        assert_eq!(event["grpc_status"], 5, "{event}");
        assert_eq!(
            event["headers"]["content-type"], "application/grpc",
            "{event}"
        );
    }

    // A filtered session got the 503 alone.
    let only = errors.lines(1).await;
    assert_eq!(only[0]["status"], 503, "{only:?}");
    // The next one it gets is the next 5xx, not the 200 sent before it.
    mesh.app(0).script("/boom", [Reply::status(500)]);
    for path in ["/flaky", "/boom"] {
        clients::get_with_headers(mesh.addr(), path, "hello.demo:8080", &[])
            .await
            .unwrap();
    }
    let next = errors.lines(1).await;
    assert_eq!(
        (&next[0]["path"], &next[0]["status"]),
        (&"/boom".into(), &500.into())
    );

    for tap in [&outbound, &inbound, &errors] {
        assert!(!tap.raw.contains("secret"), "{}", tap.raw);
        assert!(!tap.raw.contains("hunter2"), "{}", tap.raw);
        assert!(!tap.raw.contains("x-private"), "{}", tap.raw);
    }
    assert_eq!(
        metric_at(server_admin(&mesh), "weft_tap_sessions").await,
        2.0
    );
    drop((outbound, inbound, errors));
    wait::until(DEADLINE, "the sessions to end", || async {
        (metric_at(server_admin(&mesh), "weft_tap_sessions").await == 0.0).then_some(())
    })
    .await;
    assert_eq!(
        metric_at(server_admin(&mesh), "weft_tap_sessions_total").await,
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_and_a_ninth_session_are_refused_and_counted() {
    let mesh = mesh().await;
    let admin = client_admin(&mesh);
    let (status, body) = Tap::open(admin, "status=7xx").await.err().unwrap();
    assert_eq!(
        (status, body.as_str()),
        (
            400,
            "bad tap query: status: \"7xx\" is neither a status code nor a class like 5xx\n"
        )
    );
    let mut open = Vec::new();
    for _ in 0..weft_proxy::telemetry::tap::MAX_SESSIONS {
        open.push(Tap::open(admin, "").await.unwrap());
    }
    let (status, body) = Tap::open(admin, "").await.err().unwrap();
    assert_eq!(
        (status, body.as_str()),
        (429, "this sidecar already serves 8 tap sessions\n")
    );
    let refused = |reason: &str| format!("weft_tap_refused_total{{reason=\"{reason}\"}}");
    assert_eq!(metric_at(admin, &refused("bad_query")).await, 1.0);
    assert_eq!(metric_at(admin, &refused("too_many_sessions")).await, 1.0);
    drop(open);
    wait::until(DEADLINE, "a session free again", || async {
        Tap::open(admin, "").await.ok()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_does_not_slow_requests() {
    const BATCH: usize = 200;
    let mesh = mesh().await;
    let mut caller = Caller::connect(mesh.addr()).await.unwrap();
    let mut timed_batch = async || {
        let started = Instant::now();
        for _ in 0..BATCH {
            let answer = tokio::time::timeout(DEADLINE, caller.get("/fast"))
                .await
                .expect("a request is never held up by tap")
                .unwrap();
            assert_eq!(answer.status, 200);
        }
        started.elapsed()
    };
    let untapped = timed_batch().await;

    // A tapping client on each side with a tiny receive window that never reads a byte.
    let mut stuck = Vec::new();
    for admin in [client_admin(&mesh), server_admin(&mesh)] {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut tcp = socket.connect(admin).await.unwrap();
        tcp.write_all(b"GET /tap?rate=1000 HTTP/1.1\r\nhost: admin\r\n\r\n")
            .await
            .unwrap();
        stuck.push(tcp);
    }
    let dropped = r#"weft_tap_events_dropped_total{reason="slow_reader"}"#;
    wait::until(DEADLINE, "both stuck sessions open", || async {
        let open = metric_at(client_admin(&mesh), "weft_tap_sessions").await == 1.0
            && metric_at(server_admin(&mesh), "weft_tap_sessions").await == 1.0;
        open.then_some(())
    })
    .await;
    // Requests until both sidecars drop events for the stuck readers (bounded: 20 batches).
    for round in 0.. {
        let client = metric_at(client_admin(&mesh), dropped).await;
        let server = metric_at(server_admin(&mesh), dropped).await;
        if client > 0.0 && server > 0.0 {
            break;
        }
        assert!(
            round < 20,
            "no events dropped after {round} batches: {client}, {server}"
        );
        timed_batch().await;
    }
    let tapped = timed_batch().await;
    assert!(
        tapped < untapped * 3 + Duration::from_millis(500),
        "{BATCH} requests took {tapped:?} with a stuck tap reader, {untapped:?} without"
    );
    assert_eq!(
        metric_at(client_admin(&mesh), "weft_tap_sessions").await,
        1.0
    );
    drop(stuck);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_tap_json_merges_two_sidecars_and_names_one_it_cannot_reach() {
    let mesh = mesh().await;
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let (client, server) = (client_admin(&mesh), server_admin(&mesh));
    let child = tokio::process::Command::new(bins::path("weft"))
        .args([
            "tap",
            &client.to_string(),
            &server.to_string(),
            &dead_addr.to_string(),
        ])
        .args(["--path", "/cli", "--max-events", "4", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait::until(DEADLINE, "weft tap's sessions on both sidecars", || async {
        let open = metric_at(client, "weft_tap_sessions").await == 1.0
            && metric_at(server, "weft_tap_sessions").await == 1.0;
        open.then_some(())
    })
    .await;
    let mut caller = Caller::connect(mesh.addr()).await.unwrap();
    caller.get("/other").await.unwrap();
    caller.get("/cli/a").await.unwrap();
    caller.get("/cli/b?token=x").await.unwrap();
    let output = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .expect("weft tap ends after --max-events")
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "a sidecar failed: {stderr}");
    assert_eq!(
        stderr.trim(),
        format!("error: tap {dead_addr}: cannot connect: Connection refused (os error 111)")
    );
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let mut seen: Vec<(String, String, String)> = events
        .iter()
        .map(|e| {
            (
                e["sidecar"].as_str().unwrap().to_owned(),
                e["direction"].as_str().unwrap().to_owned(),
                e["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    let mut expected = vec![
        (
            client.to_string(),
            "outbound".to_owned(),
            "/cli/a".to_owned(),
        ),
        (
            client.to_string(),
            "outbound".to_owned(),
            "/cli/b".to_owned(),
        ),
        (
            server.to_string(),
            "inbound".to_owned(),
            "/cli/a".to_owned(),
        ),
        (
            server.to_string(),
            "inbound".to_owned(),
            "/cli/b".to_owned(),
        ),
    ];
    expected.sort();
    assert_eq!(seen, expected, "{stdout}");
    for event in &events {
        assert_eq!(event["source"], WEB, "{event}");
        assert_eq!(event["destination"], HELLO, "{event}");
        assert_eq!(event["status"], 200, "{event}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_tap_prints_a_table_row_per_request() {
    let mesh = mesh().await;
    let admin = client_admin(&mesh);
    let child = tokio::process::Command::new(bins::path("weft"))
        .args([
            "tap",
            &admin.to_string(),
            "--max-events",
            "1",
            "--method",
            "GET",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait::until(DEADLINE, "weft tap's session", || async {
        (metric_at(admin, "weft_tap_sessions").await == 1.0).then_some(())
    })
    .await;
    Caller::connect(mesh.addr())
        .await
        .unwrap()
        .get("/table?q=1")
        .await
        .unwrap();
    let output = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .expect("weft tap ends after --max-events")
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "TIME",
            "DIR",
            "METHOD",
            "AUTHORITY",
            "PATH",
            "STATUS",
            "LATENCY",
            "SOURCE",
            "DESTINATION",
            "ROUTE",
            "TRIES",
            "ERROR"
        ]
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row.len(), 12, "{stdout}");
    assert_eq!(
        row[1..6],
        ["out", "GET", "hello.demo:8080", "/table", "200"],
        "{stdout}"
    );
    assert!(row[6].ends_with("ms"), "{stdout}");
    assert_eq!(
        row[7..],
        ["web.demo", "hello.demo", "default", "1", "-"],
        "{stdout}"
    );
}

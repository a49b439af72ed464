//! HTTP/1.1 as real clients and a raw app see it through the mesh (app → client sidecar →
//! mTLS/HTTP/2 → server sidecar → app): pipelining, early answers, chunked coding with trailers
//! both ways, `100-continue` and other 1xx, answers without a body, close-delimited answers, a
//! stale pooled connection, and request smuggling refused on both sidecars' HTTP/1 listeners.
//! These pin what a user sees whichever HTTP/1.1 codec the sidecars run.
//!
//! The app is a [`RecordingApp`]: tests assert on the exact bytes it received, which is what
//! the server sidecar wrote. curl and python's `http.client` are the clients where a real client
//! makes sense, a raw socket where exact bytes matter.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weft_proxy::RunningProxy;
use weft_tests::Mesh;
use weft_tests::apps::recording_app::{RecordingApp, Request, Step, answer};
use weft_tests::clients::raw_exchange;
use weft_tests::mesh::Sidecars;
use weft_tests::observe::metrics::metric_in;
use weft_tests::process::programs;

/// Each request-smuggling case, and the `reason` of `weft_proxy_errors_total{direction,reason}`
/// its 400 is counted under on the sidecar that refused it: `H1Error::reason` of the codec
/// (`proxy/src/http/h1/error.rs`).
const SMUGGLING_REASONS: [(&str, &str); 8] = [
    (
        "content_length_with_transfer_encoding",
        "content_length_with_transfer_encoding",
    ),
    ("two_different_content_lengths", "invalid_content_length"),
    ("obs_fold", "obs_fold"),
    ("bare_cr_in_a_header", "bare_cr"),
    ("chunk_size_minus_one", "invalid_chunk"),
    ("chunk_size_not_hex", "invalid_chunk"),
    ("chunk_size_of_17_hex_digits", "invalid_chunk"),
    ("chunk_extension_over_4_kib", "chunk_extension_too_long"),
];
/// The `weft-error` header of the 502 for an app answer the server sidecar refuses, and the
/// `reason` it is counted under there (`direction="inbound"`).
const AMBIGUOUS_ANSWER_REASON: &str = "app_http_error";

const HOUR: Duration = Duration::from_secs(3600);
const LIMIT: Duration = Duration::from_secs(10);
const HOST: &str = "hello.demo:8080";

/// The server sidecar in front of `app`, and a client sidecar whose first forward listener
/// leads to it.
async fn mesh_to(app: &RecordingApp) -> (Mesh, Sidecars) {
    let mesh = Mesh::start(HOUR).await;
    let sidecars = mesh.sidecars("web", "hello", app.addr).await;
    (mesh, sidecars)
}

/// `METHOD TARGET` and the body, as the app read a request: what the serving apps answer, so
/// the client can tell which request an answer belongs to.
fn describe(request: &Request) -> Vec<u8> {
    let mut said = format!("{} {} ", request.method(), request.target()).into_bytes();
    said.extend_from_slice(&request.body);
    answer("200 OK", &said)
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let app = RecordingApp::serving(describe).await;
    let (_mesh, sidecars) = mesh_to(&app).await;
    let pipelined = format!(
        "GET /first HTTP/1.1\r\nhost: {HOST}\r\n\r\n\
         POST /second HTTP/1.1\r\nhost: {HOST}\r\ncontent-length: 11\r\n\r\nhello world\
         POST /third HTTP/1.1\r\nhost: {HOST}\r\ntransfer-encoding: chunked\r\n\r\n\
         4\r\nbyte\r\n1\r\ns\r\n0\r\n\r\n\
         GET /fourth HTTP/1.1\r\nhost: {HOST}\r\nconnection: close\r\n\r\n"
    );
    // All four written at once, before any answer.
    let answers = raw_exchange(
        sidecars.client.forward_addrs[0],
        pipelined.into_bytes(),
        LIMIT,
    )
    .await;
    let expected = [
        "GET /first ",
        "POST /second hello world",
        "POST /third bytes",
        "GET /fourth ",
    ];
    let at: Vec<Option<usize>> = expected.iter().map(|body| answers.find(body)).collect();
    assert!(
        at.iter().all(Option::is_some) && at.is_sorted(),
        "each answer, in the order asked ({expected:?}); got:\n{answers}"
    );
    assert_eq!(
        answers.matches("HTTP/1.1 200 OK\r\n").count(),
        4,
        "{answers}"
    );
    // A length the caller gave is the length the app gets: no app has to take chunks for it.
    let second = app.requests().into_iter().find(|r| r.target() == "/second");
    let second = second.expect("the app read /second");
    assert_eq!(
        second.header("content-length"),
        Some("11"),
        "{}",
        second.head
    );
    assert_eq!(second.header("transfer-encoding"), None, "{}", second.head);
}

#[tokio::test]
async fn an_app_answering_before_it_reads_the_body_is_heard_while_the_body_is_still_coming() {
    let early = answer("413 Content Too Large", b"too large\n");
    // After its answer the app reads on (and discards) until the peer closes, as a server that
    // lingers on close does.
    let app = RecordingApp::start(vec![vec![Step::Head, Step::Write(early)]], Vec::new()).await;
    let (_mesh, sidecars) = mesh_to(&app).await;
    let mut tcp = TcpStream::connect(sidecars.client.forward_addrs[0])
        .await
        .unwrap();
    // 8 MiB announced and only 64 KiB sent: the answer has to come while the body is unfinished.
    let mut start = format!(
        "POST /upload HTTP/1.1\r\nhost: {HOST}\r\ncontent-length: {}\r\n\r\n",
        8 << 20
    )
    .into_bytes();
    start.extend(std::iter::repeat_n(b'x', 64 << 10));
    tcp.write_all(&start).await.unwrap();
    let head = tokio::time::timeout(LIMIT, read_head(&mut tcp))
        .await
        .expect("the answer arrives while the body is unfinished");
    assert!(head.starts_with("HTTP/1.1 413 "), "{head}");
    let seen = &app.connections()[0].received;
    assert!(
        seen.starts_with(b"POST /upload HTTP/1.1\r\n"),
        "{}",
        String::from_utf8_lossy(seen)
    );
}

/// Reads up to the end of a response head (or until the peer closes).
async fn read_head(tcp: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && tcp.read(&mut byte).await.unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test]
async fn a_chunked_request_body_reaches_the_app_with_its_trailers() {
    let app = RecordingApp::serving(describe).await;
    let (_mesh, sidecars) = mesh_to(&app).await;
    let request = format!(
        "POST /upload HTTP/1.1\r\nhost: {HOST}\r\ntransfer-encoding: chunked\r\n\
         trailer: x-checksum\r\nconnection: close\r\n\r\n\
         5\r\nhello\r\n6;name=value\r\n world\r\n0\r\nx-checksum: abc123\r\n\r\n"
    );
    let answers = raw_exchange(
        sidecars.client.forward_addrs[0],
        request.into_bytes(),
        LIMIT,
    )
    .await;
    assert!(answers.starts_with("HTTP/1.1 200 OK\r\n"), "{answers}");
    let requests = app.requests();
    assert_eq!(requests.len(), 1, "{}", app.received());
    let seen = &requests[0];
    assert_eq!(seen.body, b"hello world", "{}", app.received());
    // A body of unknown length goes on in chunks (how the sidecars cut it is theirs), and the
    // trailer the caller sent arrives after the last chunk.
    assert_eq!(
        seen.header("transfer-encoding"),
        Some("chunked"),
        "{}",
        seen.head
    );
    assert_eq!(
        seen.trailers.to_ascii_lowercase(),
        "x-checksum: abc123\r\n",
        "{}",
        app.received()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_answer_with_trailers_reaches_curl_intact() {
    if !programs::available("curl", "curl") {
        return;
    }
    let data = pattern(300 << 10);
    let mut chunked =
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-checksum\r\n\r\n".to_vec();
    for chunk in data.chunks(7000) {
        chunked.extend(format!("{:x}\r\n", chunk.len()).bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend(b"\r\n");
    }
    chunked.extend(b"0\r\nx-checksum: abc123\r\n\r\n");
    let app = RecordingApp::serving(move |_| chunked.clone()).await;
    let (mesh, sidecars) = mesh_to(&app).await;
    let body = mesh.dir.path().join("body");
    let head = mesh.dir.path().join("head");
    // `TE: trailers` says this client takes trailers (RFC 9110 6.5.1).
    let (output, text) = curl(
        sidecars.client.forward_addrs[0],
        "/chunked",
        &[
            "-H",
            "TE: trailers",
            "-D",
            &head.display().to_string(),
            "-o",
            &body.display().to_string(),
        ],
    )
    .await;
    assert!(output.status.success(), "{text}");
    assert!(std::fs::read(&body).unwrap() == data, "the body differs");
    let head = std::fs::read_to_string(&head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 "), "{head}");
    assert!(
        head.contains("x-checksum: abc123\r\n"),
        "the trailer: {head}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_expecting_100_continue_completes_its_upload() {
    if !programs::available("curl", "curl") {
        return;
    }
    let app = RecordingApp::serving(|request| {
        answer("200 OK", format!("{} bytes", request.body.len()).as_bytes())
    })
    .await;
    let (mesh, sidecars) = mesh_to(&app).await;
    let upload = mesh.dir.path().join("upload");
    let data = pattern(2 << 20);
    std::fs::write(&upload, &data).unwrap();
    // curl waits up to 20 s for `100 Continue` (or an answer) before it sends the body anyway:
    // done well within that, the expectation was answered.
    let (output, text) = curl(
        sidecars.client.forward_addrs[0],
        "/upload",
        &[
            "-H",
            "Expect: 100-continue",
            "--expect100-timeout",
            "20",
            "--data-binary",
            &format!("@{}", upload.display()),
            "-w",
            "\n%{http_code} %{time_total}",
        ],
    )
    .await;
    assert!(output.status.success(), "{text}");
    let (said, measured) = text.rsplit_once('\n').unwrap();
    assert_eq!(said, format!("{} bytes", data.len()), "{text}");
    let (status, seconds) = measured.split_once(' ').unwrap();
    assert_eq!(status, "200", "{text}");
    assert!(seconds.parse::<f64>().unwrap() < 10.0, "{text}");
    assert!(app.requests()[0].body == data, "the app's body differs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_informational_answer_before_the_final_one_is_not_taken_for_it() {
    if !programs::available("curl", "curl") {
        return;
    }
    let app = RecordingApp::serving(|_| {
        let mut hints =
            b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n".to_vec();
        hints.extend(answer("200 OK", b"final"));
        hints
    })
    .await;
    let (_mesh, sidecars) = mesh_to(&app).await;
    // Whether the 103 is passed on is the sidecars' choice; the final answer must be the 200.
    let (output, text) = curl(sidecars.client.forward_addrs[0], "/hints", &["-i"]).await;
    assert!(output.status.success(), "{text}");
    let last = text.rfind("HTTP/1.1 ").unwrap_or_default();
    assert!(text[last..].starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nfinal"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_204_and_304_leave_a_kept_alive_connection_usable() {
    if !programs::available("python3", "python3") {
        return;
    }
    let app = RecordingApp::serving(|request| match request.target() {
        // What a GET would carry, announced and not sent.
        "/head" => b"HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n".to_vec(),
        "/no-content" => b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
        "/not-modified" => {
            b"HTTP/1.1 304 Not Modified\r\netag: \"v1\"\r\ncontent-length: 1234\r\n\r\n".to_vec()
        }
        _ => answer("200 OK", b"after"),
    })
    .await;
    let (_mesh, sidecars) = mesh_to(&app).await;
    let forward = sidecars.client.forward_addrs[0];
    let script = format!(
        r#"
import http.client
conn = http.client.HTTPConnection("127.0.0.1", {port}, timeout=10)
for method, path in [("HEAD", "/head"), ("GET", "/no-content"), ("GET", "/not-modified"),
                     ("GET", "/after")]:
    conn.request(method, path, headers={{"host": "{HOST}"}})
    r = conn.getresponse()
    # A 304 may keep or drop the length a 200 would have (RFC 9110 8.6); it has no body.
    length = "-" if r.status == 304 else r.getheader("content-length")
    print(method, path, r.status, length, r.getheader("etag"), r.read())
"#,
        port = forward.port()
    );
    let (output, text) = python(&script).await;
    assert!(output.status.success(), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "HEAD /head 200 1234 None b''",
            "GET /no-content 204 None None b''",
            r#"GET /not-modified 304 - "v1" b''"#,
            "GET /after 200 5 None b'after'",
        ],
        "{text}"
    );
    let outbound = sidecars.client.metrics.render();
    assert_eq!(
        metric_in(
            &outbound,
            r#"weft_outbound_connections_total{protocol="http1"}"#
        ),
        1.0,
        "all four on the one kept-alive connection:\n{outbound}"
    );
    let asked: Vec<String> = app
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method(), r.target()))
        .collect();
    assert_eq!(
        asked,
        [
            "HEAD /head",
            "GET /no-content",
            "GET /not-modified",
            "GET /after"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_delimited_answer_reaches_curl_whole() {
    if !programs::available("curl", "curl") {
        return;
    }
    let data = pattern(256 << 10);
    let mut unframed =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n\r\n".to_vec();
    unframed.extend_from_slice(&data);
    // No length, no chunks: the body ends where the app closes.
    let app = RecordingApp::start(
        Vec::new(),
        vec![Step::Request, Step::Write(unframed), Step::Close],
    )
    .await;
    let (mesh, sidecars) = mesh_to(&app).await;
    let body = mesh.dir.path().join("body");
    let (output, text) = curl(
        sidecars.client.forward_addrs[0],
        "/unframed",
        &["-o", &body.display().to_string()],
    )
    .await;
    assert!(output.status.success(), "{text}");
    let received = std::fs::read(&body).unwrap();
    assert_eq!(received.len(), data.len(), "{text}");
    assert!(received == data, "the body differs");
}

#[tokio::test]
async fn a_pooled_connection_the_app_closed_while_idle_is_not_a_failed_request() {
    // Every app connection answers one request, then closes: each next request meets a pooled
    // connection the app has already closed.
    const ROUNDS: usize = 5;
    let app = RecordingApp::start(
        Vec::new(),
        vec![
            Step::Request,
            Step::Write(answer("200 OK", b"fresh")),
            Step::Close,
        ],
    )
    .await;
    let (_mesh, sidecars) = mesh_to(&app).await;
    for round in 0..ROUNDS {
        if round > 0 {
            weft_tests::wait::until(LIMIT, "the app to close its connection", || async {
                let closed = app.connections().get(round - 1).is_some_and(|c| c.ended);
                closed.then_some(())
            })
            .await;
        }
        let reply = weft_tests::clients::get(sidecars.client.forward_addrs[0], "/again", HOST)
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "round {round}: {reply:?}");
        assert_eq!(reply.body, "fresh", "round {round}");
    }
    let per_connection: Vec<usize> = app.connections().iter().map(|c| c.requests.len()).collect();
    assert_eq!(
        per_connection,
        vec![1; ROUNDS],
        "one request per app connection"
    );
}

/// One request-smuggling attempt, every byte written at once. Each carries `/smuggl` in its
/// request line or in a request hidden in its body, so any of it reaching the app shows.
fn smuggling_request(case: &str) -> Vec<u8> {
    let start = format!("POST /smuggling HTTP/1.1\r\nhost: {HOST}\r\n");
    let hidden = format!("GET /smuggled HTTP/1.1\r\nhost: {HOST}\r\n\r\n");
    let chunked = |size: &str| {
        format!("{start}transfer-encoding: chunked\r\n\r\n{size}\r\nabc\r\n0\r\n\r\n{hidden}")
    };
    let request = match case {
        "content_length_with_transfer_encoding" => format!(
            "{start}content-length: {}\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n{hidden}",
            5 + hidden.len()
        ),
        "two_different_content_lengths" => format!(
            "{start}content-length: 0\r\ncontent-length: {}\r\n\r\n{hidden}",
            hidden.len()
        ),
        "obs_fold" => format!("{start}x-folded: one\r\n two\r\ncontent-length: 0\r\n\r\n"),
        "bare_cr_in_a_header" => format!("{start}x-bare: one\rtwo\r\ncontent-length: 0\r\n\r\n"),
        "chunk_size_minus_one" => chunked("-1"),
        "chunk_size_not_hex" => chunked("zz"),
        // 2^64 + 3: a parser that wraps reads 3.
        "chunk_size_of_17_hex_digits" => chunked("10000000000000003"),
        "chunk_extension_over_4_kib" => {
            let extension = "a".repeat(8 << 10);
            format!(
                "{start}transfer-encoding: chunked\r\n\r\n3;ext={extension}\r\nabc\r\n0\r\n\r\n"
            )
        }
        _ => unreachable!("no smuggling case {case}"),
    };
    request.into_bytes()
}

fn refusals(proxy: &RunningProxy, direction: &str, reason: &str) -> f64 {
    let series = format!(r#"weft_proxy_errors_total{{direction="{direction}",reason="{reason}"}}"#);
    metric_in(&proxy.metrics.render(), &series)
}

/// `case` sent to the client sidecar's outbound listener and, as a plaintext caller, to the
/// server sidecar's inbound listener: each answers 400 and counts it, and the app receives
/// nothing of it.
async fn smuggling_is_refused(case: &str) {
    let (_, reason) = SMUGGLING_REASONS
        .into_iter()
        .find(|(name, _)| *name == case)
        .unwrap();
    let app = RecordingApp::serving(describe).await;
    let (_mesh, sidecars) = mesh_to(&app).await;
    let listeners: [(SocketAddr, &str, &RunningProxy); 2] = [
        (
            sidecars.client.forward_addrs[0],
            "outbound",
            &sidecars.client,
        ),
        (sidecars.server.inbound_addr, "inbound", &sidecars.server),
    ];
    // Both listeners are tried before anything is asserted, so a failure says what each did.
    let mut wrong = Vec::new();
    for (addr, direction, proxy) in listeners {
        let before = (refusals(proxy, direction, reason), app.received());
        let answers = raw_exchange(addr, smuggling_request(case), LIMIT).await;
        let after = (refusals(proxy, direction, reason), app.received());
        if !answers.starts_with("HTTP/1.1 400 ") || answers.matches("HTTP/1.1 ").count() != 1 {
            wrong.push(format!(
                "{direction}: not one 400 and a close, but {answers:?}"
            ));
        }
        if after.1.len() != before.1.len() {
            wrong.push(format!(
                "{direction}: the app received it; in all {:?}",
                after.1
            ));
        }
        if after.0 != before.0 + 1.0 {
            wrong.push(format!(
                "{direction}: {reason} counted {} times, not once",
                after.0 - before.0
            ));
        }
    }
    assert!(wrong.is_empty(), "{case}:\n{}", wrong.join("\n"));
    // Whatever is still on its way to the app is ahead of a good request on each listener.
    for (addr, direction, _) in listeners {
        let good = format!("GET /good HTTP/1.1\r\nhost: {HOST}\r\nconnection: close\r\n\r\n");
        let answers = raw_exchange(addr, good.into_bytes(), LIMIT).await;
        assert!(
            answers.starts_with("HTTP/1.1 200 "),
            "{direction}: {answers}"
        );
    }
    let received = app.received();
    assert!(!received.contains("smuggl"), "{case}: {received}");
}

#[tokio::test]
async fn smuggling_content_length_with_transfer_encoding_is_refused() {
    smuggling_is_refused("content_length_with_transfer_encoding").await;
}

#[tokio::test]
async fn smuggling_two_different_content_lengths_is_refused() {
    smuggling_is_refused("two_different_content_lengths").await;
}

#[tokio::test]
async fn smuggling_obs_fold_is_refused() {
    smuggling_is_refused("obs_fold").await;
}

#[tokio::test]
async fn smuggling_bare_cr_in_a_header_is_refused() {
    smuggling_is_refused("bare_cr_in_a_header").await;
}

#[tokio::test]
async fn smuggling_chunk_size_minus_one_is_refused() {
    smuggling_is_refused("chunk_size_minus_one").await;
}

#[tokio::test]
async fn smuggling_chunk_size_not_hex_is_refused() {
    smuggling_is_refused("chunk_size_not_hex").await;
}

#[tokio::test]
async fn smuggling_chunk_size_of_17_hex_digits_is_refused() {
    smuggling_is_refused("chunk_size_of_17_hex_digits").await;
}

#[tokio::test]
async fn smuggling_chunk_extension_over_4_kib_is_refused() {
    smuggling_is_refused("chunk_extension_over_4_kib").await;
}

/// An app answer whose length is ambiguous (`head_fields`), followed by bytes that look like a
/// second answer: the caller gets a 502 naming the refusal, and none of the app's bytes.
async fn ambiguous_answer_is_refused(head_fields: &str) {
    if !programs::available("curl", "curl") {
        return;
    }
    let ambiguous = format!(
        "HTTP/1.1 200 OK\r\n{head_fields}\r\n\r\n0\r\n\r\n\
         HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nsmuggled\n"
    );
    let app = RecordingApp::serving(move |_| ambiguous.clone().into_bytes()).await;
    let (_mesh, sidecars) = mesh_to(&app).await;
    let (output, text) = curl(
        sidecars.client.forward_addrs[0],
        "/ambiguous",
        &["-i", "-o", "-"],
    )
    .await;
    let errors = |proxy: &RunningProxy| {
        let metrics = proxy.metrics.render();
        let lines = metrics
            .lines()
            .filter(|l| l.starts_with("weft_proxy_errors_total"));
        lines.collect::<Vec<_>>().join("\n")
    };
    let why = format!(
        "{text}\nclient sidecar: {}\nserver sidecar: {}",
        errors(&sidecars.client),
        errors(&sidecars.server)
    );
    assert!(output.status.success(), "{why}");
    assert!(text.starts_with("HTTP/1.1 502 "), "{why}");
    let lower = text.to_ascii_lowercase();
    assert!(
        lower.contains(&format!("weft-error: {AMBIGUOUS_ANSWER_REASON}\r\n")),
        "{text}"
    );
    assert!(!text.contains("smuggled"), "{text}");
    let series = format!(
        r#"weft_proxy_errors_total{{direction="inbound",reason="{AMBIGUOUS_ANSWER_REASON}"}}"#
    );
    let metrics = sidecars.server.metrics.render();
    assert!(metric_in(&metrics, &series) >= 1.0, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_answer_with_content_length_and_transfer_encoding_becomes_a_502() {
    ambiguous_answer_is_refused("content-length: 5\r\ntransfer-encoding: chunked").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_answer_with_two_different_content_lengths_becomes_a_502() {
    ambiguous_answer_is_refused("content-length: 5\r\ncontent-length: 26").await;
}

/// `len` bytes that differ along the way, so a lost, doubled or moved piece shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|n| (n / 1000 + n % 251) as u8).collect()
}

/// curl over HTTP/1.1 to `path` on `addr`, with `Host: HOST` and `args`: its output, and what
/// it printed (stdout then stderr).
async fn curl(addr: SocketAddr, path: &str, args: &[&str]) -> (std::process::Output, String) {
    let mut all: Vec<String> = ["-sS", "--http1.1", "--max-time", "30", "-H"]
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
    all.push(format!("host: {HOST}"));
    all.extend(args.iter().map(|a| (*a).to_owned()));
    all.push(format!("http://{addr}{path}"));
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = all.iter().map(String::as_str).collect();
        programs::run("curl", &args)
    })
    .await
    .unwrap()
}

/// `python3 -c script`: its output, and what it printed.
async fn python(script: &str) -> (std::process::Output, String) {
    let script = script.to_owned();
    tokio::task::spawn_blocking(move || programs::run("python3", &["-c", &script]))
        .await
        .unwrap()
}

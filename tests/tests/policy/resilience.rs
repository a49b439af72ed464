//! The client half of ServicePolicy, end to end: a control plane with a MeshService and a
//! ServicePolicy file, endpoint proxies fronting scriptable apps ([`FaultApp`]) on loopback
//! addresses of their own, and a caller's proxy whose listener is resolved through discovery.
//!
//! Each test scripts what the apps answer, sends requests through the caller's proxy and checks
//! both what the caller got and what the apps saw (attempts, their `weft-attempt` numbers, their
//! arrival times, whether their handling was cancelled). Timings are hundreds of milliseconds so
//! the file stays well under a minute; tolerances are stated where they are used.
//!
//! The tests run one at a time (see [`serial`]): they assert on timings, and the machine is small.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Version};
use http_body_util::{BodyExt, Full};
use tokio::time::Instant;
use weft_tests::apps::fault_app::{
    FaultApp, Outcome, Reply, SeenRequest, grpc_frame, times, wait_count,
};
use weft_tests::clients::traffic::Traffic;
use weft_tests::mesh::policy_mesh::{Answer, Caller, PolicyMesh, policy, send};
use weft_tests::ports::free_port;
use weft_tests::process::local_peer::{LocalPeer, python_with, run_client};
use weft_tests::{clients, wait};

use crate::serial;

/// Latency a request may add on top of a scripted time (two proxies on loopback, debug build,
/// shared machine).
const SLACK: Duration = Duration::from_millis(150);

async fn get(mesh: &PolicyMesh, path: &str) -> Answer {
    send(mesh.addr(), Method::GET, path, Bytes::new())
        .await
        .unwrap_or_else(|e| panic!("GET {path} through the caller's proxy: {e}"))
}

async fn post(mesh: &PolicyMesh, path: &str, body: Bytes) -> Answer {
    send(mesh.addr(), Method::POST, path, body)
        .await
        .unwrap_or_else(|e| panic!("POST {path} through the caller's proxy: {e}"))
}

fn attempts(seen: &[SeenRequest]) -> Vec<Option<u32>> {
    seen.iter().map(SeenRequest::attempt).collect()
}

/// The gaps between consecutive arrivals.
fn gaps(seen: &[SeenRequest]) -> Vec<Duration> {
    seen.windows(2).map(|w| w[1].at - w[0].at).collect()
}

/// `retries:` under `client.defaults`, with nothing else set.
fn with_retries(retries: &str) -> String {
    policy(&format!(
        "  client:\n    defaults:\n      retries: {retries}\n"
    ))
}

// ---------------------------------------------------------------------------------------------
// Retries

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_errors_are_retried_until_success_with_numbered_attempts() {
    let _serial = serial().await;
    let doc = with_retries("{limit: 2, on: [gateway-error], backoff: {base: 10ms, max: 50ms}}");
    let mesh = PolicyMesh::start(1, Some(&doc)).await;
    mesh.app(0)
        .script("/", [Reply::status(503), Reply::status(503), Reply::ok()]);

    let retries_series = r#"weft_outbound_retries_total{destination="hello.demo",route="default"}"#;
    let attempts_series =
        r#"weft_outbound_request_attempts_sum{destination="hello.demo",route="default"}"#;
    let retries_before = mesh.metric(retries_series).await;
    let attempts_before = mesh.metric(attempts_series).await;

    let answer = get(&mesh, "/hello").await;
    let seen = mesh.app(0).seen();
    assert_eq!(
        answer.status,
        200,
        "503, 503, 200 with limit 2: the third attempt's 200 (got {answer:?}; app saw {:?})",
        attempts(&seen)
    );
    assert_eq!(
        attempts(&seen),
        [None, Some(2), Some(3)],
        "three attempts: the first without weft-attempt, the retries numbered 2 and 3"
    );
    let retries = mesh.metric(retries_series).await - retries_before;
    assert_eq!(
        retries, 2.0,
        "weft_outbound_retries_total counts both retries"
    );
    let recorded = mesh.metric(attempts_series).await - attempts_before;
    assert_eq!(
        recorded, 3.0,
        "weft_outbound_request_attempts recorded 3 attempts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_one_returns_the_second_answer() {
    let _serial = serial().await;
    let doc = with_retries("{limit: 1, on: [gateway-error], backoff: {base: 10ms, max: 50ms}}");
    let mesh = PolicyMesh::start(1, Some(&doc)).await;
    mesh.app(0).script(
        "/",
        [
            Reply::status(503).body("first"),
            Reply::status(503).body("second"),
            Reply::ok(),
        ],
    );

    let answer = get(&mesh, "/hello").await;
    assert_eq!(
        answer.status, 503,
        "limit 1: two attempts, both 503 ({answer:?})"
    );
    assert_eq!(
        answer.body, "second",
        "the last attempt's answer is returned"
    );
    assert_eq!(
        answer.weft_error(),
        None,
        "the app's answer, not one weft made"
    );
    assert_eq!(attempts(&mesh.app(0).seen()), [None, Some(2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_policy_an_app_503_is_not_retried_whatever_the_method() {
    let _serial = serial().await;
    let mesh = PolicyMesh::start(1, None).await;
    for method in [Method::POST, Method::GET] {
        mesh.app(0).clear();
        mesh.app(0).script("/", [Reply::status(503), Reply::ok()]);
        let answer = send(mesh.addr(), method.clone(), "/create", Bytes::from("x"))
            .await
            .unwrap();
        assert_eq!(
            answer.status, 503,
            "built-in policy: the app's 503 to {method} comes back ({answer:?})"
        );
        assert_eq!(mesh.app(0).count(), 1, "{method}: the app saw one attempt");
    }
}

const CREATE_ROUTES: &str = "  routes:
    - name: create
      match: {path: /create, methods: [POST]}
";

fn non_idempotent_policy() -> String {
    policy(&format!(
        "{CREATE_ROUTES}  client:
    defaults:
      retries:
        limit: 2
        on: [gateway-error]
        backoff: {{base: 10ms, max: 50ms}}
        maxBufferedBody: 64KiB
    overrides:
      - routes: [create]
        retries: {{limit: 2, on: [gateway-error], nonIdempotent: true}}
"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_is_retried_only_on_a_route_acknowledged_non_idempotent() {
    let _serial = serial().await;
    let mesh = PolicyMesh::start(1, Some(&non_idempotent_policy())).await;
    let app = mesh.app(0);

    app.script("/create", [Reply::status(503), Reply::ok()]);
    let answer = post(&mesh, "/create", Bytes::from("order")).await;
    assert_eq!(
        answer.status, 200,
        "POST /create is acknowledged: retried ({answer:?})"
    );
    let seen = app.seen_path("/create");
    assert_eq!(attempts(&seen), [None, Some(2)]);
    assert!(
        seen.iter().all(|r| r.body_len == Some(5)),
        "the retry carries the whole body again: {seen:?}"
    );

    app.script("/other", [Reply::status(503), Reply::ok()]);
    let answer = post(&mesh, "/other", Bytes::from("order")).await;
    assert_eq!(
        answer.status, 503,
        "POST outside the acknowledged route is not retried ({answer:?})"
    );
    assert_eq!(app.seen_path("/other").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_max_buffered_body_is_sent_once() {
    let _serial = serial().await;
    let mesh = PolicyMesh::start(1, Some(&non_idempotent_policy())).await;
    let app = mesh.app(0);
    app.script("/create", [Reply::status(503), Reply::ok()]);

    let big = Bytes::from(vec![b'b'; 100 * 1024]);
    let answer = post(&mesh, "/create", big).await;
    assert_eq!(
        answer.status, 503,
        "a 100 KiB body over maxBufferedBody 64KiB cannot be replayed: the 503 comes back \
         ({answer:?})"
    );
    let seen = app.seen();
    assert_eq!(
        seen.len(),
        1,
        "the app got the big body exactly once: {seen:?}"
    );
    assert_eq!(seen[0].body_len, Some(100 * 1024), "and all of it");
}

// ---------------------------------------------------------------------------------------------
// gRPC

fn grpc_policy() -> String {
    policy(
        "  routes:
    - name: say
      match: {grpc: {service: test.Greeter, method: Say}}
  client:
    defaults:
      retries: {limit: 2, on: [gateway-error, \"grpc:unavailable\"], backoff: {base: 10ms, max: 50ms}}
",
    )
}

/// A gRPC unary call through the caller's proxy with a Rust HTTP/2 client: `(grpc-status,
/// message bytes)`; the status is read from trailers, or from headers (trailers-only).
async fn grpc_call(mesh: &PolicyMesh, path: &str) -> (Option<String>, Bytes) {
    let mut sender = clients::h2(mesh.addr()).await;
    let request = Request::post(format!("http://hello.demo:8080{path}"))
        .version(Version::HTTP_2)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(
            Full::new(grpc_frame(b"world"))
                .map_err(|never| match never {})
                .boxed(),
        )
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let in_headers = response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned());
    let collected = response.into_body().collect().await.unwrap();
    let in_trailers = collected
        .trailers()
        .and_then(|t| t.get("grpc-status"))
        .map(|v| v.to_str().unwrap().to_owned());
    (in_trailers.or(in_headers), collected.to_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_status_in_trailers_decides_retries() {
    let _serial = serial().await;
    let mesh = PolicyMesh::start(1, Some(&grpc_policy())).await;
    let app = mesh.app(0);

    app.script(
        "/test.Greeter/Say",
        [
            Reply::grpc_error(14),
            Reply::grpc_error(14),
            Reply::grpc_ok("hi"),
        ],
    );
    let (status, message) = grpc_call(&mesh, "/test.Greeter/Say").await;
    assert_eq!(
        status.as_deref(),
        Some("0"),
        "UNAVAILABLE (14) in trailers twice, then OK: retried to OK"
    );
    assert_eq!(message, grpc_frame(b"hi"));
    assert_eq!(attempts(&app.seen()), [None, Some(2), Some(3)]);

    for code in [7, 3] {
        app.clear();
        app.script(
            "/test.Greeter/Say",
            [Reply::grpc_error(code), Reply::grpc_ok("hi")],
        );
        let (status, _) = grpc_call(&mesh, "/test.Greeter/Say").await;
        assert_eq!(
            status,
            Some(code.to_string()),
            "grpc-status {code} is not a retry condition: returned as is"
        );
        assert_eq!(app.count(), 1, "grpc-status {code}: one attempt");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_unavailable_is_retried_and_permission_denied_is_not() {
    let Some(python) = python_with("grpc") else {
        return;
    };
    let _serial = serial().await;
    let port = free_port();
    let _server = LocalPeer::spawn(&python, &["grpc-fault-server", &port.to_string()]);
    let app = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mesh = PolicyMesh::start_in_front_of(app, Some(&grpc_policy())).await;
    let addr = mesh.addr().to_string();

    for (key, code, times, want_code, want_count) in [
        ("unavailable", "UNAVAILABLE", "2", "OK", 3),
        ("denied", "PERMISSION_DENIED", "1", "PERMISSION_DENIED", 1),
        ("invalid", "INVALID_ARGUMENT", "1", "INVALID_ARGUMENT", 1),
    ] {
        let (python, addr) = (python.clone(), addr.clone());
        let result = tokio::task::spawn_blocking(move || {
            run_client(
                &python,
                &["grpc-fault-call", &addr, key, code, times],
                Duration::from_secs(20),
            )
        })
        .await
        .unwrap();
        assert_eq!(
            result["code"], want_code,
            "{code} × {times} through the caller's proxy: {result}"
        );
        assert_eq!(
            result["count"], want_count,
            "the grpcio server saw {want_count} Say calls for {code}: {result}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Backoff and pushback

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backoff_waits_stay_inside_the_full_jitter_window() {
    let _serial = serial().await;
    let doc = policy(
        "  client:
    defaults:
      retries:
        limit: 3
        on: [gateway-error]
        backoff: {base: 100ms, max: 400ms}
        budget: {ratio: 0.2, minPerSecond: 100, window: 10s}
      circuitBreaker: {consecutiveFailures: 0}
",
    );
    let mesh = PolicyMesh::start(1, Some(&doc)).await;
    let app = mesh.app(0);
    // Windows of the 1st, 2nd, 3rd retry: min(base·2^(n-1), max).
    let windows = [100, 200, 400].map(Duration::from_millis);
    let tolerance = Duration::from_millis(60);
    let mut all_gaps = Vec::new();
    for round in 0..4 {
        app.clear();
        app.script("/", times(4, Reply::status(503)));
        let answer = get(&mesh, "/backoff").await;
        assert_eq!(answer.status, 503, "round {round}: every attempt 503");
        let seen = app.seen();
        assert_eq!(seen.len(), 4, "round {round}: limit 3, four attempts");
        for (n, (gap, window)) in gaps(&seen).iter().zip(windows).enumerate() {
            assert!(
                *gap < window + tolerance,
                "round {round}: retry {} waited {gap:?}, outside [0, {window:?}) + {tolerance:?}",
                n + 1
            );
            all_gaps.push(*gap);
        }
    }
    assert!(
        all_gaps.iter().any(|g| *g >= Duration::from_millis(10)),
        "12 retries and none waited 10 ms: no backoff at all? {all_gaps:?}"
    );
}

/// A 503 carrying `Retry-After: <retry_after>`, retried under `pushback: {max: <pushback_max>}`:
/// the answer (the retry's 200) and the gap between the two attempts.
async fn pushback_gap(pushback_max: &str, retry_after: &str) -> (Answer, Duration) {
    let doc = with_retries(&format!(
        "{{limit: 1, on: [gateway-error], backoff: {{base: 10ms, max: 20ms}}, pushback: {{max: {pushback_max}}}}}"
    ));
    let mesh = PolicyMesh::start(1, Some(&doc)).await;
    let app = mesh.app(0);
    app.script(
        "/",
        [
            Reply::status(503).header("retry-after", retry_after),
            Reply::ok(),
        ],
    );
    let answer = get(&mesh, "/pushback").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let gap = gaps(&app.seen())[0];
    (answer, gap)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_sets_the_next_attempts_time() {
    let _serial = serial().await;
    let (_, gap) = pushback_gap("5s", "1").await;
    assert!(
        gap >= Duration::from_millis(980) && gap < Duration::from_secs(1) + SLACK * 2,
        "Retry-After: 1 → the retry arrives about 1 s later, not after {gap:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_capped_by_pushback_max() {
    let _serial = serial().await;
    let (answer, gap) = pushback_gap("500ms", "30").await;
    assert!(
        gap <= Duration::from_millis(500) + SLACK,
        "Retry-After: 30 capped by pushback.max 500ms; the retry came {gap:?} later"
    );
    assert!(answer.elapsed < Duration::from_secs(2), "{answer:?}");
}

// ---------------------------------------------------------------------------------------------
// Budget

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_caps_retries_when_everything_fails() {
    let _serial = serial().await;
    let doc = policy(
        "  client:
    defaults:
      retries:
        limit: 3
        on: [gateway-error]
        backoff: {base: 1ms, max: 5ms}
        budget: {ratio: 0.2, minPerSecond: 1, window: 10s}
      circuitBreaker: {consecutiveFailures: 0}
",
    );
    let mesh = PolicyMesh::start(1, Some(&doc)).await;
    let app = mesh.app(0);
    app.set_default(Reply::status(503));

    const REQUESTS: usize = 100;
    let started = Instant::now();
    let mut caller = Caller::connect(mesh.addr()).await.unwrap();
    for i in 0..REQUESTS {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "100 requests took over 20 s (at {i})"
        );
        let answer = caller.get("/budget").await.unwrap();
        assert_eq!(
            answer.status, 503,
            "request {i}: the last answer, {answer:?}"
        );
        assert_eq!(
            answer.weft_error(),
            None,
            "request {i}: an exhausted budget returns the app's answer, not weft's"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let seen = app.count() as f64;
    // retries ≤ ratio × requests + minPerSecond × seconds; "seconds" taken as the larger of the
    // run and the window (10 s), whichever reading of the contract the proxy took.
    let bound = 1.2 * REQUESTS as f64 + 1.0 * seconds.max(10.0) + 5.0;
    assert!(
        seen <= bound,
        "{REQUESTS} requests failing with 503, limit 3 (up to {} attempts) in {seconds:.1} s: \
         the app saw {seen}, over the budget's bound {bound}",
        REQUESTS * 4
    );
    assert!(
        seen > REQUESTS as f64,
        "some retries were allowed ({seen} attempts)"
    );
    let exhausted = mesh
        .metric(r#"weft_outbound_retry_budget_exhausted_total{destination="hello.demo"}"#)
        .await;
    assert!(
        exhausted > 0.0,
        "weft_outbound_retry_budget_exhausted_total is {exhausted}"
    );
}

// ---------------------------------------------------------------------------------------------
// Timeouts

fn cancelled_at(seen: &SeenRequest) -> Option<Instant> {
    match seen.outcome {
        Outcome::Cancelled(at) => Some(at),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_timeout_answers_504_at_the_deadline() {
    let _serial = serial().await;
    let doc = policy(
        "  client:
    defaults:
      timeouts: {request: 500ms}
      retries: {limit: 0}
",
    );
    let mesh = PolicyMesh::start(1, Some(&doc)).await;
    let app = mesh.app(0);
    app.set_default(Reply::ok().after(Duration::from_secs(5)));

    let sent = Instant::now();
    let answer = get(&mesh, "/slow").await;
    assert_eq!(answer.status, 504, "{answer:?}");
    assert_eq!(answer.weft_error(), Some("timeout"), "{answer:?}");
    let deadline = Duration::from_millis(500);
    assert!(
        answer.elapsed >= deadline - SLACK && answer.elapsed <= deadline + SLACK,
        "504 after {:?}, expected 500ms ± {SLACK:?}",
        answer.elapsed
    );
    let seen = wait::until(
        Duration::from_secs(2),
        "the app's request cancelled",
        || async {
            let seen = app.seen();
            (seen.len() == 1 && cancelled_at(&seen[0]).is_some()).then_some(seen)
        },
    )
    .await;
    let cancelled = cancelled_at(&seen[0]).unwrap() - sent;
    assert!(
        cancelled <= deadline + SLACK,
        "the attempt outlived the deadline: cancelled {cancelled:?} after the request was sent"
    );
    let timeouts = mesh
        .metric(r#"weft_outbound_timeouts_total{destination="hello.demo",kind="request"}"#)
        .await;
    assert_eq!(timeouts, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_try_timeout_is_retried() {
    let _serial = serial().await;
    let doc = policy(
        "  client:
    defaults:
      timeouts: {request: 2s, perTry: 200ms}
      retries: {limit: 2, on: [gateway-error], backoff: {base: 10ms, max: 20ms}}
",
    );
    let mesh = PolicyMesh::start(1, Some(&doc)).await;
    let app = mesh.app(0);
    app.script(
        "/",
        [
            Reply::ok().body("slow").after(Duration::from_secs(5)),
            Reply::ok().body("fast"),
        ],
    );

    let answer = get(&mesh, "/try").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body, "fast", "the second attempt's answer");
    let seen = app.seen();
    assert_eq!(attempts(&seen), [None, Some(2)]);
    let gap = seen[1].at - seen[0].at;
    assert!(
        gap >= Duration::from_millis(190) && gap <= Duration::from_millis(200) + SLACK,
        "the retry follows the 200ms per-try expiry, not {gap:?} later"
    );
    let first = wait::until(Duration::from_secs(2), "attempt 1 cancelled", || async {
        cancelled_at(&app.seen()[0])
    })
    .await;
    assert!(
        first - seen[0].at <= Duration::from_millis(200) + SLACK,
        "attempt 1 was abandoned {:?} after it arrived",
        first - seen[0].at
    );
    let per_try = mesh
        .metric(r#"weft_outbound_timeouts_total{destination="hello.demo",kind="per_try"}"#)
        .await;
    assert_eq!(per_try, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_attempt_outlives_the_request_deadline() {
    let _serial = serial().await;
    let doc = policy(
        "  client:
    defaults:
      timeouts: {request: 600ms, perTry: 300ms}
      retries: {limit: 1, on: [gateway-error], backoff: {base: 50ms, max: 100ms}}
",
    );
    let mesh = PolicyMesh::start(1, Some(&doc)).await;
    let app = mesh.app(0);
    app.set_default(Reply::ok().after(Duration::from_secs(5)));

    let sent = Instant::now();
    let answer = get(&mesh, "/never").await;
    assert_eq!(answer.status, 504, "{answer:?}");
    assert_eq!(answer.weft_error(), Some("timeout"));
    let deadline = sent + Duration::from_millis(600);
    let seen = wait::until(
        Duration::from_secs(3),
        "every attempt cancelled",
        || async {
            let seen = app.seen();
            seen.iter()
                .all(|r| cancelled_at(r).is_some())
                .then_some(seen)
        },
    )
    .await;
    // The second attempt starts after 300 ms and a backoff, and the deadline cuts it.
    assert_eq!(
        seen.len(),
        2,
        "600ms with 300ms per try and limit 1: two attempts"
    );
    for (i, r) in seen.iter().enumerate() {
        let end = cancelled_at(r).unwrap();
        assert!(
            r.at < deadline,
            "attempt {} started after the deadline",
            i + 1
        );
        assert!(
            end <= deadline + SLACK,
            "attempt {} was still running {:?} after the request deadline",
            i + 1,
            end - deadline
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Circuit breaking

fn breaker_policy(consecutive: u32, base: &str, max_ejected: u32) -> String {
    policy(&format!(
        "  client:
    defaults:
      retries: {{limit: 0}}
      circuitBreaker:
        consecutiveFailures: {consecutive}
        failureOn: [\"5xx\"]
        penalty: {{base: {base}, max: 60s, jitter: 0}}
        maxEjectedPercent: {max_ejected}
"
    ))
}

/// Polls until `app` has seen `n` requests (the load keeps running meanwhile).
async fn nth_arrival(app: &FaultApp, n: usize, deadline: Duration) -> Instant {
    wait_count(app, n, deadline).await[n - 1].at
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_is_ejected_probed_and_restored() {
    let _serial = serial().await;
    let mesh = PolicyMesh::start(2, Some(&breaker_policy(3, "1s", 50))).await;
    let (good, bad) = (mesh.app(0), mesh.app(1));
    bad.set_default(Reply::status(500));
    // Three callers at once: with requests overlapping, the balancer's in-flight counts spread
    // them over both endpoints (one sequential caller would get the cheaper endpoint every time).
    let load = Traffic::start(
        mesh.addr(),
        "/breaker",
        3,
        Duration::from_millis(15),
        1_000,
        Duration::from_secs(12),
    );

    // Three consecutive 500s eject it.
    let ejected = nth_arrival(bad, 3, Duration::from_secs(5)).await;
    let state = wait::until(Duration::from_millis(500), "endpoint 1 open", || async {
        mesh.endpoint_state(1).await.filter(|s| s == "open")
    })
    .await;
    assert_eq!(state, "open");
    let gauge = mesh
        .metric(r#"weft_outbound_endpoint_ejected{destination="hello.demo"}"#)
        .await;
    assert_eq!(gauge, 1.0, "one endpoint ejected, by the gauge");

    // One probe after the 1 s penalty (jitter 0).
    let probe = nth_arrival(bad, 4, Duration::from_secs(3)).await;
    // The probe's reply is chosen as it arrives: let it be answered (500) before the fix.
    wait::until(Duration::from_secs(1), "the probe answered", || async {
        matches!(bad.seen()[3].outcome, Outcome::Answered(_)).then_some(())
    })
    .await;
    let penalty = probe - ejected;
    assert!(
        penalty >= Duration::from_millis(980) && penalty <= Duration::from_secs(1) + SLACK * 2,
        "the first probe came {penalty:?} after the ejection, expected the 1s penalty"
    );
    // It fails: ejected again, for twice as long. Fix the app so the next probe succeeds.
    bad.set_default(Reply::ok());
    let second = nth_arrival(bad, 5, Duration::from_secs(4)).await;
    let penalty = second - probe;
    assert!(
        penalty >= Duration::from_millis(1980) && penalty <= Duration::from_secs(2) + SLACK * 2,
        "after a failed probe the penalty doubles: the next probe came {penalty:?} later"
    );
    // The probe succeeded: closed, traffic shared again.
    let back = wait::until(
        Duration::from_secs(5),
        "endpoint 1 to get traffic back",
        || async { (bad.count() >= 8).then(|| bad.count()) },
    )
    .await;
    let answers = load.stop().await;
    assert!(back >= 8);
    assert_eq!(mesh.endpoint_state(1).await.as_deref(), Some("closed"));
    let failed: Vec<_> = answers
        .iter()
        .filter(|s| !matches!(&s.answer, Ok(a) if a.status == 200 || a.status == 500))
        .collect();
    assert!(failed.is_empty(), "only the apps' answers: {failed:?}");
    assert!(good.count() > 0);
    let opened = mesh
        .metric(r#"weft_outbound_breaker_transitions_total{destination="hello.demo",to="open"}"#)
        .await;
    assert_eq!(opened, 2.0, "ejected twice");
    let closed = mesh
        .metric(r#"weft_outbound_breaker_transitions_total{destination="hello.demo",to="closed"}"#)
        .await;
    assert_eq!(closed, 1.0, "closed once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_ejected_percent_keeps_half_the_endpoints() {
    let _serial = serial().await;
    let mesh = PolicyMesh::start(2, Some(&breaker_policy(3, "10s", 50))).await;
    for i in 0..2 {
        mesh.app(i).set_default(Reply::status(500));
    }
    let mut caller = Caller::connect(mesh.addr()).await.unwrap();
    let mut answers = Vec::new();
    for _ in 0..30 {
        answers.push(caller.get("/both").await.unwrap());
    }
    let states = mesh.endpoint_states().await;
    let open = states.iter().filter(|(_, s)| s == "open").count();
    assert_eq!(
        open, 1,
        "both endpoints fail, maxEjectedPercent 50: exactly one ejected; states {states:?}"
    );
    let shed: Vec<_> = answers
        .iter()
        .filter(|a| a.weft_error().is_some())
        .collect();
    assert!(
        shed.is_empty(),
        "the endpoint that may not be ejected keeps serving (its 500s): {shed:?}"
    );
    let mut ejected = None;
    for i in 0..2 {
        if mesh.endpoint_state(i).await.as_deref() == Some("open") {
            ejected = Some(i);
        }
    }
    let ejected = ejected.expect("one endpoint is open");
    let kept = 1 - ejected;
    assert_eq!(
        mesh.app(ejected).count(),
        3,
        "the ejected endpoint saw its 3 failures and nothing after"
    );
    assert_eq!(
        mesh.app(kept).count(),
        27,
        "the endpoint that may not be ejected took every other request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_endpoint_ejected_the_answer_is_a_fast_circuit_open() {
    let _serial = serial().await;
    let mesh = PolicyMesh::start(2, Some(&breaker_policy(2, "10s", 100))).await;
    for i in 0..2 {
        mesh.app(i).set_default(Reply::status(500));
    }
    let mut caller = Caller::connect(mesh.addr()).await.unwrap();
    for _ in 0..40 {
        let states = mesh.endpoint_states().await;
        if states.len() == 2 && states.iter().all(|(_, s)| s == "open") {
            break;
        }
        caller.get("/both").await.unwrap();
    }
    let states = mesh.endpoint_states().await;
    assert!(
        states.len() == 2 && states.iter().all(|(_, s)| s == "open"),
        "two failures each and maxEjectedPercent 100: both ejected; states {states:?}"
    );
    let seen = mesh.total_seen();
    let mut elapsed = Vec::new();
    for _ in 0..3 {
        let answer = caller.get("/both").await.unwrap();
        assert_eq!(answer.status, 503, "{answer:?}");
        assert_eq!(answer.weft_error(), Some("circuit_open"), "{answer:?}");
        elapsed.push(answer.elapsed);
    }
    assert_eq!(
        mesh.total_seen(),
        seen,
        "no endpoint saw the refused requests"
    );
    assert!(
        elapsed.iter().min().unwrap() < &Duration::from_millis(50)
            && elapsed.iter().max().unwrap() < &Duration::from_millis(200),
        "circuit_open is answered at once, not after {elapsed:?}"
    );
    let shed = mesh
        .metric(r#"weft_outbound_shed_total{destination="hello.demo",reason="circuit_open"}"#)
        .await;
    assert!(
        shed >= 3.0,
        "weft_outbound_shed_total{{reason=circuit_open}} is {shed}"
    );
}

// ---------------------------------------------------------------------------------------------
// Concurrency limits

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_max_concurrent_and_max_pending_requests_are_shed_at_once() {
    let _serial = serial().await;
    let doc = policy(
        "  client:
    defaults:
      retries: {limit: 0}
      limits: {maxConcurrent: 2, maxPending: 1, queueTimeout: 1500ms}
",
    );
    let mesh = PolicyMesh::start(1, Some(&doc)).await;
    let app = mesh.app(0);
    app.set_default(Reply::ok().after(Duration::from_secs(1)));

    let addr = mesh.addr();
    let calls: Vec<_> = (0..4)
        .map(|i| {
            tokio::spawn(async move {
                send(addr, Method::GET, &format!("/limited/{i}"), Bytes::new()).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap().unwrap());
    }
    let shed: Vec<&Answer> = answers.iter().filter(|a| a.status == 503).collect();
    assert_eq!(
        shed.len(),
        1,
        "2 in flight + 1 pending admitted, the 4th refused: {answers:?}"
    );
    assert_eq!(shed[0].weft_error(), Some("overloaded"), "{:?}", shed[0]);
    assert!(
        shed[0].elapsed < Duration::from_millis(100),
        "overloaded is answered at once, not after {:?}",
        shed[0].elapsed
    );
    let slow: Vec<_> = answers
        .iter()
        .filter(|a| a.status == 200 && a.elapsed > Duration::from_millis(1900))
        .collect();
    assert_eq!(
        slow.len(),
        1,
        "the pending one waited for a slot: {answers:?}"
    );
    assert_eq!(app.count(), 3);
    let in_flight_peak = peak_in_flight(&app.seen());
    assert!(
        in_flight_peak <= 2,
        "the app had {in_flight_peak} requests at once"
    );
    let overloaded = mesh
        .metric(r#"weft_outbound_shed_total{destination="hello.demo",reason="overloaded"}"#)
        .await;
    assert_eq!(overloaded, 1.0);
}

/// The most requests the app was handling at once, from arrival and end times.
fn peak_in_flight(seen: &[SeenRequest]) -> usize {
    let mut events: Vec<(Instant, i32)> = Vec::new();
    for r in seen {
        events.push((r.at, 1));
        if let Outcome::Answered(end) | Outcome::Cancelled(end) = r.outcome {
            events.push((end, -1));
        }
    }
    // An end before a start at the same instant.
    events.sort();
    let (mut now, mut peak) = (0i32, 0i32);
    for (_, delta) in events {
        now += delta;
        peak = peak.max(now);
    }
    usize::try_from(peak).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_needs_a_slot_like_any_attempt() {
    let _serial = serial().await;
    let doc = policy(
        "  client:
    defaults:
      retries: {limit: 1, on: [gateway-error], backoff: {base: 10ms, max: 20ms}, pushback: {max: 2s}}
      limits: {maxConcurrent: 2, maxPending: 0, queueTimeout: 1s}
",
    );
    let mesh = PolicyMesh::start(1, Some(&doc)).await;
    let app = mesh.app(0);
    // A's first attempt fails at once and asks for its retry in 1 s; meanwhile B and C take both
    // slots for 2 s, so when A's retry is due there is no slot and no room to wait.
    app.script(
        "/a",
        [Reply::status(503).header("retry-after", "1"), Reply::ok()],
    );
    app.script("/slow", times(2, Reply::ok().after(Duration::from_secs(2))));
    let addr = mesh.addr();
    let a = tokio::spawn(async move { send(addr, Method::GET, "/a", Bytes::new()).await });
    wait_count(app, 1, Duration::from_secs(2)).await;
    let b = tokio::spawn(async move { send(addr, Method::GET, "/slow", Bytes::new()).await });
    let c = tokio::spawn(async move { send(addr, Method::GET, "/slow", Bytes::new()).await });
    wait_count(app, 3, Duration::from_secs(2)).await;

    let a = a.await.unwrap().unwrap();
    assert_eq!(
        app.seen_path("/a").len(),
        1,
        "A's retry found both slots taken: it must not reach the app ({a:?})"
    );
    assert_eq!(
        a.status, 503,
        "A ends with a 503 (the app's, or overloaded): {a:?}"
    );
    assert!(
        a.elapsed < Duration::from_millis(1900),
        "A was answered when its retry was refused, not after a slot freed ({:?})",
        a.elapsed
    );
    for slow in [b, c] {
        assert_eq!(slow.await.unwrap().unwrap().status, 200);
    }
    assert!(peak_in_flight(&app.seen()) <= 2);
}

// ---------------------------------------------------------------------------------------------
// Policy changes

fn limit_policy(limit: u32) -> String {
    with_retries(&format!(
        "{{limit: {limit}, on: [gateway-error], backoff: {{base: 10ms, max: 20ms}}}}"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_edit_takes_effect_live_without_failing_requests() {
    let _serial = serial().await;
    let mesh = PolicyMesh::start(1, Some(&limit_policy(0))).await;
    let app = mesh.app(0);
    let mut caller = Caller::connect(mesh.addr()).await.unwrap();

    app.script("/", [Reply::status(503), Reply::ok()]);
    let answer = caller.get("/live").await.unwrap();
    assert_eq!(answer.status, 503, "limit 0: not retried ({answer:?})");
    let old = mesh.policy_version().await;

    mesh.mesh.write_policies(&limit_policy(2));
    let written = Instant::now();
    // Requests keep flowing on the same connection while the new policy arrives.
    let mut sent = 0;
    loop {
        let answer = caller.get("/live").await;
        sent += 1;
        assert!(
            matches!(&answer, Ok(a) if a.status == 200),
            "request {sent} during the policy change failed: {answer:?}"
        );
        if mesh.policy_version().await != old {
            break;
        }
        assert!(
            written.elapsed() < Duration::from_secs(5),
            "the edit (limit 0 → 2) was not in force 5 s later; version still {old}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let took = written.elapsed();
    assert!(
        took <= Duration::from_secs(1),
        "the edit took {took:?} to reach the caller's proxy (files are polled twice a second)"
    );
    app.clear();
    app.script("/", [Reply::status(503), Reply::ok()]);
    let answer = caller.get("/live").await.unwrap();
    assert_eq!(
        answer.status, 200,
        "limit 2 now: retried, same connection ({answer:?})"
    );
    assert_eq!(app.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_edit_keeps_the_policy_in_force() {
    let _serial = serial().await;
    let mesh = PolicyMesh::start(1, Some(&limit_policy(2))).await;
    let app = mesh.app(0);
    let version = mesh.policy_version().await;
    let errors_before = reload_errors(&mesh).await;

    mesh.mesh.write_policies(&limit_policy(9)); // over the hard cap of 5
    let noticed = tokio::time::timeout(Duration::from_secs(4), async {
        while reload_errors(&mesh).await <= errors_before {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    if noticed.is_err() {
        // The control plane counted no failed reload; give it two more polls of the file to do
        // whatever it would do before judging that nothing changed.
        eprintln!(
            "note: no weft_config_reloads_total{{result=\"error\"}} seen for the broken edit"
        );
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }
    assert_eq!(
        mesh.policy_version().await,
        version,
        "a broken edit (limit: 9) must leave the previous policy in force"
    );
    app.script("/", [Reply::status(503), Reply::status(503), Reply::ok()]);
    let answer = get(&mesh, "/kept").await;
    assert_eq!(answer.status, 200, "limit 2 still: {answer:?}");
    assert_eq!(app.count(), 3);
}

/// The control plane's failed reloads (every file).
async fn reload_errors(mesh: &PolicyMesh) -> f64 {
    let Some(cp) = mesh.mesh.control_plane.as_ref() else {
        return 0.0;
    };
    let Ok(reply) = send(cp.admin_addr, Method::GET, "/metrics", Bytes::new()).await else {
        return 0.0;
    };
    weft_tests::observe::metrics::metric_in(
        &reply.body,
        r#"weft_config_reloads_total{result="error"}"#,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_policy_survives_a_control_plane_outage() {
    let _serial = serial().await;
    let mut mesh = PolicyMesh::start(1, Some(&limit_policy(2))).await;
    let version = mesh.policy_version().await;
    mesh.mesh.stop_control_plane().await;
    // Wait until the caller has noticed (its discovery stream broke) when it says so.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while mesh.metric("weft_discovery_stream_errors_total").await == 0.0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;

    let app = mesh.app(0);
    app.script("/", [Reply::status(503), Reply::ok()]);
    let answer = get(&mesh, "/outage").await;
    assert_eq!(
        answer.status, 200,
        "without a control plane the last policy (limit 2) stays: {answer:?}"
    );
    assert_eq!(app.count(), 2);
    assert_eq!(mesh.policy_version().await, version);
}

// ---------------------------------------------------------------------------------------------
// Endpoints dying

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_killed_mid_traffic_loses_no_request_its_app_never_saw() {
    let _serial = serial().await;
    let mut mesh = PolicyMesh::start(2, None).await;
    for i in 0..2 {
        mesh.app(i)
            .set_default(Reply::ok().after(Duration::from_millis(5)));
    }
    let load = Traffic::start(
        mesh.addr(),
        "/steady",
        4,
        Duration::from_millis(5),
        500,
        Duration::from_secs(10),
    );
    wait::until(
        Duration::from_secs(5),
        "traffic on both endpoints",
        || async { (mesh.app(0).count() >= 10 && mesh.app(1).count() >= 10).then_some(()) },
    )
    .await;
    let kill_started = Instant::now();
    mesh.backends[1].kill().await;
    let killed_at = Instant::now();
    let after = load.count();
    wait::until(Duration::from_secs(5), "traffic after the kill", || async {
        (load.count() >= after + 100).then_some(())
    })
    .await;
    let answers = load.stop().await;

    let dying = mesh.app(1).seen();
    // What the dying app had received and may not have delivered: requests it never answered,
    // and answers it gave just before the kill (their way back crossed the dying proxy).
    let unanswered = dying
        .iter()
        .filter(|r| match r.outcome {
            Outcome::Answered(at) => at + Duration::from_millis(50) >= kill_started,
            _ => true,
        })
        .count();
    let failed: Vec<_> = answers
        .iter()
        .filter(|s| !matches!(&s.answer, Ok(a) if a.status == 200))
        .collect();
    assert!(
        failed.len() <= unanswered,
        "{} of {} requests failed, but the dying app had only {unanswered} unanswered; \
         the rest never reached an app and should have gone to the live endpoint: {failed:?}",
        failed.len(),
        answers.len()
    );
    let late = answers
        .iter()
        .filter(|s| s.at > killed_at + Duration::from_millis(500))
        .filter(|s| !matches!(&s.answer, Ok(a) if a.status == 200))
        .count();
    assert_eq!(late, 0, "500 ms after the kill every request succeeds");
}

// ---------------------------------------------------------------------------------------------
// Metrics as a consumer reads them

/// Retries, a request timeout, an ejection and shed requests, then the client's `/metrics`
/// through `promtool check metrics`: names, types, units and label sets a Prometheus server and
/// its linter accept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_half_metrics_pass_promtool() {
    if !weft_tests::process::programs::available("promtool", "prometheus") {
        return;
    }
    let _serial = serial().await;
    let doc = policy(
        "  routes:
    - name: slow
      match: {pathPrefix: /slow}
  client:
    defaults:
      retries: {limit: 1, on: [gateway-error], backoff: {base: 1ms, max: 5ms}}
      circuitBreaker: {consecutiveFailures: 2, failureOn: [\"5xx\"], penalty: {base: 10s, max: 10s, jitter: 0}, maxEjectedPercent: 100}
    overrides:
      - routes: [slow]
        timeouts: {request: 200ms}
",
    );
    let mesh = PolicyMesh::start(1, Some(&doc)).await;
    let app = mesh.app(0);
    app.script("/slow", [Reply::ok().after(Duration::from_secs(2))]);
    assert_eq!(get(&mesh, "/slow").await.status, 504);
    app.set_default(Reply::status(503));
    // A retried 503, then the breaker opens, then circuit_open answers.
    for _ in 0..3 {
        get(&mesh, "/fail").await;
    }
    let (_, text) = weft_tests::mesh::policy_mesh::admin_get(&mesh.client, "/metrics")
        .await
        .unwrap();
    for family in [
        "weft_outbound_retries_total",
        "weft_outbound_timeouts_total",
        "weft_outbound_shed_total",
        "weft_outbound_endpoint_ejected",
        "weft_outbound_breaker_transitions_total",
        "weft_outbound_request_attempts_bucket",
    ] {
        assert!(text.contains(family), "{family} missing from:\n{text}");
    }
    let said = weft_tests::process::programs::promtool_complaints(&text);
    assert!(said.is_empty(), "promtool check metrics: {said}\n{text}");
}

//! httproute-request-mirror and grpcroute-request-mirror: a rule's `RequestMirror` sends a copy
//! of each request to another Service (same method, path, headers and body, the mirror's `Host`)
//! while the original is answered by its backend; a slow, failing, down or unknown mirror never
//! delays or fails the original; copies over the in-flight bound or with a long body are dropped;
//! every copy is counted in `weft_route_mirror_requests_total`.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Version};
use http_body_util::{BodyExt, Full};
use tokio::time::Instant;
use weft_proxy::RunningProxy;
use weft_tests::apps::fault_app::{FaultApp, Reply, SeenRequest, grpc_frame};
use weft_tests::clients;
use weft_tests::mesh::policy_mesh::Caller;
use weft_tests::observe::metrics::metric;

use super::{App, RoutesMesh, Source, route};

/// How long a copy may take to reach the mirror's app.
const COPY_DEADLINE: Duration = Duration::from_secs(5);
/// The proxy's bound on copies in flight per mirror Service (`outbound::mirror`).
const MAX_IN_FLIGHT: usize = 64;

const RULES: &str = "    - name: mirrored
      matches: [{path: {value: /mirrored}}]
      filters:
        - type: RequestMirror
          requestMirror: {backendRef: {name: hello-v2, port: 8080}}
      backendRefs: [{name: hello-v1, port: 8080}]
    - name: half
      matches: [{path: {value: /half}}]
      filters:
        - type: RequestMirror
          requestMirror: {backendRef: {name: hello-v2, port: 8080}, fraction: {numerator: 1, denominator: 2}}
      backendRefs: [{name: hello-v1, port: 8080}]
    - name: down
      matches: [{path: {value: /down}}]
      filters:
        - type: RequestMirror
          requestMirror: {backendRef: {name: hello, port: 8080}}
      backendRefs: [{name: hello-v1, port: 8080}]
    - name: nowhere
      matches: [{path: {value: /nowhere}}]
      filters:
        - type: RequestMirror
          requestMirror: {backendRef: {name: nowhere, port: 8080}}
      backendRefs: [{name: hello-v1, port: 8080}]
";

fn mirrors(rule: &str, outcome: &str) -> String {
    format!(
        "weft_route_mirror_requests_total{{service=\"hello.demo\",route=\"hello-mirror/{rule}\",outcome=\"{outcome}\"}}"
    )
}

/// Waits until `app` has seen `count` requests under `path`; returns them.
async fn wait_seen(app: &FaultApp, path: &str, count: usize) -> Vec<SeenRequest> {
    let give_up = Instant::now() + COPY_DEADLINE;
    loop {
        let seen = app.seen_path(path);
        if seen.len() >= count && seen.iter().all(|r| r.body_len.is_some()) {
            return seen;
        }
        assert!(
            Instant::now() < give_up,
            "{} of {count} copies of {path} arrived",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `series` of `proxy` reaches `value`.
async fn wait_metric(proxy: &RunningProxy, series: &str, value: f64) {
    let give_up = Instant::now() + COPY_DEADLINE;
    loop {
        let now = metric(proxy, series).await;
        if now == value {
            return;
        }
        assert!(Instant::now() < give_up, "{series} is {now}, not {value}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_mirror_gets_a_copy_and_the_backend_answers(source: Source) {
    let mesh = RoutesMesh::start(source, &route("hello-mirror", None, RULES)).await;
    let client = &mesh.client;
    let table = super::destination_of(client).await["gateway_routes"].clone();
    assert_eq!(
        table["rules"][1]["mirrors"],
        serde_json::json!([{"mirror": "hello-v2.demo:8080", "fraction": 0.5}]),
        "the admin endpoint shows the mirrors: {table}"
    );
    let mut caller = Caller::connect(mesh.addr()).await.unwrap();
    for i in 0..5 {
        let answer = caller
            .send_with(
                Method::GET,
                &format!("/mirrored/{i}?q=1"),
                &[("x-test", "copy")],
            )
            .await
            .unwrap();
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(mesh.app_of(answer.header("x-app")), Some(App::V1));
    }
    let body = Bytes::from_static(b"a body of 21 bytes...");
    let answer = caller
        .send(Method::POST, "/mirrored/post", body)
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");

    let copies = wait_seen(mesh.app(App::V2), "/mirrored", 6).await;
    let originals = mesh.app(App::V1).seen_path("/mirrored");
    assert_eq!((originals.len(), copies.len()), (6, 6));
    // Copies are sent apart from their originals: they may arrive in another order.
    let mut gets: Vec<&str> = copies
        .iter()
        .filter(|c| c.method == Method::GET)
        .map(|c| c.path.as_str())
        .collect();
    gets.sort_unstable();
    let expected: Vec<String> = (0..5).map(|i| format!("/mirrored/{i}")).collect();
    assert_eq!(gets, expected);
    for copy in &copies {
        assert_eq!(copy.header("host"), Some("hello-v2.demo:8080"));
    }
    for copy in copies.iter().filter(|c| c.method == Method::GET) {
        assert_eq!(copy.header("x-test"), Some("copy"));
    }
    assert_eq!(originals[0].header("host"), Some("hello.demo:8080"));
    let post = copies.iter().find(|c| c.method == Method::POST).unwrap();
    assert_eq!(
        (post.path.as_str(), post.body_len),
        ("/mirrored/post", Some(21))
    );
    wait_metric(client, &mirrors("mirrored", "answered"), 6.0).await;

    // `fraction: 1/2`: about half, over 200 requests (σ = 7).
    for _ in 0..200 {
        assert_eq!(caller.get("/half").await.unwrap().status, 200);
    }
    // Each copy counted once it is answered: wait until the count is the app's.
    let give_up = Instant::now() + COPY_DEADLINE;
    let copies = loop {
        let copies = mesh.app(App::V2).seen_path("/half").len();
        if metric(client, &mirrors("half", "answered")).await == copies as f64 {
            break copies;
        }
        assert!(
            Instant::now() < give_up,
            "copies of /half are not all counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!((60..=140).contains(&copies), "{copies} of 200 mirrored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_failing_or_unknown_mirror_never_delays_or_fails_the_original() {
    let mut mesh = RoutesMesh::start(Source::Files, &route("hello-mirror", None, RULES)).await;
    // `hello`'s only endpoint is down: connections to it are refused.
    mesh.backends[0].kill_proxy().await;
    let client = &mesh.client;
    let v2 = mesh.app(App::V2);
    let mut caller = Caller::connect(mesh.addr()).await.unwrap();
    // Warm the connections to both backends, so latencies below are the requests' own.
    assert_eq!(caller.get("/mirrored/warm").await.unwrap().status, 200);
    wait_metric(client, &mirrors("mirrored", "answered"), 1.0).await;

    v2.script(
        "/mirrored/slow",
        [Reply::ok().after(Duration::from_secs(3))],
    );
    let answer = caller.get("/mirrored/slow").await.unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(
        answer.elapsed < Duration::from_secs(1),
        "{:?}",
        answer.elapsed
    );

    v2.script("/mirrored/fail", [Reply::status(503)]);
    let answer = caller.get("/mirrored/fail").await.unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    wait_metric(client, &mirrors("mirrored", "answered_5xx"), 1.0).await;

    for (rule, outcome) in [("down", "failed"), ("nowhere", "not_found")] {
        let answer = caller.get(&format!("/{rule}")).await.unwrap();
        assert_eq!(answer.status, 200, "{rule}: {answer:?}");
        assert!(
            answer.elapsed < Duration::from_secs(1),
            "{rule}: {:?}",
            answer.elapsed
        );
        wait_metric(client, &mirrors(rule, outcome), 1.0).await;
    }

    // A body over 64 KiB is sent whole to the backend and not mirrored.
    let long = Bytes::from(vec![b'x'; 100 * 1024]);
    let answer = caller
        .send(Method::POST, "/mirrored/long", long)
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    let seen = mesh.app(App::V1).seen_path("/mirrored/long");
    assert_eq!(seen[0].body_len, Some(100 * 1024));
    wait_metric(client, &mirrors("mirrored", "dropped_body"), 1.0).await;
    wait_seen(v2, "/mirrored/slow", 1).await;
    assert!(v2.seen_path("/mirrored/long").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_over_the_in_flight_bound_are_dropped_and_counted() {
    let mesh = RoutesMesh::start(Source::Files, &route("hello-mirror", None, RULES)).await;
    let client = &mesh.client;
    // The mirror holds every copy for longer than the test sends.
    mesh.app(App::V2)
        .set_default(Reply::ok().after(Duration::from_secs(9)));
    let mut caller = Caller::connect(mesh.addr()).await.unwrap();
    let started = Instant::now();
    let sent = MAX_IN_FLIGHT + 6;
    for i in 0..sent {
        let answer = caller.get(&format!("/mirrored/{i}")).await.unwrap();
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    wait_metric(client, &mirrors("mirrored", "dropped_in_flight"), 6.0).await;
    wait_seen(mesh.app(App::V2), "/mirrored", MAX_IN_FLIGHT).await;
    assert_eq!(mesh.app(App::V1).seen_path("/mirrored").len(), sent);
}

const GRPC_ROUTE: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: hello-mirror, namespace: demo}
spec:
  parentRefs: [{group: \"\", kind: Service, name: hello, port: 8080}]
  rules:
    - name: echo
      matches: [{method: {service: weft.test.Echo}}]
      filters:
        - type: RequestMirror
          requestMirror: {backendRef: {name: hello-v2, port: 8080}}
      backendRefs: [{name: hello-v1, port: 8080}]
";

async fn a_grpc_route_mirrors_calls(source: Source) {
    let mesh = RoutesMesh::start(source, GRPC_ROUTE).await;
    for app in [App::V1, App::V2] {
        mesh.app(app).set_default(Reply::grpc_ok("hi"));
    }
    let mut sender = clients::h2(mesh.addr()).await;
    for _ in 0..3 {
        let request = Request::post("http://hello.demo:8080/weft.test.Echo/Hello")
            .version(Version::HTTP_2)
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("x-call", "mirrored")
            .body(Full::new(grpc_frame(b"hello")))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let app = response.headers().get("x-app").cloned();
        let collected = response.into_body().collect().await.unwrap();
        let status = collected
            .trailers()
            .and_then(|t| t.get("grpc-status"))
            .cloned();
        assert_eq!(status.as_ref().map(|v| v.as_bytes()), Some(&b"0"[..]));
        assert_eq!(
            mesh.app_of(app.as_ref().and_then(|v| v.to_str().ok())),
            Some(App::V1)
        );
    }
    let copies = wait_seen(mesh.app(App::V2), "/weft.test.Echo/Hello", 3).await;
    for copy in &copies {
        assert_eq!(copy.method, Method::POST);
        assert_eq!(copy.header("x-call"), Some("mirrored"));
        assert_eq!(copy.header("content-type"), Some("application/grpc"));
        assert_eq!(copy.body_len, Some(grpc_frame(b"hello").len()));
    }
    wait_metric(&mesh.client, &mirrors("echo", "answered"), 3.0).await;
}

super::both_sources!(
    a_mirror_gets_a_copy_and_the_backend_answers,
    a_grpc_route_mirrors_calls,
);

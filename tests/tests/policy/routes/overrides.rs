//! A ServicePolicy override naming a Gateway API rule (`client.overrides[].gatewayRules`, in the
//! policy of the backend Service): the requests that rule sends to the backend take the
//! override's retries and deadline, other rules' requests to the same backend do not, and every
//! retry still draws on the backend's retry budget.

use std::time::Duration;

use tokio::time::Instant;
use weft_tests::apps::fault_app::{Reply, times};
use weft_tests::mesh::policy_mesh::Caller;

use super::{App, RoutesMesh, Source, route};

const RULES: &str = "    - name: flaky
      matches: [{path: {value: /flaky}}]
      backendRefs: [{name: hello-v1, port: 8080}]
    - name: steady
      matches: [{path: {value: /steady}}]
      backendRefs: [{name: hello-v1, port: 8080}]
    - name: stormy
      matches: [{path: {value: /stormy}}]
      backendRefs: [{name: hello-v2, port: 8080}]
";

/// `hello-v1` retries the requests of rule `flaky` (twice, on 500) and gives them 300 ms in all;
/// `hello-v2` retries those of
/// `stormy` up to 5 times on 500, with a budget of 1 retry a second and no share of the traffic
/// (and no breaker, which would answer for the failing endpoint after 7 failures).
const POLICIES: &str = "apiVersion: weft.dev/v1alpha1
kind: ServicePolicy
metadata: {name: hello-v1, namespace: demo}
spec:
  client:
    overrides:
      - gatewayRules: [hello-overrides/flaky]
        timeouts: {request: 300ms}
        retries: {limit: 2, on: [\"500\"], backoff: {base: 1ms, max: 5ms}}
---
apiVersion: weft.dev/v1alpha1
kind: ServicePolicy
metadata: {name: hello-v2, namespace: demo}
spec:
  client:
    defaults:
      retries: {budget: {ratio: 0.0, minPerSecond: 1, window: 10s}}
      circuitBreaker: {consecutiveFailures: 0}
    overrides:
      - gatewayRules: [demo/hello-overrides/stormy]
        retries: {limit: 5, on: [\"500\"], backoff: {base: 1ms, max: 5ms}}
";

/// Requests to the `stormy` rule, whose backend always fails.
const STORMY: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_override_naming_a_rule_retries_that_rule_s_requests_only() {
    let mesh = RoutesMesh::start_with(
        Source::Files,
        &route("hello-overrides", None, RULES),
        Some(POLICIES),
    )
    .await;
    let v1 = mesh.app(App::V1);
    v1.script("/flaky", times(2, Reply::status(500)));
    v1.script("/steady", times(1, Reply::status(500)));
    let mut caller = Caller::connect(mesh.addr()).await.unwrap();

    let answer = caller.get("/flaky").await.unwrap();
    assert_eq!(answer.status, 200, "the third attempt answers: {answer:?}");
    let attempts: Vec<_> = v1.seen_path("/flaky").iter().map(|r| r.attempt()).collect();
    assert_eq!(attempts, [None, Some(2), Some(3)]);

    let answer = caller.get("/steady").await.unwrap();
    assert_eq!(
        answer.status, 500,
        "another rule's request is not retried: {answer:?}"
    );
    assert_eq!(v1.seen_path("/steady").len(), 1);

    v1.script("/flaky/slow", [Reply::ok().after(Duration::from_secs(1))]);
    v1.script("/steady/slow", [Reply::ok().after(Duration::from_secs(1))]);
    let answer = caller.get("/flaky/slow").await.unwrap();
    let status = (answer.status.as_u16(), answer.weft_error());
    assert_eq!(status, (504, Some("timeout")), "{answer:?}");
    assert!(
        answer.elapsed < Duration::from_millis(900),
        "{:?}",
        answer.elapsed
    );
    let answer = caller.get("/steady/slow").await.unwrap();
    assert_eq!(
        answer.status, 200,
        "another rule's request has no deadline: {answer:?}"
    );

    // Within the budget: 20 failing requests get at most minPerSecond × (T + 1) retries.
    mesh.app(App::V2).set_default(Reply::status(500));
    let started = Instant::now();
    for _ in 0..STORMY {
        assert_eq!(caller.get("/stormy").await.unwrap().status, 500);
    }
    let seconds = started.elapsed().as_secs_f64().ceil() as usize;
    let seen = mesh.app(App::V2).seen_path("/stormy").len();
    let retries = seen - STORMY;
    assert!(retries >= 1, "the override retried: {seen} attempts");
    assert!(
        retries <= seconds + 1,
        "{retries} retries in {seconds} s: over the budget"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

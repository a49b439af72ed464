//! httproute-request-header-modifier (and the response side), httproute-redirect-*,
//! httproute-rewrite-path and -host, and a rule's `timeouts` and `retry` mapped onto weft's
//! deadline and retries.

use std::time::Duration;

use http::Method;
use weft_tests::apps::fault_app::{Reply, times};
use weft_tests::mesh::policy_mesh::Caller;

use super::{App, RoutesMesh, Source, route};

const RULES: &str = "    - name: headers
      matches: [{path: {value: /headers}}]
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier:
            set: [{name: x-set, value: one}]
            add: [{name: x-add, value: two}]
            remove: [x-remove]
        - type: ResponseHeaderModifier
          responseHeaderModifier: {add: [{name: x-response, value: weft}], remove: [x-app-only]}
      backendRefs:
        - name: hello-v1
          port: 8080
          filters:
            - type: RequestHeaderModifier
              requestHeaderModifier: {set: [{name: x-backend, value: v1}]}
    - name: redirect
      matches: [{path: {value: /old}}]
      filters:
        - type: RequestRedirect
          requestRedirect:
            hostname: example.org
            path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}
            statusCode: 301
    - name: rewrite
      matches: [{path: {value: /prefix/one}}]
      filters:
        - type: URLRewrite
          urlRewrite:
            hostname: rewritten.example
            path: {type: ReplacePrefixMatch, replacePrefixMatch: /}
      backendRefs: [{name: hello-v2, port: 8080}]
    - name: full
      matches: [{path: {value: /full}}]
      filters:
        - type: URLRewrite
          urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /replaced}}
      backendRefs: [{name: hello-v2, port: 8080}]
    - name: flaky
      matches: [{path: {value: /flaky}}]
      retry: {attempts: 2, codes: [500], backoff: 1ms}
      backendRefs: [{name: hello-v1, port: 8080}]
    - name: slow
      matches: [{path: {value: /slow}}]
      timeouts: {request: 200ms}
      backendRefs: [{name: hello-v1, port: 8080}]
";

async fn filters_change_requests_and_responses_as_the_rule_says(source: Source) {
    let mesh = RoutesMesh::start(source, &route("hello-filters", None, RULES)).await;
    let mut caller = Caller::connect(mesh.addr()).await.unwrap();
    mesh.app(App::V1)
        .set_default(Reply::ok().header("x-app-only", "1"));
    let headers = [("x-set", "zero"), ("x-add", "one"), ("x-remove", "gone")];
    let answer = caller
        .send_with(Method::GET, "/headers", &headers)
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.header("x-response"), Some("weft"));
    assert_eq!(answer.header("x-app-only"), None);
    let seen = mesh.app(App::V1).seen_path("/headers").remove(0);
    assert_eq!(seen.header("x-set"), Some("one"));
    let added: Vec<_> = seen
        .headers
        .get_all("x-add")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(added, ["one", "two"]);
    assert_eq!(seen.header("x-remove"), None);
    assert_eq!(seen.header("x-backend"), Some("v1"));

    let answer = caller.get("/old/page?x=1").await.unwrap();
    assert_eq!(answer.status, 301);
    assert_eq!(
        answer.header("location"),
        Some("http://example.org:8080/new/page?x=1")
    );

    let answer = caller.get("/prefix/one/two?q=1").await.unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    let seen = mesh.app(App::V2).seen().remove(0);
    assert_eq!(seen.path, "/two");
    assert_eq!(seen.header("host"), Some("rewritten.example"));
    caller.get("/full/x").await.unwrap();
    assert_eq!(mesh.app(App::V2).seen()[1].path, "/replaced");
    // Nothing reached an app for the redirect.
    assert_eq!(mesh.app(App::V1).count() + mesh.app(App::V2).count(), 3);
}

async fn a_rule_s_retry_and_timeout_apply_to_its_requests(source: Source) {
    let mesh = RoutesMesh::start(source, &route("hello-filters", None, RULES)).await;
    let v1 = mesh.app(App::V1);
    v1.script("/flaky", times(2, Reply::status(500)));
    let mut caller = Caller::connect(mesh.addr()).await.unwrap();
    let answer = caller.get("/flaky").await.unwrap();
    assert_eq!(answer.status, 200, "the third attempt answers: {answer:?}");
    let attempts: Vec<_> = v1.seen_path("/flaky").iter().map(|r| r.attempt()).collect();
    assert_eq!(attempts, [None, Some(2), Some(3)]);

    v1.script("/slow", [Reply::ok().after(Duration::from_secs(2))]);
    let answer = caller.get("/slow").await.unwrap();
    assert_eq!(
        (answer.status.as_u16(), answer.weft_error()),
        (504, Some("timeout"))
    );
    assert!(
        answer.elapsed < Duration::from_secs(1),
        "{:?}",
        answer.elapsed
    );
}

super::both_sources!(
    filters_change_requests_and_responses_as_the_rule_says,
    a_rule_s_retry_and_timeout_apply_to_its_requests,
);

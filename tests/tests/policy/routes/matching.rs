//! httproute-matching and httproute-query-param-matching: path (exact, prefix on a segment
//! boundary, regular expression), headers, query parameters and method, and the spec's
//! precedence between the matches of different rules.

use http::Method;
use weft_tests::mesh::policy_mesh::Caller;

use super::{App, RoutesMesh, Source, route};

const RULES: &str = "    - name: exact
      matches: [{path: {type: Exact, value: /v2/exact}}]
      backendRefs: [{name: hello-v1, port: 8080}]
    - name: v2
      matches: [{path: {type: PathPrefix, value: /v2}}]
      backendRefs: [{name: hello-v2, port: 8080}]
    - name: header
      matches:
        - headers: [{name: version, value: two}]
        - headers: [{type: RegularExpression, name: env, value: \"canary|beta\"}]
      backendRefs: [{name: hello, port: 8080}]
    - name: query
      matches: [{queryParams: [{name: animal, value: whale}]}]
      backendRefs: [{name: hello, port: 8080}]
    - name: post
      matches: [{path: {value: /form}, method: POST}]
      backendRefs: [{name: hello-v2, port: 8080}]
    - name: regex
      matches: [{path: {type: RegularExpression, value: \"/items/[0-9]+\"}}]
      backendRefs: [{name: hello-v2, port: 8080}]
    - name: rest
      backendRefs: [{name: hello-v1, port: 8080}]
";

/// A request (method, path, headers), the app that must answer it, and the rule that sends it
/// there.
type Case = (
    Method,
    &'static str,
    &'static [(&'static str, &'static str)],
    App,
    &'static str,
);

async fn requests_go_where_the_most_specific_match_sends_them(source: Source) {
    let mesh = RoutesMesh::start(source, &route("hello-match", None, RULES)).await;
    let mut caller = Caller::connect(mesh.addr()).await.unwrap();
    let cases: [Case; 16] = [
        (Method::GET, "/v2/exact", &[], App::V1, "exact"),
        (Method::GET, "/v2/other", &[], App::V2, "v2"),
        (Method::GET, "/v2", &[], App::V2, "v2"),
        (Method::GET, "/v2x", &[], App::V1, "rest"),
        (
            Method::GET,
            "/",
            &[("version", "two")],
            App::Hello,
            "header",
        ),
        (
            Method::GET,
            "/",
            &[("Version", "two")],
            App::Hello,
            "header",
        ),
        // A longer path prefix beats more header matches.
        (Method::GET, "/v2/x", &[("version", "two")], App::V2, "v2"),
        (Method::GET, "/", &[("version", "three")], App::V1, "rest"),
        (Method::GET, "/a", &[("env", "beta")], App::Hello, "header"),
        (Method::GET, "/a", &[("env", "betamax")], App::V1, "rest"),
        (
            Method::GET,
            "/?animal=whale&color=blue",
            &[],
            App::Hello,
            "query",
        ),
        (Method::GET, "/?animal=dolphin", &[], App::V1, "rest"),
        (Method::POST, "/form", &[], App::V2, "post"),
        (Method::GET, "/form", &[], App::V1, "rest"),
        (Method::GET, "/items/42", &[], App::V2, "regex"),
        (Method::GET, "/items/x42", &[], App::V1, "rest"),
    ];
    for (method, path, headers, app, rule) in cases {
        let answer = caller
            .send_with(method.clone(), path, headers)
            .await
            .unwrap();
        assert_eq!(
            answer.status, 200,
            "{method} {path} {headers:?}: {answer:?}"
        );
        assert_eq!(
            mesh.app_of(answer.header("x-app")),
            Some(app),
            "{method} {path} {headers:?} should match rule {rule}"
        );
    }
    // The rules and their order are what the caller's admin endpoint shows.
    let table = mesh
        .wait_routes(|v| v.starts_with("demo/hello-match@"))
        .await;
    let rules: Vec<&str> = table["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        ["exact", "v2", "header", "query", "post", "regex", "rest"]
    );
}

super::both_sources!(requests_go_where_the_most_specific_match_sends_them,);

//! grpcroute-weight and grpcroute-request-header-modifier: a GRPCRoute's service and method
//! matches, weighted backends and header modifiers, for gRPC calls over HTTP/2 from the app.

use http::{Request, Version};
use http_body_util::{BodyExt, Full};
use weft_tests::apps::fault_app::{Reply, grpc_frame};
use weft_tests::clients;

use super::{App, RoutesMesh, Source};

/// Calls of the weight test, on one HTTP/2 connection.
const CALLS: usize = 200;
/// With 200 calls and a share of 0.5 the standard deviation is 0.035: this is 3.4 of them.
const TOLERANCE: f64 = 0.12;

const ROUTE: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: hello-grpc, namespace: demo}
spec:
  parentRefs: [{group: \"\", kind: Service, name: hello, port: 8080}]
  rules:
    - name: hello
      matches: [{method: {service: weft.test.Echo, method: Hello}}]
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier: {set: [{name: x-routed, value: grpc}], remove: [x-drop]}
        - type: ResponseHeaderModifier
          responseHeaderModifier: {add: [{name: x-route, value: hello}]}
      backendRefs:
        - {name: hello-v1, port: 8080, weight: 1}
        - {name: hello-v2, port: 8080, weight: 1}
    - name: other-methods
      matches: [{method: {service: weft.test.Echo}}]
      backendRefs: [{name: hello, port: 8080}]
";

async fn a_grpc_route_splits_calls_by_method_and_modifies_headers(source: Source) {
    let mesh = RoutesMesh::start(source, ROUTE).await;
    for app in [App::Hello, App::V1, App::V2] {
        mesh.app(app).set_default(Reply::grpc_ok("hi"));
    }
    let mut sender = clients::h2(mesh.addr()).await;
    let mut call = async |method: &str| {
        let request = Request::post(format!("http://hello.demo:8080/weft.test.Echo/{method}"))
            .version(Version::HTTP_2)
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("x-drop", "1")
            .body(Full::new(grpc_frame(b"hello")))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let collected = body.collect().await.unwrap();
        let grpc_status = collected
            .trailers()
            .and_then(|t| t.get("grpc-status"))
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(grpc_status.as_deref(), Some("0"), "{parts:?}");
        assert_eq!(collected.to_bytes(), grpc_frame(b"hi"), "the app's message");
        let app = mesh.app_of(parts.headers.get("x-app").and_then(|v| v.to_str().ok()));
        let route = parts
            .headers
            .get("x-route")
            .map(|v| v.to_str().unwrap().to_owned());
        (app, route)
    };
    let mut v1 = 0;
    for _ in 0..CALLS {
        let (app, route) = call("Hello").await;
        assert_eq!(route.as_deref(), Some("hello"));
        match app {
            Some(App::V1) => v1 += 1,
            Some(App::V2) => {}
            other => panic!("Hello answered by {other:?}"),
        }
    }
    let share = f64::from(v1) / CALLS as f64;
    assert!(
        (share - 0.5).abs() <= TOLERANCE,
        "hello-v1 got {share}, expected 0.5 ± {TOLERANCE}"
    );
    let seen = mesh.app(App::V1).seen().remove(0);
    assert_eq!(seen.path, "/weft.test.Echo/Hello");
    assert_eq!(seen.header("x-routed"), Some("grpc"));
    assert_eq!(seen.header("x-drop"), None);
    // Another method of the service: the second rule, and no header modifier.
    let (app, route) = call("Goodbye").await;
    assert_eq!((app, route), (Some(App::Hello), None));
    assert_eq!(mesh.app(App::Hello).seen()[0].header("x-routed"), None);
}

super::both_sources!(a_grpc_route_splits_calls_by_method_and_modifies_headers,);

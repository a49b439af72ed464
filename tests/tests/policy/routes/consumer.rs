//! mesh-consumer-route: a route in the caller's namespace for a Service of another namespace
//! applies to that namespace's callers only, and wins over the Service's own (producer) route
//! for them; the producer route still applies to everyone else.

use weft_tests::mesh::policy_mesh::Caller;
use weft_tests::mesh::{OTHER_NAMESPACE, ProxyOptions};

use super::{App, RoutesMesh, Source, route, wait_routes_of};

async fn a_consumer_route_wins_for_its_namespace_s_callers_only(source: Source) {
    let producer = route(
        "hello-producer",
        Some(8080),
        "    - backendRefs: [{name: hello-v1, port: 8080}]\n",
    );
    // The consumer's rule needs no backend of its namespace: it redirects.
    let consumer = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: hello-consumer, namespace: {OTHER_NAMESPACE}}}\nspec:\n  parentRefs: [{{group: \"\", kind: Service, name: hello, namespace: demo, port: 8080}}]\n  rules:\n    - filters: [{{type: RequestRedirect, requestRedirect: {{hostname: shop.example}}}}]\n"
    );
    let mesh = RoutesMesh::start(source, &format!("{producer}---\n{consumer}")).await;
    let shop = mesh
        .mesh
        .proxy_in(
            OTHER_NAMESPACE,
            "web",
            ProxyOptions::forward_service("hello.demo:8080"),
        )
        .await;
    let table = wait_routes_of(&shop, |v| !v.is_empty()).await;
    assert!(
        table["version"]
            .as_str()
            .unwrap()
            .starts_with("shop/hello-consumer@"),
        "{table}"
    );
    let answer = Caller::connect(shop.forward_addrs[0])
        .await
        .unwrap()
        .get("/x")
        .await
        .unwrap();
    assert_eq!(answer.status, 302, "{answer:?}");
    assert_eq!(
        answer.header("location"),
        Some("http://shop.example:8080/x")
    );
    // The demo caller gets the producer route.
    let answer = Caller::connect(mesh.addr())
        .await
        .unwrap()
        .get("/x")
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(mesh.app_of(answer.header("x-app")), Some(App::V1));
    assert_eq!(mesh.app(App::V1).count(), 1, "the redirect reached no app");
}

super::both_sources!(a_consumer_route_wins_for_its_namespace_s_callers_only,);

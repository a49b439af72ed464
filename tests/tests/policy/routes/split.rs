//! Weighted backends: mesh-split / httproute-weight, weight 0, every weight 0 and a missing
//! backend (`500`), mesh-ports (a route on one port of the Service leaves the others alone),
//! and a weight edit under load.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use weft_tests::mesh::policy_mesh::Caller;
use weft_tests::observe::metrics::metric;
use weft_tests::wait::until;

use super::{App, RoutesMesh, Source, route};

/// Requests of the weight test, over four keep-alive connections.
const REQUESTS: usize = 500;
/// The share of each backend must be within this of its weight's share: with 500 requests and
/// a share of 0.3 the standard deviation is 0.0205, so this is 3.4 of them (a spurious failure
/// about once in 1,500 runs).
const TOLERANCE: f64 = 0.07;

fn split(v1: u32, v2: u32) -> String {
    route(
        "hello-split",
        Some(8080),
        &format!(
            "    - backendRefs:\n        - {{name: hello-v1, port: 8080, weight: {v1}}}\n        - {{name: hello-v2, port: 8080, weight: {v2}}}\n"
        ),
    )
}

/// Sends `n` GETs of `path` over `connections` keep-alive connections; the apps that answered.
async fn spread(mesh: &RoutesMesh, path: &str, n: usize, connections: usize) -> Vec<Option<App>> {
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (addr, path) = (mesh.addr(), path.to_owned());
        let count = n / connections + usize::from(c < n % connections);
        tasks.push(tokio::spawn(async move {
            let mut caller = Caller::connect(addr).await.unwrap();
            let mut answers = Vec::new();
            for _ in 0..count {
                let answer = caller.get(&path).await.unwrap();
                assert_eq!(answer.status, 200, "{answer:?}");
                answers.push(answer.header("x-app").map(str::to_owned));
            }
            answers
        }));
    }
    let mut apps = Vec::new();
    for task in tasks {
        for x_app in task.await.unwrap() {
            apps.push(mesh.app_of(x_app.as_deref()));
        }
    }
    apps
}

async fn weights_split_requests_between_backends_and_the_metrics_say_which(source: Source) {
    let mesh = RoutesMesh::start(source, &split(70, 30)).await;
    let table = mesh
        .wait_routes(|v| v.starts_with("demo/hello-split@"))
        .await;
    let weights: Vec<_> = table["rules"][0]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["backend"].as_str().unwrap().to_owned(),
                b["weight"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        weights,
        [
            ("hello-v1.demo:8080".to_owned(), 70),
            ("hello-v2.demo:8080".to_owned(), 30)
        ]
    );
    let apps = spread(&mesh, "/split", REQUESTS, 4).await;
    let share = |app| apps.iter().filter(|a| **a == Some(app)).count() as f64 / REQUESTS as f64;
    let (v1, v2) = (share(App::V1), share(App::V2));
    assert!(
        (v1 - 0.7).abs() <= TOLERANCE,
        "hello-v1 got {v1}, expected 0.7 ± {TOLERANCE}"
    );
    assert!(
        (v2 - 0.3).abs() <= TOLERANCE,
        "hello-v2 got {v2}, expected 0.3 ± {TOLERANCE}"
    );
    assert_eq!(
        mesh.app(App::Hello).count(),
        0,
        "the parent's own endpoint gets nothing"
    );
    let labels = |backend: &str| {
        format!(
            r#"weft_requests_total{{direction="outbound",destination_service="hello.demo",route="hello-split/rule-0",backend="{backend}",status_code="200"}}"#
        )
    };
    // Recorded when each response's body ends, which may be just after the caller read it.
    let client = &mesh.client;
    let (v1_count, v2_count) = until(Duration::from_secs(5), "every request counted", || async {
        let v1 = metric(client, &labels("hello-v1.demo")).await;
        let v2 = metric(client, &labels("hello-v2.demo")).await;
        (v1 + v2 == REQUESTS as f64).then_some((v1, v2))
    })
    .await;
    assert_eq!(v1_count, mesh.app(App::V1).count() as f64);
    assert_eq!(v2_count, mesh.app(App::V2).count() as f64);
}

async fn weight_zero_gets_nothing_and_an_unusable_rule_or_backend_is_a_500(source: Source) {
    let rules = "    - matches: [{path: {value: /zero}}]\n      backendRefs:\n        - {name: hello-v1, port: 8080, weight: 0}\n        - {name: hello-v2, port: 8080, weight: 1}\n    - matches: [{path: {value: /all-zero}}]\n      backendRefs: [{name: hello-v1, port: 8080, weight: 0}]\n    - matches: [{path: {value: /missing}}]\n      backendRefs: [{name: nowhere, port: 8080}]\n    - matches: [{path: {value: /none}}]\n";
    let mesh = RoutesMesh::start(source, &route("hello-broken", Some(8080), rules)).await;
    let apps = spread(&mesh, "/zero", 40, 2).await;
    assert!(apps.iter().all(|a| *a == Some(App::V2)), "{apps:?}");
    let mut caller = Caller::connect(mesh.addr()).await.unwrap();
    for (path, reason) in [
        ("/all-zero", "no_backend"),
        ("/missing", "backend_not_found"),
        ("/none", "no_backend"),
    ] {
        let answer = caller.get(path).await.unwrap();
        assert_eq!(answer.status, 500, "{path}: {answer:?}");
        assert_eq!(answer.weft_error(), Some(reason), "{path}");
    }
    // No rule matches: the route claims the whole port.
    let answer = caller.get("/elsewhere").await.unwrap();
    assert_eq!(
        (answer.status.as_u16(), answer.weft_error()),
        (404, Some("no_route"))
    );
    assert_eq!(mesh.app(App::V1).count(), 0);
    // mesh-ports: the route is attached to port 8080 only; 8081 reaches the Service itself.
    let mut other = Caller::connect(mesh.other_port()).await.unwrap();
    let answer = other.get("/missing").await.unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(mesh.app_of(answer.header("x-app")), Some(App::Hello));
}

async fn a_weight_edit_under_load_takes_effect_within_a_second_with_no_failed_request(
    source: Source,
) {
    let mesh = RoutesMesh::start(source, &split(100, 0)).await;
    let first = mesh
        .wait_routes(|v| v.starts_with("demo/hello-split@"))
        .await;
    let first_version = first["version"].as_str().unwrap().to_owned();
    let addr = mesh.addr();
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let load = tokio::spawn(async move {
        // Bounded: until told to stop, at most 30 s or 20,000 requests.
        let mut caller = Caller::connect(addr).await.unwrap();
        let give_up = Instant::now() + Duration::from_secs(30);
        let mut sent = 0;
        while !stopping.load(Ordering::Relaxed) && Instant::now() < give_up && sent < 20_000 {
            let answer = caller.get("/load").await.unwrap();
            assert_eq!(answer.status, 200, "request {sent}: {answer:?}");
            sent += 1;
        }
        sent
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let edited = Instant::now();
    mesh.set_routes(&split(0, 100));
    mesh.wait_routes(|v| !v.is_empty() && v != first_version)
        .await;
    // Requests keep flowing for another half second after the new table is in force.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let sent = load.await.expect("no request failed");
    assert_eq!(
        sent,
        mesh.app(App::V1).count() + mesh.app(App::V2).count(),
        "every request answered by a version"
    );
    let v2_name = mesh.app(App::V2).name.clone();
    let v2 = mesh.app(App::V2).seen();
    let first_v2 = v2
        .first()
        .map(|r| r.at)
        .expect("hello-v2 answered after the edit");
    let took = first_v2.saturating_duration_since(edited);
    assert!(
        took <= Duration::from_secs(1),
        "the new weights took {took:?} ({v2_name})"
    );
    let v1_after = mesh
        .app(App::V1)
        .seen()
        .iter()
        .filter(|r| r.at > first_v2 + Duration::from_millis(50))
        .count();
    assert_eq!(
        v1_after, 0,
        "hello-v1 still got requests once 0/100 was in force"
    );
    assert!(!v2.is_empty() && mesh.app(App::V1).count() > 0);
}

super::both_sources!(
    weights_split_requests_between_backends_and_the_metrics_say_which,
    weight_zero_gets_nothing_and_an_unusable_rule_or_backend_is_a_500,
    a_weight_edit_under_load_takes_effect_within_a_second_with_no_failed_request,
);

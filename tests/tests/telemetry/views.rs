//! `weft stat`, `weft edges` and `weft routes` as a user runs them (the real `weft` binary)
//! against a loopback mesh with known traffic: `web` calls `hello.demo`, whose second endpoint
//! answers every other `/ok` request `503` (retried, on the other endpoint, so callers never see
//! it) and whose apps answer every `/fail` request `500` (not retried). The printed numbers are
//! checked against the sidecars' own metrics, once reading the sidecars directly and once through
//! a real Prometheus server: success exactly where it is exact by construction (100 % effective
//! on `ok`, 0 % on `fail`), rates and the servers' success within a tolerance, identities, mTLS
//! and meshed pods exactly.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use weft_tests::apps::fault_app::{Reply, times};
use weft_tests::clients::traffic::Traffic;
use weft_tests::mesh::policy_mesh::{PolicyMesh, policy};
use weft_tests::observe::metrics::{metric_in, scrape};
use weft_tests::observe::prometheus_server::PrometheusServer;
use weft_tests::process::bins;

const WEB: &str = "spiffe://cluster.local/ns/demo/sa/web";
const HELLO: &str = "spiffe://cluster.local/ns/demo/sa/hello";

/// Routes `ok` and `fail`; retries of gateway errors with a budget that never runs out here;
/// no breaker, so the flaky endpoint keeps getting its share; a server half, so the servers'
/// sidecars know the routes too.
fn views_policy() -> String {
    policy(
        "  routes:
    - name: ok
      match: {pathPrefix: /ok}
    - name: fail
      match: {pathPrefix: /fail}
  client:
    defaults:
      retries:
        limit: 2
        on: [gateway-error]
        backoff: {base: 1ms, max: 5ms}
        budget: {ratio: 0.5, minPerSecond: 100, window: 10s}
      circuitBreaker: {consecutiveFailures: 0}
  server:
    mtls: permissive
",
    )
}

/// The mesh with its apps scripted and traffic flowing: 3 callers of `/ok`, 1 of `/fail`.
async fn mesh_with_traffic() -> (PolicyMesh, Traffic, Traffic) {
    let mesh = PolicyMesh::start(2, Some(&views_policy())).await;
    let flaky: Vec<Reply> = (0..4000)
        .map(|i| {
            if i % 2 == 0 {
                Reply::status(503)
            } else {
                Reply::ok()
            }
        })
        .collect();
    mesh.app(1).script("/ok", flaky);
    for i in 0..2 {
        mesh.app(i).script("/fail", times(4000, Reply::status(500)));
    }
    let minute = Duration::from_secs(60);
    let pause = Duration::from_millis(10);
    let ok = Traffic::start(mesh.addr(), "/ok", 3, pause, 3000, minute);
    let fail = Traffic::start(mesh.addr(), "/fail", 1, pause * 2, 1500, minute);
    weft_tests::wait::until(
        Duration::from_secs(10),
        "traffic through the mesh",
        || async { (ok.count() > 20 && fail.count() > 5).then_some(()) },
    )
    .await;
    (mesh, ok, fail)
}

fn admins(mesh: &PolicyMesh) -> Vec<String> {
    let mut all = vec![mesh.client.admin_addr.to_string()];
    for backend in &mesh.backends {
        all.push(backend.proxy.as_ref().unwrap().admin_addr.to_string());
    }
    all
}

/// Runs `weft args…`; panics with its stderr unless it succeeds; returns its stdout.
async fn weft(args: Vec<String>) -> String {
    let weft = tokio::task::spawn_blocking(|| bins::path("weft"))
        .await
        .unwrap();
    let output = tokio::process::Command::new(weft)
        .args(&args)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "weft {args:?} failed: {stderr}");
    assert!(stderr.is_empty(), "weft {args:?} warned: {stderr}");
    String::from_utf8(output.stdout).unwrap()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn args(words: &[&str], source: &[String]) -> Vec<String> {
    words
        .iter()
        .map(|w| (*w).to_owned())
        .chain(source.iter().cloned())
        .collect()
}

/// The metrics of the web sidecar and both hello sidecars, and when they were read.
async fn scrape_all(admins: &[String]) -> (Instant, Vec<String>) {
    let mut texts = Vec::new();
    for admin in admins {
        texts.push(scrape(admin.parse::<SocketAddr>().unwrap()).await);
    }
    (Instant::now(), texts)
}

/// `series` summed over `texts`, after minus before.
fn delta(before: &[String], after: &[String], series: &str) -> f64 {
    let sum = |texts: &[String]| texts.iter().map(|t| metric_in(t, series)).sum::<f64>();
    sum(after) - sum(before)
}

fn close(what: &str, shown: f64, expected: f64, tolerance: f64) {
    assert!(
        (shown - expected).abs() <= tolerance * expected.abs().max(1.0),
        "{what}: the view shows {shown}, the metrics say {expected} (tolerance {tolerance})"
    );
}

fn route<'a>(routes: &'a Value, name: &str) -> &'a Value {
    routes
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == name)
        .unwrap_or_else(|| panic!("no route {name}: {routes}"))
}

/// What every source must show exactly: one mTLS edge web → hello with both identities, the
/// workloads' meshed pods, and success 100 % / 0 % on the routes where retries make it exact.
fn assert_exact(edges: &Value, stat: &Value, routes: &Value) {
    let edges = edges.as_array().unwrap();
    assert_eq!(edges.len(), 1, "{edges:?}");
    let edge = &edges[0];
    assert_eq!(edge["id"], "demo/web->demo/hello");
    assert_eq!(edge["service"], "hello.demo");
    assert_eq!(edge["source_identity"], WEB);
    assert_eq!(edge["destination_identity"], HELLO);
    assert_eq!(edge["mtls"], true);
    let pods = |name: &str| {
        stat.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no workload {name}: {stat}"))["meshed_pods"]
            .clone()
    };
    assert_eq!(pods("web"), 1);
    assert_eq!(pods("hello"), 2);
    assert_eq!(route(routes, "ok")["effective"]["success_rate"], 1.0);
    assert_eq!(route(routes, "fail")["effective"]["success_rate"], 0.0);
    assert_eq!(route(routes, "fail")["actual"]["success_rate"], 0.0);
    assert_eq!(route(routes, "ok")["budget_exhausted"], 0.0);
    let retries = route(routes, "ok")["retries"].as_f64().unwrap();
    assert!(retries > 0.0, "no retries shown: {routes}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_read_from_the_sidecars_agree_with_their_metrics() {
    let (mesh, ok, fail) = mesh_with_traffic().await;
    let admins = admins(&mesh);
    let mut source = vec!["--window".to_owned(), "3s".to_owned()];
    source.extend(admins.iter().cloned());
    let (t0, before) = scrape_all(&admins).await;
    let (stat, svc, edges, routes, stat_table, routes_table, edges_wide) = tokio::join!(
        weft(args(&["stat", "-o", "json"], &source)),
        weft(args(&["stat", "svc", "-o", "json"], &source)),
        weft(args(&["edges", "-o", "json"], &source)),
        weft(args(&["routes", "hello.demo", "-o", "json"], &source)),
        weft(args(&["stat", "deploy"], &source)),
        weft(args(&["routes", "hello"], &source)),
        weft(args(&["edges", "-o", "wide"], &source)),
    );
    let (t1, after) = scrape_all(&admins).await;
    let seconds = t1.duration_since(t0).as_secs_f64();
    let (stat, svc, edges, routes) = (json(&stat), json(&svc), json(&edges), json(&routes));
    assert_exact(&edges, &stat, &routes);

    // Rates and the servers' success over the test's own (slightly longer) window.
    let d = |series: &str| delta(&before, &after, series);
    let outbound = d(r#"weft_requests_total{direction="outbound"}"#);
    close(
        "edge rate",
        edges[0]["stats"]["requests_per_second"].as_f64().unwrap(),
        outbound / seconds,
        0.35,
    );
    let outbound_ok =
        d(r#"weft_requests_total{direction="outbound",route="ok",status_code="200"}"#);
    let effective_success = outbound_ok / outbound;
    close(
        "edge success",
        edges[0]["stats"]["success_rate"].as_f64().unwrap(),
        effective_success,
        0.1,
    );
    let svc_row = &svc.as_array().unwrap()[0];
    assert_eq!(svc_row["name"], "hello");
    assert_eq!(svc_row["namespace"], "demo");
    close(
        "service success",
        svc_row["stats"]["success_rate"].as_f64().unwrap(),
        effective_success,
        0.1,
    );
    let actual_ok = d(r#"weft_requests_total{direction="inbound",route="ok"}"#);
    let actual_ok_200 =
        d(r#"weft_requests_total{direction="inbound",route="ok",status_code="200"}"#);
    let shown_actual = route(&routes, "ok")["actual"]["success_rate"]
        .as_f64()
        .unwrap();
    // What the servers answered shows the 503s the retries hid (how many depends on how the
    // balancer shares the requests between the two endpoints; the metrics say, checked below).
    assert!(
        shown_actual < 1.0 && shown_actual > 0.5,
        "actual success on ok: {shown_actual}"
    );
    close(
        "actual success on ok",
        shown_actual,
        actual_ok_200 / actual_ok,
        0.1,
    );
    let retries = d(r#"weft_outbound_retries_total{route="ok"}"#);
    close(
        "retries per second",
        route(&routes, "ok")["retries_per_second"].as_f64().unwrap(),
        retries / seconds,
        0.35,
    );
    let hello = stat
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "hello")
        .unwrap();
    assert!(hello["tcp_connections"].as_f64().unwrap() >= 1.0, "{hello}");
    assert!(hello["stats"]["p99_ms"].as_f64().unwrap() > 0.0, "{hello}");

    // The tables: kubectl's layout, and the same facts.
    let header = stat_table.lines().next().unwrap();
    assert!(
        header.starts_with("NAMESPACE   NAME    MESHED   SUCCESS"),
        "{stat_table}"
    );
    assert!(
        stat_table
            .lines()
            .any(|l| l.split_whitespace().take(3).eq(["demo", "hello", "2"])),
        "{stat_table}"
    );
    let row = |table: &str, first: &str| -> Vec<String> {
        table
            .lines()
            .find(|l| l.starts_with(first))
            .unwrap_or_else(|| panic!("no {first}: {table}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(row(&routes_table, "ok ")[2], "100.00%", "{routes_table}");
    assert_eq!(row(&routes_table, "fail ")[2], "0.00%", "{routes_table}");
    assert_eq!(row(&routes_table, "fail ")[4], "0.00%", "{routes_table}");
    let edge_row = row(&edges_wide, "demo/web");
    assert_eq!(
        edge_row[..6],
        ["demo/web", "demo/hello", "hello.demo", WEB, HELLO, "yes"],
        "{edges_wide}"
    );
    ok.stop().await;
    fail.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_read_from_prometheus_agree_with_its_queries() {
    let (mesh, ok, fail) = mesh_with_traffic().await;
    let admins = admins(&mesh);
    let jobs = ["web", "hello-0", "hello-1"];
    let targets: Vec<(&str, SocketAddr)> = jobs
        .iter()
        .zip(&admins)
        .map(|(j, a)| (*j, a.parse().unwrap()))
        .collect();
    let Some(prometheus) = PrometheusServer::start(&targets).await else {
        return;
    };
    prometheus.wait_up(Duration::from_secs(30)).await;
    // Five seconds of scrapes, so a 5 s window has its samples.
    prometheus
        .wait_for(
            r#"count_over_time(up{job="web"}[10s])"#,
            |s| s.first().is_some_and(|(_, v)| *v >= 6.0),
            Duration::from_secs(20),
        )
        .await;
    let url = format!("http://{}", prometheus.addr);
    let source = vec![
        "--prometheus".to_owned(),
        url,
        "--window".to_owned(),
        "5s".to_owned(),
    ];
    let (stat, edges, routes) = tokio::join!(
        weft(args(&["stat", "-o", "json"], &source)),
        weft(args(&["edges", "-o", "json"], &source)),
        weft(args(&["routes", "hello.demo", "-o", "json"], &source)),
    );
    let (stat, edges, routes) = (json(&stat), json(&edges), json(&routes));
    assert_exact(&edges, &stat, &routes);
    let one = |samples: Vec<(std::collections::BTreeMap<String, String>, f64)>| {
        samples.first().map_or(0.0, |(_, v)| *v)
    };
    let rate = one(prometheus
        .query(r#"sum(rate(weft_requests_total{direction="outbound"}[5s]))"#)
        .await);
    close(
        "edge rate",
        edges[0]["stats"]["requests_per_second"].as_f64().unwrap(),
        rate,
        0.35,
    );
    let actual = one(prometheus.query(
        r#"sum(rate(weft_requests_total{direction="inbound",route="ok",status_code="200"}[5s])) / sum(rate(weft_requests_total{direction="inbound",route="ok"}[5s]))"#,
    ).await);
    close(
        "actual success on ok",
        route(&routes, "ok")["actual"]["success_rate"]
            .as_f64()
            .unwrap(),
        actual,
        0.1,
    );
    let retries = one(prometheus
        .query(r#"sum(rate(weft_outbound_retries_total{route="ok"}[5s]))"#)
        .await);
    close(
        "retries per second",
        route(&routes, "ok")["retries_per_second"].as_f64().unwrap(),
        retries,
        0.35,
    );
    let p99 = edges[0]["stats"]["p99_ms"].as_f64().unwrap();
    assert!(p99 > 0.0 && p99 < 1000.0, "p99 {p99} ms");
    ok.stop().await;
    fail.stop().await;
}

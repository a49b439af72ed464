//! Every query of `manifests/monitoring/` against a real Prometheus scraping a live loopback
//! mesh: each dashboard panel's PromQL and template variable (with `$namespace`, `$service` and
//! `$__rate_interval` replaced by real values), each recording rule, and the operands of each
//! alert's condition return series; the alerts the scenario provokes go pending in that
//! Prometheus (which loads `weft-alerts.rules.yml`) and those it does not stay quiet.
//!
//! The mesh: `hello.demo` with two endpoints and a ServicePolicy with routes, retries under a
//! budget, a breaker, a timeout, authorization, a rate limit and a fault drill; `web` calls it,
//! `db` is rate limited, refused a route and delayed by the drill. Then both endpoints fail
//! (their breakers open and requests are shed), the control plane rejects a broken policy file,
//! and at the end it stops, so the sidecars' watches go stale.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::Method;
use tokio::time::Instant;
use weft_tests::apps::fault_app::Reply;
use weft_tests::clients::traffic::Traffic;
use weft_tests::mesh::policy_mesh::{PolicyMesh, SERVICE, policy, send};
use weft_tests::mesh::{ProxyOptions, identity};
use weft_tests::observe::metrics::metric;
use weft_tests::observe::monitoring::{
    self, DASHBOARDS, Query, dashboard, label_values_query, panel_queries, rules, substitute,
    variables, without_thresholds, yaml,
};
use weft_tests::observe::prometheus_server::PrometheusServer;

/// The template variables' values: the mesh's namespace and service.
const VALUES: [(&str, &str); 2] = [("namespace", "demo"), ("service", "hello.demo")];
/// What a query that should return series gets to start returning them: a counter first seen
/// in one scrape needs a second one (every second) before `rate` sees it.
const SERIES_DEADLINE: Duration = Duration::from_secs(15);

/// Families this mesh cannot produce, and why a query naming them may return nothing here.
const EMPTY_HERE: [(&str, &str); 2] = [
    (
        "weft_custom_resources_checked_total",
        "custom resources are watched with --kubernetes only",
    ),
    (
        "weft_injections_total",
        "the injection webhook runs in a cluster only",
    ),
];
/// Counted once the control plane is gone: checked after it stops.
const AFTER_THE_CONTROL_PLANE_STOPS: &str = "weft_discovery_stream_errors_total";

fn scenario_policy() -> String {
    let until = humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(3600));
    let (web, db) = (identity("web"), identity("db"));
    policy(&format!(
        "  routes:
    - name: read
      match: {{pathPrefix: /read}}
    - name: slow
      match: {{pathPrefix: /slow}}
  client:
    defaults:
      retries: {{limit: 2, on: [5xx], backoff: {{base: 1ms, max: 5ms}}, budget: {{ratio: 0.0, minPerSecond: 1, window: 10s}}}}
      circuitBreaker: {{consecutiveFailures: 3, failureOn: [\"5xx\"], penalty: {{base: 30s, max: 60s, jitter: 0}}, maxEjectedPercent: 100}}
    overrides:
      - routes: [slow]
        timeouts: {{request: 200ms}}
  server:
    authorization:
      allow:
        - from: [\"{web}\"]
        - from: [\"{db}\"]
          routes: [read]
    rateLimit:
      perIdentity: {{rps: 1000, burst: 1000}}
      overrides: [{{from: \"{db}\", rps: 1, burst: 1}}]
    faults:
      - routes: [read]
        from: [\"{db}\"]
        delay: {{duration: 1ms, percent: 100}}
        until: {until}
"
    ))
}

async fn get(addr: std::net::SocketAddr, path: &str) -> u16 {
    send(addr, Method::GET, path, Bytes::new())
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .status
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_and_alert_returns_series_from_a_live_mesh() {
    let mut mesh = PolicyMesh::start(2, Some(&scenario_policy())).await;
    let db = mesh
        .mesh
        .proxy("db", ProxyOptions::forward_service(SERVICE))
        .await;
    let control_plane = mesh.mesh.control_plane.as_ref().unwrap().admin_addr;
    let backend = |i: usize| mesh.backends[i].proxy.as_ref().unwrap().admin_addr;
    let rules_path = monitoring::rules_path();
    let Some(prometheus) = PrometheusServer::start_with_rules(
        &[
            ("web", mesh.client.admin_addr),
            ("db", db.admin_addr),
            ("hello-0", backend(0)),
            ("hello-1", backend(1)),
            ("control-plane", control_plane),
        ],
        &[&rules_path],
    )
    .await
    else {
        return;
    };

    // Healthy traffic while Prometheus warms up: successes, a request timeout, and db's
    // requests refused by authorization and the rate limit and delayed by the drill.
    for i in 0..20 {
        assert_eq!(get(mesh.addr(), &format!("/read/{i}")).await, 200);
    }
    for i in 0..2 {
        mesh.app(i)
            .script("/slow", [Reply::ok().after(Duration::from_secs(2))]);
    }
    assert_eq!(get(mesh.addr(), "/slow").await, 504);
    assert_eq!(get(db.forward_addrs[0], "/slow").await, 403);
    let db_statuses: BTreeSet<u16> = futures_util::future::join_all((0..6).map(|i| {
        get(
            db.forward_addrs[0],
            if i % 2 == 0 { "/read/a" } else { "/read/b" },
        )
    }))
    .await
    .into_iter()
    .collect();
    assert!(
        db_statuses.contains(&429),
        "db is rate limited: {db_statuses:?}"
    );
    // A broken policy file: rejected, the last good one stays in force.
    mesh.mesh
        .write_policies("apiVersion: weft.dev/v1alpha1\nkind: ServicePolicy\nspec: [\n");
    prometheus.wait_up(Duration::from_secs(30)).await;

    // The outage, after the first scrape so that rates see it: both endpoints fail, retries
    // spend the budget, the breakers open and requests are shed, while a caller keeps calling.
    for i in 0..2 {
        mesh.app(i).set_default(Reply::status(500));
    }
    let load = Traffic::start(
        mesh.addr(),
        "/read/outage",
        1,
        Duration::from_millis(50),
        600,
        Duration::from_secs(30),
    );
    weft_tests::wait::until(
        Duration::from_secs(10),
        "requests shed by open circuits",
        || async {
            let shed = metric(
                &mesh.client,
                r#"weft_outbound_shed_total{reason="circuit_open"}"#,
            )
            .await;
            (shed > 0.0).then_some(())
        },
    )
    .await;

    // Every query that must return series does, within one deadline for them all.
    let mut queries = dashboard_queries();
    queries.extend(rule_queries());
    let give_up = Instant::now() + SERIES_DEADLINE;
    let (after_stop, queries): (Vec<Query>, Vec<Query>) = queries
        .into_iter()
        .partition(|query| query.promql.contains(AFTER_THE_CONTROL_PLANE_STOPS));
    let mut empty = Vec::new();
    for query in queries {
        // Those that may be empty here are run (they must parse), not waited for.
        let excuse = EMPTY_HERE
            .iter()
            .find(|(family, _)| query.promql.contains(family))
            .map(|(_, why)| why);
        let deadline = if excuse.is_some() {
            Instant::now()
        } else {
            give_up
        };
        if !returns_series(&prometheus, &query, deadline).await {
            match excuse {
                Some(why) => eprintln!("{}: no series here ({why})", query.origin),
                None => empty.push(format!("{}: {}", query.origin, query.promql)),
            }
        }
    }
    assert!(empty.is_empty(), "no series:\n{}", empty.join("\n"));

    // The template variables list the mesh's namespace and service.
    for name in DASHBOARDS {
        let board = dashboard(name);
        for variable in variables(&board) {
            let Some(definition) = variable["definition"].as_str() else {
                continue;
            };
            let (promql, label) = label_values_query(&substitute(definition, &VALUES, "1m"))
                .unwrap_or_else(|| panic!("{name}: {definition} is not label_values(…)"));
            let values: Vec<String> = prometheus
                .query(&promql)
                .await
                .into_iter()
                .filter_map(|(labels, _)| labels.get(&label).cloned())
                .collect();
            assert!(
                values.contains(&"hello.demo".to_owned()),
                "{name}: {promql}: {values:?}"
            );
        }
    }

    // The alerts the outage provokes go pending; the certificate alerts stay quiet.
    let pending = wait_pending(
        &prometheus,
        &[
            "WeftErrorBudgetBurnFast",
            "WeftErrorBudgetBurnSlow",
            "WeftEndpointEjected",
            "WeftCircuitOpenShedding",
        ],
    )
    .await;
    for quiet in [
        "WeftWorkloadCertificateExpiring",
        "WeftCAExpiringSoon",
        "WeftCAExpiryCritical",
    ] {
        assert!(!pending.contains(quiet), "{quiet} is pending: {pending:?}");
    }
    let _ = load.stop().await;

    // The control plane stops: the sidecars' watches go stale and their streams break.
    mesh.mesh.stop_control_plane().await;
    wait_pending(&prometheus, &["WeftControlPlaneUnreachable"]).await;
    let give_up = Instant::now() + SERIES_DEADLINE;
    for query in after_stop {
        assert!(
            returns_series(&prometheus, &query, give_up).await,
            "no series once the control plane stopped: {}: {}",
            query.origin,
            query.promql
        );
    }
}

/// Every dashboard panel's query, variables substituted.
fn dashboard_queries() -> Vec<Query> {
    DASHBOARDS
        .iter()
        .flat_map(|name| panel_queries(name, &dashboard(name)))
        .map(|query| Query {
            promql: substitute(&query.promql, &VALUES, "1m"),
            ..query
        })
        .collect()
}

/// Each recording rule's expression and the recorded series, and the operands of each alert.
fn rule_queries() -> Vec<Query> {
    let mut queries = Vec::new();
    for rule in rules(&yaml("weft-alerts.rules.yml")["groups"]) {
        if rule.is_alert {
            for operand in without_thresholds(&rule.expr) {
                queries.push(Query {
                    origin: format!("alert {} without its threshold", rule.name),
                    promql: operand,
                });
            }
        } else {
            for promql in [rule.expr.clone(), rule.name.clone()] {
                queries.push(Query {
                    origin: format!("recording rule {}", rule.name),
                    promql,
                });
            }
        }
    }
    queries
}

/// Whether `query` returns at least one series before `give_up` (polling as scrapes arrive).
async fn returns_series(prometheus: &PrometheusServer, query: &Query, give_up: Instant) -> bool {
    loop {
        if !prometheus.query(&query.promql).await.is_empty() {
            return true;
        }
        if Instant::now() >= give_up {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until every alert of `names` is pending or firing; returns every alert that is.
async fn wait_pending(prometheus: &PrometheusServer, names: &[&str]) -> BTreeSet<String> {
    let alerts = prometheus
        .wait_for(
            "ALERTS",
            |samples| {
                names.iter().all(|name| {
                    samples.iter().any(|(labels, _)| {
                        labels.get("alertname").map(String::as_str) == Some(name)
                    })
                })
            },
            SERIES_DEADLINE,
        )
        .await;
    alerts
        .into_iter()
        .filter_map(|(labels, _)| labels.get("alertname").cloned())
        .collect()
}

//! Telemetry's real consumers, checked on their own before weft's telemetry is checked against
//! them: the OTLP collector records an OpenTelemetry-instrumented app's trace as Jaeger would,
//! and the control plane's `/metrics` passes `promtool` and is scraped and queried by a real
//! Prometheus server. If these fail, a proxy trace or metrics test failing says nothing about
//! the proxy.
//!
//! Skipped unless python with the OpenTelemetry SDK, `promtool` and `prometheus` are installed;
//! under `WEFT_REQUIRE_PEERS=1` (CI) a missing one fails instead.

#![allow(clippy::unwrap_used)] // a failed step fails the test, with its message

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use weft_cli::prometheus_text::sum;
use weft_tests::mesh::{Mesh, ProxyOptions};
use weft_tests::otlp::{Collector, ExportedSpan, TracedServer, python_with_otel, traced_client};
use weft_tests::policy_mesh::{PolicyMesh, send};
use weft_tests::prometheus_server::PrometheusServer;
use weft_tests::{clients, programs, wait};

const HOUR: Duration = Duration::from_secs(3600);
/// Spans are batched every 100 ms by the traced server; the client flushes before it exits.
const SPAN_DEADLINE: Duration = Duration::from_secs(10);
/// A scrape every second; the first comes within a second of the server starting.
const SCRAPE_DEADLINE: Duration = Duration::from_secs(20);

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn the_one<'a>(spans: &'a [ExportedSpan], kind: &str) -> &'a ExportedSpan {
    let of_kind: Vec<_> = spans.iter().filter(|s| s.kind == kind).collect();
    assert_eq!(of_kind.len(), 1, "one {kind} span expected: {spans:#?}");
    of_kind[0]
}

#[tokio::test]
async fn the_collector_records_a_python_apps_trace() {
    let Some(python) = python_with_otel() else {
        return;
    };
    let collector = Collector::start(&python);
    let server = TracedServer::start(&python, "greeter", &collector);
    let url = format!("http://{}/hello?x=1", server.addr);
    let reply = traced_client(&python, &url, &[("x-test", "1")], "caller", &collector).await;
    assert_eq!(reply["status"], 200, "{reply}");
    let trace_id = reply["trace_id"].as_str().unwrap();
    let client_span_id = reply["span_id"].as_str().unwrap();
    let seen = &reply["body"];
    let traceparent = seen["traceparent"].as_str().unwrap();
    assert!(
        traceparent.starts_with(&format!("00-{trace_id}-{client_span_id}-")),
        "the server saw {traceparent}, not the client's context"
    );
    assert_eq!(seen["path"], "/hello?x=1");
    assert_eq!(seen["b3"], serde_json::Value::Null);

    let spans = collector.wait_for_spans(2, SPAN_DEADLINE).await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let client = the_one(&spans, "client");
    let server_span = the_one(&spans, "server");
    for span in [client, server_span] {
        assert_eq!(span.trace_id, trace_id);
        assert!(
            is_hex(&span.trace_id, 32) && is_hex(&span.span_id, 16),
            "{span:?}"
        );
        assert_eq!(span.scope, "weft-tests.traced_app");
        assert_eq!(span.status_code, "unset");
        assert_eq!(span.attr("http.response.status_code"), Some(&200.into()));
        assert!(span.start_unix_nano > 0 && span.end_unix_nano >= span.start_unix_nano);
        // OTLP's flags: bit 8 says whether bit 9 (the parent is remote) is known.
        assert_eq!(span.flags & 0x100, 0x100, "{span:?}");
    }
    assert_eq!(client.span_id, client_span_id);
    assert!(client.is_root(), "{client:?}");
    assert_eq!(client.service_name(), Some("caller"));
    assert_eq!(client.attr("url.full"), Some(&url.as_str().into()));
    assert_eq!(client.flags & 0x200, 0, "a root has no remote parent");
    assert_eq!(server_span.parent_span_id, client.span_id);
    assert_eq!(
        server_span.flags & 0x200,
        0x200,
        "its parent came over the wire"
    );
    assert_eq!(seen["span_id"], server_span.span_id.as_str());
    assert_eq!(server_span.service_name(), Some("greeter"));
    assert_eq!(server_span.name, "GET /hello");
    assert_eq!(server_span.attr("url.path"), Some(&"/hello".into()));
    // The server's span lies within the client's.
    assert!(server_span.start_unix_nano >= client.start_unix_nano);
    assert!(server_span.end_unix_nano <= client.end_unix_nano + 1_000_000);
    assert!(
        collector.export_calls() >= 2,
        "each process exports its own"
    );
    assert_eq!(collector.trace(trace_id).len(), 2);
}

/// A caller's proxy and an endpoint's proxy, both certified and watching (a destination watch
/// and a server-policy watch), then the control plane's `/metrics` through `promtool`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_metrics_pass_promtool() {
    if !programs::available("promtool", "prometheus") {
        return;
    }
    let mesh = PolicyMesh::start(1, None).await;
    // A request through both proxies: the endpoint's proxy watches its own address as a server.
    let answer = send(
        mesh.addr(),
        http::Method::GET,
        "/hello",
        bytes::Bytes::new(),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    let admin = mesh.mesh.control_plane.as_ref().unwrap().admin_addr;
    let metrics = || async {
        let reply = clients::get(admin, "/metrics", "control-plane")
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        reply.body
    };
    let text = wait::until(
        Duration::from_secs(10),
        "a destination and a server watch",
        || async {
            let text = metrics().await;
            let watching = sum(&text, "weft_discovery_watches", &[("kind", "destination")]) >= 1.0
                && sum(&text, "weft_discovery_watches", &[("kind", "server")]) >= 1.0;
            watching.then_some(text)
        },
    )
    .await;

    let complaints = programs::promtool_complaints(&text);
    assert!(
        complaints.is_empty(),
        "promtool check metrics: {complaints}\n{text}"
    );
    // Two proxies, one certificate each (at least: a renewal would be a third).
    let issued = sum(
        &text,
        "weft_certify_requests_total",
        &[("result", "issued")],
    );
    assert!(issued >= 2.0, "{text}");
    assert_eq!(
        sum(
            &text,
            "weft_certify_duration_seconds_count",
            &[("result", "issued")]
        ),
        issued,
        "every issued certificate is timed"
    );
    assert!(sum(&text, "weft_certify_duration_seconds_sum", &[]) > 0.0);
    assert!(sum(&text, "weft_discovery_requests_total", &[("result", "ok")]) >= 2.0);
    let build_info = format!(
        "weft_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    assert!(text.lines().any(|l| l == build_info), "{text}");
    for family in [
        "# TYPE weft_certify_duration_seconds histogram",
        "# TYPE weft_discovery_watches gauge",
        "# TYPE weft_ca_expiry_timestamp_seconds gauge",
        "# TYPE weft_build_info gauge",
    ] {
        assert!(text.contains(family), "{family} missing from:\n{text}");
    }
}

fn value_of(samples: &[(std::collections::BTreeMap<String, String>, f64)]) -> f64 {
    assert_eq!(samples.len(), 1, "one series expected: {samples:?}");
    samples[0].1
}

/// A real Prometheus server scrapes the control plane's admin port; PromQL over what it stored
/// gives the CA's expiry in the future and the certificates issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_control_plane() {
    let mesh = Mesh::start(HOUR).await;
    let admin = mesh.control_plane.as_ref().unwrap().admin_addr;
    // Started first: its first scrape is ~5 s away, time enough for the proxy to be certified.
    let Some(prometheus) = PrometheusServer::start(&[("weft-control-plane", admin)]).await else {
        return;
    };
    let _proxy = mesh.proxy("web", ProxyOptions::default()).await;
    prometheus.wait_up(SCRAPE_DEADLINE).await;

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let expiry = value_of(
        &prometheus
            .query(r#"weft_ca_expiry_timestamp_seconds{job="weft-control-plane"}"#)
            .await,
    );
    assert!(
        expiry > now,
        "the CA expires at {expiry}, before now ({now})"
    );
    let issued = prometheus
        .wait_for(
            r#"sum(weft_certify_requests_total{result="issued"})"#,
            |samples| samples.len() == 1 && samples[0].1 >= 1.0,
            SCRAPE_DEADLINE,
        )
        .await;
    assert_eq!(value_of(&issued), 1.0, "one proxy, one certificate");
    let build = prometheus.query("weft_build_info == 1").await;
    assert_eq!(build.len(), 1, "{build:?}");
    assert_eq!(
        build[0].0.get("version").map(String::as_str),
        Some(env!("CARGO_PKG_VERSION"))
    );
    let kinds = prometheus
        .query("sum by (kind) (weft_discovery_watches)")
        .await;
    let mut kinds: Vec<_> = kinds
        .iter()
        .map(|(labels, _)| labels["kind"].as_str())
        .collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["destination", "server"]);
    let timed = value_of(
        &prometheus
            .query(r#"weft_certify_duration_seconds_count{result="issued"}"#)
            .await,
    );
    assert_eq!(timed, 1.0);
}

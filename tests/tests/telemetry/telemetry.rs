//! The proxies' telemetry as its consumers see it: request metrics on both sides of a hop,
//! checked by `promtool` and queried through a real Prometheus server; spans exported over OTLP
//! to a collector built on the official protobuf definitions, joined with the spans of apps
//! instrumented with the OpenTelemetry Python SDK; W3C and B3 propagation; sampling; a dead or
//! black-holed collector; access log lines.
//!
//! The Prometheus, promtool and OTLP tests skip without their programs (python with the
//! OpenTelemetry SDK, `prometheus`); under `WEFT_REQUIRE_PEERS=1` (CI) a missing one fails.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use weft_proxy::RunningProxy;
use weft_tests::apps::fault_app::{FaultApp, Reply as AppReply, grpc_frame};
use weft_tests::clients::{self, Reply};
use weft_tests::mesh::policy_mesh::{PolicyMesh, admin_get, send};
use weft_tests::mesh::{Mesh, ProxyOptions, identity};
use weft_tests::observe::metrics::{metric, metric_in};
use weft_tests::observe::otlp::{
    Collector, ExportedSpan, TracedServer, one_of_kind, python_with_otel, traced_client,
};
use weft_tests::observe::prometheus_server::PrometheusServer;
use weft_tests::{process::programs, wait};

const HOUR: Duration = Duration::from_secs(3600);
const SPAN_DEADLINE: Duration = Duration::from_secs(15);
const WEB: &str = "spiffe://cluster.local/ns/demo/sa/web";
const HELLO: &str = "spiffe://cluster.local/ns/demo/sa/hello";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";

/// `web`'s sidecar forwarding to `hello`'s in front of `app`, each with `options`' telemetry.
async fn sidecars(
    mesh: &Mesh,
    app: SocketAddr,
    options: &ProxyOptions,
) -> (RunningProxy, RunningProxy) {
    sidecars_with(mesh, app, options.clone(), options.clone()).await
}

/// [`sidecars`] with telemetry options of their own for the server's and the caller's sidecar.
async fn sidecars_with(
    mesh: &Mesh,
    app: SocketAddr,
    server: ProxyOptions,
    client: ProxyOptions,
) -> (RunningProxy, RunningProxy) {
    let server = mesh
        .proxy(
            "hello",
            ProxyOptions {
                app: Some(app),
                ..server
            },
        )
        .await;
    let client = mesh
        .proxy(
            "web",
            ProxyOptions {
                forwards: vec![vec![(identity("hello"), server.inbound_addr)]],
                ..client
            },
        )
        .await;
    (client, server)
}

fn traced(collector: &Collector, sampling: f64) -> ProxyOptions {
    ProxyOptions {
        trace_collector: Some(collector.addr),
        trace_sampling: Some(sampling),
        ..ProxyOptions::default()
    }
}

async fn get(proxy: &RunningProxy, path: &str, headers: &[(&str, &str)]) -> Reply {
    clients::get_with_headers(proxy.forward_addrs[0], path, "hello.demo:8080", headers)
        .await
        .unwrap()
}

/// A gRPC call over HTTP/2 through `addr`: its response status and `grpc-status` trailer.
async fn grpc_call(addr: SocketAddr, path: &str) -> (u16, Option<String>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::post(format!("http://hello.demo:8080{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(grpc_frame(b"hi")))
        .unwrap();
    let response = sender.send_request(req).await.unwrap();
    let status = response.status().as_u16();
    let collected = response.into_body().collect().await.unwrap();
    let code = collected
        .trailers()
        .and_then(|t| t.get("grpc-status"))
        .map(|v| v.to_str().unwrap().to_owned());
    (status, code)
}

fn traceparent_of(seen: &weft_tests::apps::fault_app::SeenRequest) -> (String, String, String) {
    let value = seen
        .header("traceparent")
        .expect("the app got a traceparent");
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    assert_eq!(parts[0], "00");
    (
        parts[1].to_owned(),
        parts[2].to_owned(),
        parts[3].to_owned(),
    )
}

// ---------------------------------------------------------------------------------------------
// Metrics

/// The server's sidecar names its port's service in `destination_service` as discovery's answer
/// does, also when the service has no ServicePolicy (the by-hand mesh of docs/getting-started.md
/// greps for it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_requests_name_their_service_without_a_server_policy() {
    let mesh = PolicyMesh::start(1, None).await;
    let answer = send(mesh.addr(), http::Method::GET, "/hello", Bytes::new())
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    let server = mesh.backends[0].proxy.as_ref().unwrap();
    let text = wait::until(Duration::from_secs(5), "the inbound count", || async {
        let (_, text) = admin_get(server, "/metrics").await.ok()?;
        (metric_in(&text, r#"weft_requests_total{direction="inbound"}"#) >= 1.0).then_some(text)
    })
    .await;
    let series = r#"weft_requests_total{direction="inbound",destination_service="hello.demo",route="default",status_code="200"}"#;
    assert_eq!(metric_in(&text, series), 1.0, "{series} in\n{text}");
}

/// Requests the app answered (200, 503, a gRPC status in the trailers) and one weft answered
/// (a peer that is not there), counted on both sides with every label a dashboard groups by;
/// then both scrapes through `promtool`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_counted_on_both_sides_with_its_labels() {
    let mesh = Mesh::start(HOUR).await;
    let app = FaultApp::start("hello").await;
    app.script("/fail", [AppReply::status(503)]);
    app.script("/pkg.Greeter/Fail", [AppReply::grpc_error(14)]);
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let server = mesh.proxy("hello", ProxyOptions::app(app.addr)).await;
    let client = mesh
        .proxy(
            "web",
            ProxyOptions {
                forwards: vec![
                    vec![(identity("hello"), server.inbound_addr)],
                    vec![(identity("hello"), dead_addr)],
                ],
                ..ProxyOptions::default()
            },
        )
        .await;
    for _ in 0..3 {
        assert_eq!(get(&client, "/ok", &[]).await.status, 200);
    }
    assert_eq!(get(&client, "/fail", &[]).await.status, 503);
    let (status, code) = grpc_call(client.forward_addrs[0], "/pkg.Greeter/Fail").await;
    assert_eq!((status, code.as_deref()), (200, Some("14")));
    let refused = clients::get(client.forward_addrs[1], "/ok", "hello.demo:8080")
        .await
        .unwrap();
    assert!(refused.header("weft-error").is_some(), "{refused:?}");

    let service = HELLO; // a fixed forward is named after its first endpoint's identity
    let outbound = format!(
        "weft_requests_total{{direction=\"outbound\",source_identity=\"{WEB}\",destination_service=\"{service}\",route=\"default\""
    );
    let wait_for = |proxy: &'static str, text: &str, series: String, n: f64| {
        assert_eq!(metric_in(text, &series), n, "{proxy}: {series} in\n{text}");
    };
    let client_text = wait::until(Duration::from_secs(5), "the client's counts", || async {
        let (_, text) = admin_get(&client, "/metrics").await.unwrap();
        (metric_in(&text, "weft_requests_total") >= 6.0).then_some(text)
    })
    .await;
    wait_for(
        "client",
        &client_text,
        format!(
            "{outbound},destination_identity=\"{HELLO}\",status_code=\"200\",grpc_status=\"\",answered_by=\"app\"}}"
        ),
        3.0,
    );
    wait_for(
        "client",
        &client_text,
        format!(
            "{outbound},destination_identity=\"{HELLO}\",status_code=\"503\",answered_by=\"app\"}}"
        ),
        1.0,
    );
    wait_for(
        "client",
        &client_text,
        format!(
            "{outbound},destination_identity=\"{HELLO}\",status_code=\"200\",grpc_status=\"14\",answered_by=\"app\"}}"
        ),
        1.0,
    );
    // Nobody answered at the dead address: weft did, and no endpoint identity was proven.
    wait_for(
        "client",
        &client_text,
        format!(
            "{outbound},destination_identity=\"\",status_code=\"{}\",answered_by=\"weft\"}}",
            refused.status.as_str()
        ),
        1.0,
    );
    wait_for(
        "client",
        &client_text,
        format!(
            "weft_request_duration_seconds_count{{direction=\"outbound\",destination_identity=\"{HELLO}\",status_code=\"200\",grpc_status=\"\"}}"
        ),
        3.0,
    );

    let server_text = wait::until(Duration::from_secs(5), "the server's counts", || async {
        let (_, text) = admin_get(&server, "/metrics").await.unwrap();
        (metric_in(&text, "weft_requests_total") >= 5.0).then_some(text)
    })
    .await;
    let inbound = format!(
        "weft_requests_total{{direction=\"inbound\",source_identity=\"{WEB}\",destination_identity=\"{HELLO}\",route=\"default\""
    );
    wait_for(
        "server",
        &server_text,
        format!("{inbound},status_code=\"200\",grpc_status=\"\",answered_by=\"app\"}}"),
        3.0,
    );
    wait_for(
        "server",
        &server_text,
        format!("{inbound},status_code=\"503\",answered_by=\"app\"}}"),
        1.0,
    );
    wait_for(
        "server",
        &server_text,
        format!("{inbound},grpc_status=\"14\"}}"),
        1.0,
    );
    assert_eq!(
        metric_in(&server_text, "weft_requests_total{direction=\"outbound\"}"),
        0.0
    );
    // The histogram's buckets resolve a loopback hop: some request took under 25 ms.
    assert!(
        metric_in(
            &server_text,
            "weft_request_duration_seconds_bucket{direction=\"inbound\",status_code=\"200\",grpc_status=\"\",le=\"0.025\"}"
        ) >= 1.0,
        "{server_text}"
    );

    if programs::available("promtool", "prometheus") {
        for (who, text) in [("client", &client_text), ("server", &server_text)] {
            let said = programs::promtool_complaints(text);
            assert!(
                said.is_empty(),
                "promtool on the {who}'s /metrics: {said}\n{text}"
            );
        }
    }
}

/// A caller that hangs up before the answer: both sidecars count the request under
/// `status_code="0"`, `answered_by="none"` (as Envoy and Istio count a downstream disconnect),
/// and the access log says it was not complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_its_caller_abandons_is_counted() {
    use tokio::io::AsyncWriteExt as _;
    let mesh = Mesh::start(HOUR).await;
    let app = FaultApp::start("hello").await;
    app.script("/slow", [AppReply::ok().after(Duration::from_secs(30))]);
    let client_log = mesh.dir.path().join("web-access.log");
    let (client, server) = sidecars_with(
        &mesh,
        app.addr,
        ProxyOptions::default(),
        ProxyOptions {
            access_log: Some(client_log.clone()),
            ..ProxyOptions::default()
        },
    )
    .await;
    let mut caller = tokio::net::TcpStream::connect(client.forward_addrs[0])
        .await
        .unwrap();
    caller
        .write_all(b"GET /slow HTTP/1.1\r\nhost: hello.demo:8080\r\n\r\n")
        .await
        .unwrap();
    weft_tests::apps::fault_app::wait_count(&app, 1, Duration::from_secs(5)).await;
    drop(caller);
    let abandoned = "weft_requests_total{status_code=\"0\",answered_by=\"none\",route=\"default\"}";
    for (side, proxy) in [("client", &client), ("server", &server)] {
        wait::until(
            Duration::from_secs(5),
            "the abandoned request to be counted",
            || async { (metric(proxy, abandoned).await == 1.0).then_some(()) },
        )
        .await;
        assert_eq!(
            metric(proxy, "weft_requests_total{answered_by=\"app\"}").await,
            0.0,
            "{side}"
        );
    }
    let line = wait::until(Duration::from_secs(5), "the access log line", || async {
        let text = std::fs::read_to_string(&client_log).unwrap_or_default();
        text.lines()
            .next()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
    })
    .await;
    assert_eq!(line["status"], 0, "{line}");
    assert_eq!(line["answered_by"], "none", "{line}");
    assert_eq!(line["complete"], false, "{line}");
    assert_eq!(line["path"], "/slow", "{line}");
}

/// A real Prometheus scrapes the caller's proxy, the server's proxy and the control plane;
/// PromQL gives requests per caller, a p99 from the histogram and a success rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_reads_the_golden_signals() {
    let mesh = Mesh::start(HOUR).await;
    let app = FaultApp::start("hello").await;
    let server = mesh.proxy("hello", ProxyOptions::app(app.addr)).await;
    let to_hello = || ProxyOptions::forward_to(vec![(identity("hello"), server.inbound_addr)]);
    let web = mesh.proxy("web", to_hello()).await;
    let db = mesh.proxy("db", to_hello()).await;
    let control_plane = mesh.control_plane.as_ref().unwrap().admin_addr;
    // Prometheus's first scrape comes some seconds after it starts: start it first.
    let Some(prometheus) = PrometheusServer::start(&[
        ("web", web.admin_addr),
        ("hello", server.admin_addr),
        ("control-plane", control_plane),
    ])
    .await
    else {
        return;
    };
    // web: 30 requests, 6 answered 503 by the app and 2 slow; db: 10.
    app.script("/fail", (0..6).map(|_| AppReply::status(503)));
    app.script(
        "/slow",
        (0..2).map(|_| AppReply::ok().after(Duration::from_millis(300))),
    );
    for i in 0..30 {
        let path = match i {
            0..6 => "/fail",
            6..8 => "/slow",
            _ => "/ok",
        };
        get(&web, path, &[]).await;
    }
    for _ in 0..10 {
        assert_eq!(get(&db, "/ok", &[]).await.status, 200);
    }
    prometheus.wait_up(Duration::from_secs(30)).await;

    let deadline = Duration::from_secs(20);
    let per_caller = prometheus
        .wait_for(
            r#"sum by (source_identity) (weft_requests_total{job="hello",direction="inbound"})"#,
            |samples| samples.iter().map(|(_, v)| v).sum::<f64>() >= 40.0,
            deadline,
        )
        .await;
    let count = |who: &str| {
        per_caller
            .iter()
            .find(|(labels, _)| labels.get("source_identity").map(String::as_str) == Some(who))
            .map(|(_, v)| *v)
    };
    assert_eq!(count(WEB), Some(30.0), "{per_caller:?}");
    assert_eq!(
        count("spiffe://cluster.local/ns/demo/sa/db"),
        Some(10.0),
        "{per_caller:?}"
    );
    let success = prometheus
        .query(r#"sum(weft_requests_total{job="hello",direction="inbound",status_code!~"5.."}) / sum(weft_requests_total{job="hello",direction="inbound"})"#)
        .await;
    assert_eq!(success.len(), 1, "{success:?}");
    assert!((success[0].1 - 34.0 / 40.0).abs() < 1e-9, "{success:?}");
    // 2 of 40 took 300 ms: the 99th percentile lies in their bucket, (0.25 s, 0.5 s].
    let p99 = prometheus
        .query(r#"histogram_quantile(0.99, sum by (le) (weft_request_duration_seconds_bucket{job="hello",direction="inbound"}))"#)
        .await;
    assert!(
        p99.len() == 1 && (0.25..=0.5).contains(&p99[0].1),
        "p99 {p99:?}"
    );
    let web_side = prometheus
        .query(&format!(
            r#"sum(weft_requests_total{{job="web",direction="outbound",destination_identity="{HELLO}"}})"#
        ))
        .await;
    assert_eq!(web_side.first().map(|s| s.1), Some(30.0), "{web_side:?}");
    let issued = prometheus
        .query(r#"sum(weft_certify_requests_total{job="control-plane",result="issued"})"#)
        .await;
    assert!(issued.first().is_some_and(|s| s.1 >= 3.0), "{issued:?}");
    // The rate form of docs/telemetry.md's dashboard queries: more traffic after the first scrapes.
    for _ in 0..5 {
        assert_eq!(get(&db, "/ok", &[]).await.status, 200);
    }
    prometheus
        .wait_for(
            r#"sum(rate(weft_requests_total{job="hello",direction="inbound"}[1m]))"#,
            |samples| samples.first().is_some_and(|s| s.1 > 0.0),
            deadline,
        )
        .await;
}

// ---------------------------------------------------------------------------------------------
// Traces

/// The app's client span, the client sidecar's span, the server sidecar's span and the server
/// app's span: one trace, each the parent of the next, with identities and status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_joins_both_apps_and_both_sidecars() {
    let Some(python) = python_with_otel() else {
        return;
    };
    let collector = Collector::start(&python);
    let mesh = Mesh::start(HOUR).await;
    let app = TracedServer::start(&python, "hello-app", &collector);
    // Sampling 0: only the app's decision records anything.
    let (client, _server) = sidecars(&mesh, app.addr, &traced(&collector, 0.0)).await;
    let url = format!("http://{}/hello", client.forward_addrs[0]);
    let reply = traced_client(
        &python,
        &url,
        &[("host", "hello.demo:8080")],
        "web-app",
        &collector,
    )
    .await;
    assert_eq!(reply["status"], 200, "{reply}");
    let trace_id = reply["trace_id"].as_str().unwrap().to_owned();
    let app_client_span = reply["span_id"].as_str().unwrap().to_owned();

    let spans = collector
        .wait_until(SPAN_DEADLINE, "4 spans of the trace", |spans| {
            spans.iter().filter(|s| s.trace_id == trace_id).count() >= 4
        })
        .await;
    let trace: Vec<ExportedSpan> = spans
        .into_iter()
        .filter(|s| s.trace_id == trace_id)
        .collect();
    assert_eq!(trace.len(), 4, "{trace:#?}");
    let by = |service: &str, kind: &str| {
        trace
            .iter()
            .find(|s| s.service_name() == Some(service) && s.kind == kind)
            .unwrap_or_else(|| panic!("no {kind} span of {service}: {trace:#?}"))
    };
    let app_client = by("web-app", "client");
    let web_sidecar = by("web", "client");
    let hello_sidecar = by("hello", "server");
    let app_server = by("hello-app", "server");
    assert_eq!(app_client.span_id, app_client_span);
    assert_eq!(web_sidecar.parent_span_id, app_client.span_id);
    assert_eq!(hello_sidecar.parent_span_id, web_sidecar.span_id);
    assert_eq!(app_server.parent_span_id, hello_sidecar.span_id);
    assert_eq!(reply["body"]["span_id"], app_server.span_id.as_str());

    for sidecar in [web_sidecar, hello_sidecar] {
        assert_eq!(sidecar.scope, "weft-proxy");
        assert_eq!(sidecar.name, "GET");
        assert_eq!(sidecar.status_code, "unset", "{sidecar:?}");
        assert_eq!(sidecar.attr("http.request.method"), Some(&"GET".into()));
        assert_eq!(sidecar.attr("http.response.status_code"), Some(&200.into()));
        assert_eq!(sidecar.attr("url.path"), Some(&"/hello".into()));
        assert_eq!(sidecar.attr("server.address"), Some(&"hello.demo".into()));
        assert_eq!(sidecar.attr("weft.client.identity"), Some(&WEB.into()));
        assert_eq!(sidecar.attr("weft.server.identity"), Some(&HELLO.into()));
        assert_eq!(sidecar.attr("weft.answered_by"), Some(&"app".into()));
        assert_eq!(
            sidecar.resource_attr("service.namespace"),
            Some(&"demo".into())
        );
        // The app's span lies within the sidecars'.
        assert!(sidecar.start_unix_nano <= app_server.start_unix_nano + 1_000_000);
    }
    assert_eq!(web_sidecar.attr("weft.attempts"), Some(&1.into()));
    assert_eq!(web_sidecar.events.len(), 1, "one attempt: {web_sidecar:?}");
    assert_eq!(
        hello_sidecar.resource_attr("weft.identity"),
        Some(&HELLO.into())
    );
}

/// W3C and both B3 forms in: the same trace id out, a new span id, and the sidecars' spans
/// hang below the incoming span.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w3c_and_b3_contexts_join_the_callers_trace() {
    let Some(python) = python_with_otel() else {
        return;
    };
    let collector = Collector::start(&python);
    let mesh = Mesh::start(HOUR).await;
    let app = FaultApp::start("hello").await;
    let (client, _server) = sidecars(&mesh, app.addr, &traced(&collector, 0.0)).await;
    let traceparent = format!("00-{TRACE}-{SPAN}-01");
    let b3_single = format!("{TRACE}-{SPAN}-1");
    let cases: [(&str, Vec<(&str, &str)>); 3] = [
        (
            "w3c",
            vec![("traceparent", &traceparent), ("tracestate", "vendor=1")],
        ),
        ("b3", vec![("b3", &b3_single)]),
        (
            "b3-multi",
            vec![
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-sampled", "1"),
            ],
        ),
    ];
    let mut expected_spans = 0;
    for (form, headers) in cases {
        app.clear();
        assert_eq!(
            get(&client, &format!("/{form}"), &headers).await.status,
            200
        );
        let seen = app.seen().pop().unwrap();
        let (trace, span, flags) = traceparent_of(&seen);
        assert_eq!((trace.as_str(), flags.as_str()), (TRACE, "01"), "{form}");
        assert_ne!(
            span, SPAN,
            "{form}: the app's parent is the server sidecar's span"
        );
        match form {
            "w3c" => assert_eq!(seen.header("tracestate"), Some("vendor=1")),
            "b3" => assert_eq!(
                seen.header("b3"),
                Some(format!("{TRACE}-{span}-1").as_str())
            ),
            _ => {
                assert_eq!(seen.header("x-b3-traceid"), Some(TRACE));
                assert_eq!(seen.header("x-b3-spanid"), Some(span.as_str()));
                assert_eq!(seen.header("x-b3-sampled"), Some("1"));
            }
        }
        expected_spans += 2;
        let spans = collector
            .wait_for_spans(expected_spans, SPAN_DEADLINE)
            .await;
        let path = format!("/{form}");
        let of_request: Vec<ExportedSpan> = spans
            .into_iter()
            .filter(|s| s.attr("url.path") == Some(&path.as_str().into()))
            .collect();
        let client_span = one_of_kind(&of_request, "client");
        let server_span = one_of_kind(&of_request, "server");
        assert_eq!(client_span.trace_id, TRACE, "{form}");
        assert_eq!(client_span.parent_span_id, SPAN, "{form}");
        assert_eq!(server_span.parent_span_id, client_span.span_id, "{form}");
        assert_eq!(server_span.span_id, span, "{form}");
    }
}

/// A caller's "not sampled" is obeyed even at sampling 1, and the next hops learn it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsampled_caller_is_never_recorded() {
    let Some(python) = python_with_otel() else {
        return;
    };
    let collector = Collector::start(&python);
    let mesh = Mesh::start(HOUR).await;
    let app = FaultApp::start("hello").await;
    let (client, _server) = sidecars(&mesh, app.addr, &traced(&collector, 1.0)).await;
    let unsampled = format!("00-{TRACE}-{SPAN}-00");
    for _ in 0..5 {
        get(&client, "/unsampled", &[("traceparent", &unsampled)]).await;
        let (trace, _, flags) = traceparent_of(&app.seen().pop().unwrap());
        assert_eq!((trace.as_str(), flags.as_str()), (TRACE, "00"));
    }
    // Then one the proxies sample: once its spans are in, the earlier ones would be too.
    get(&client, "/sampled", &[]).await;
    let spans = collector.wait_for_spans(2, SPAN_DEADLINE).await;
    assert!(
        spans.iter().all(|s| s.trace_id != TRACE),
        "an unsampled request was exported: {spans:#?}"
    );
    assert_eq!(spans.len(), 2, "{spans:#?}");
}

/// `--trace-sampling 0.25` on the caller's sidecar over 400 requests without a context; the
/// server's sidecar (sampling 0) records exactly the requests the caller's sampled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sampling_ratio_holds_and_every_hop_agrees() {
    let Some(python) = python_with_otel() else {
        return;
    };
    let collector = Collector::start(&python);
    let mesh = Mesh::start(HOUR).await;
    let app = FaultApp::start("hello").await;
    let (client, _server) = sidecars_with(
        &mesh,
        app.addr,
        traced(&collector, 0.0),
        traced(&collector, 0.25),
    )
    .await;
    let mut caller = weft_tests::mesh::policy_mesh::Caller::connect(client.forward_addrs[0])
        .await
        .unwrap();
    let n = 400;
    for _ in 0..n {
        let answer = caller
            .send(http::Method::GET, "/r", Bytes::new())
            .await
            .unwrap();
        assert_eq!(answer.status, 200);
    }
    let seen = app.seen();
    assert_eq!(seen.len(), n);
    let sampled: Vec<String> = seen
        .iter()
        .map(traceparent_of)
        .filter(|(_, _, flags)| flags == "01")
        .map(|(trace, _, _)| trace)
        .collect();
    // Binomial(400, 0.25): mean 100, standard deviation ~8.7.
    assert!(
        (60..=140).contains(&sampled.len()),
        "{} of {n} sampled",
        sampled.len()
    );
    let spans = collector
        .wait_for_spans(2 * sampled.len(), SPAN_DEADLINE)
        .await;
    assert_eq!(spans.len(), 2 * sampled.len());
    for trace in &sampled {
        let of_trace: Vec<_> = spans.iter().filter(|s| &s.trace_id == trace).collect();
        assert_eq!(of_trace.len(), 2, "{trace}: {of_trace:#?}");
    }
    // The collector writes the spans before it answers; the proxy counts them once it has the
    // answer.
    let exported = sampled.len() as f64;
    wait::until(
        Duration::from_secs(5),
        "the exported spans to be counted",
        || async {
            (metric(&client, "weft_trace_spans_exported_total").await == exported).then_some(())
        },
    )
    .await;
}

/// A collector that refuses connections, and one that accepts them and never answers: every
/// request is answered as fast as without tracing, and the lost spans are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_or_black_holed_collector_never_holds_up_a_request() {
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let black_hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let black_hole_addr = black_hole.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = black_hole.accept().await {
            held.push(socket);
        }
    });
    let mesh = Mesh::start(HOUR).await;
    let app = FaultApp::start("hello").await;
    for collector in [dead_addr, black_hole_addr] {
        let options = ProxyOptions {
            trace_collector: Some(collector),
            trace_sampling: Some(1.0),
            ..ProxyOptions::default()
        };
        let (client, _server) = sidecars(&mesh, app.addr, &options).await;
        let mut slowest = Duration::ZERO;
        for _ in 0..100 {
            let started = Instant::now();
            assert_eq!(get(&client, "/r", &[]).await.status, 200);
            slowest = slowest.max(started.elapsed());
        }
        // An export waits up to 5 s; a request that waited on one would show it.
        assert!(
            slowest < Duration::from_secs(1),
            "{collector}: slowest {slowest:?}"
        );
        wait::until(
            Duration::from_secs(20),
            "the lost spans to be counted",
            || async {
                let lost = metric(
                    &client,
                    "weft_trace_spans_dropped_total{reason=\"export_failed\"}",
                )
                .await;
                (lost >= 1.0).then_some(())
            },
        )
        .await;
    }
    held.abort();
}

/// A request just before shutdown: its spans are sent as the proxy stops, not lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_flushed_at_shutdown() {
    let Some(python) = python_with_otel() else {
        return;
    };
    let collector = Collector::start(&python);
    let mesh = Mesh::start(HOUR).await;
    let app = FaultApp::start("hello").await;
    let (client, server) = sidecars(&mesh, app.addr, &traced(&collector, 1.0)).await;
    assert_eq!(get(&client, "/last", &[]).await.status, 200);
    let started = Instant::now();
    client.shutdown().await;
    server.shutdown().await;
    let spans = collector.wait_for_spans(2, Duration::from_secs(5)).await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

// ---------------------------------------------------------------------------------------------
// Access logs

/// One JSON line per request on each side, saying what the request was and how it ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines_match_the_requests() {
    let mesh = Mesh::start(HOUR).await;
    let app = FaultApp::start("hello").await;
    app.script("/missing", [AppReply::status(404).body("no such thing")]);
    let client_log = mesh.dir.path().join("web-access.log");
    let server_log = mesh.dir.path().join("hello-access.log");
    let log_to = |path: &std::path::Path| ProxyOptions {
        access_log: Some(path.to_owned()),
        ..ProxyOptions::default()
    };
    let (client, _server) =
        sidecars_with(&mesh, app.addr, log_to(&server_log), log_to(&client_log)).await;
    let ok = get(&client, "/ok?secret=1", &[]).await;
    assert_eq!(ok.status, 200);
    assert_eq!(get(&client, "/missing", &[]).await.status, 404);

    let lines = |path: &std::path::Path| {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"))
            })
            .collect::<Vec<_>>()
    };
    for (side, path, direction) in [
        ("client", &client_log, "outbound"),
        ("server", &server_log, "inbound"),
    ] {
        let logged = wait::until(Duration::from_secs(5), "two access log lines", || async {
            let logged = lines(path);
            (logged.len() >= 2).then_some(logged)
        })
        .await;
        assert_eq!(logged.len(), 2, "{side}: {logged:#?}");
        // A line is written when its request ends on that side: the server sidecar may end the
        // first stream (its END_STREAM) after the caller has read the whole answer and sent the
        // second request, so the lines are found by path, not by position.
        let line_of = |path: &str| {
            logged
                .iter()
                .find(|line| line["path"] == path)
                .unwrap_or_else(|| panic!("{side}: no line for {path}: {logged:#?}"))
        };
        let (first, second) = (line_of("/ok"), line_of("/missing"));
        for line in [first, second] {
            assert_eq!(line["direction"], direction, "{side}: {line}");
            assert_eq!(line["source_identity"], WEB, "{side}: {line}");
            assert_eq!(line["destination_identity"], HELLO, "{side}: {line}");
            assert_eq!(line["route"], "default", "{side}: {line}");
            assert_eq!(line["method"], "GET", "{side}: {line}");
            assert_eq!(line["authority"], "hello.demo:8080", "{side}: {line}");
            assert_eq!(line["answered_by"], "app", "{side}: {line}");
            assert_eq!(line["attempts"], 1, "{side}: {line}");
            assert_eq!(line["complete"], true, "{side}: {line}");
            assert!(
                line["duration_seconds"].as_f64().unwrap()
                    >= line["response_headers_seconds"].as_f64().unwrap()
            );
            assert!(line["time"].as_str().unwrap().ends_with('Z'), "{line}");
            assert!(line.get("trace_id").is_none(), "tracing is off: {line}");
        }
        // The path without its query (found above as "/ok"): query strings carry secrets.
        assert_eq!(first["status"], 200, "{side}");
        assert_eq!(first["response_bytes"], ok.body.len(), "{side}");
        assert_eq!(second["status"], 404, "{side}");
        assert_eq!(second["response_bytes"], "no such thing".len(), "{side}");
    }
    assert_eq!(
        metric(&client, "weft_access_log_lines_total{result=\"written\"}").await,
        2.0
    );
    assert_eq!(
        metric(&client, "weft_access_log_lines_total{result=\"dropped\"}").await,
        0.0
    );
}

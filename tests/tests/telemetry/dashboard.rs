//! `weft dashboard` in a real browser: the real `weft` binary serving the page for a loopback
//! mesh's sidecars, loaded by headless Chromium, asserted on the DOM the page's script built.
//! The graph's nodes and edge are the mesh's, the edge's rate and success are what the caller's
//! metrics say, and when one endpoint starts failing its breaker shows open on the edge and in
//! the endpoints table within seconds; a fault drill in force shows its badge. A screenshot is
//! taken (and written to `docs/images/dashboard.png` when `WEFT_WRITE_SCREENSHOT=1`). Skipped
//! without `chromium`.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use weft_tests::apps::fault_app::Reply;
use weft_tests::clients::traffic::Traffic;
use weft_tests::mesh::policy_mesh::{PolicyMesh, policy};
use weft_tests::observe::chromium::{self, tags};
use weft_tests::observe::metrics::{metric_in, scrape};
use weft_tests::ports::free_port;
use weft_tests::process::bins;

/// Retries of gateway errors, a breaker that opens after 3 failures for 30 s or more, and a
/// fault drill (on `/drill`, which nobody calls) in force for an hour.
fn breaker_policy() -> String {
    let until = std::time::SystemTime::now() + Duration::from_secs(3600);
    policy(&format!(
        "  routes:
    - name: drill
      match: {{pathPrefix: /drill}}
  client:
    defaults:
      retries: {{limit: 2, on: [gateway-error], backoff: {{base: 1ms, max: 5ms}}}}
      circuitBreaker: {{consecutiveFailures: 3, penalty: {{base: 30s, max: 60s}}}}
  server:
    faults:
      - routes: [drill]
        abort: {{status: 503, percent: 10}}
        until: {}
",
        humantime::format_rfc3339_seconds(until)
    ))
}

/// A child process killed when dropped.
struct Child(tokio::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

fn attr<'a>(tag: &'a chromium::Tag, name: &str) -> &'a str {
    tag.1.get(name).map_or("", String::as_str)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_mesh_and_an_opened_breaker_in_chromium() {
    if !chromium::available() {
        return;
    }
    let mesh = PolicyMesh::start(2, Some(&breaker_policy())).await;
    let version = mesh.policy_version().await;
    let web_admin = mesh.client.admin_addr;
    let mut admins = vec![web_admin.to_string()];
    for backend in &mesh.backends {
        admins.push(backend.proxy.as_ref().unwrap().admin_addr.to_string());
    }
    let traffic = Traffic::start(
        mesh.addr(),
        "/ok",
        2,
        Duration::from_millis(20),
        4000,
        Duration::from_secs(60),
    );
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let weft = tokio::task::spawn_blocking(|| bins::path("weft"))
        .await
        .unwrap();
    let _dashboard = Child(
        tokio::process::Command::new(weft)
            .arg("dashboard")
            .args(&admins)
            .args([
                "--listen",
                &listen.to_string(),
                "--interval",
                "1s",
                "--window",
                "3s",
            ])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap(),
    );
    let url = format!("http://{listen}/");

    // The graph: the mesh's two workloads, one edge over mTLS, all requests answered, over a
    // full window. Its rate is checked against the caller's counter read before and after the
    // browser's look (the page's window lies inside that span, give or take a refresh).
    let count = |text: &str| metric_in(text, r#"weft_requests_total{direction="outbound"}"#);
    let give_up = Instant::now() + Duration::from_secs(20);
    let (edge, nodes, measured) = loop {
        let (t0, before) = (Instant::now(), count(&scrape(web_admin).await));
        let page = url.clone();
        let dom = tokio::task::spawn_blocking(move || chromium::dump_dom(&page))
            .await
            .unwrap();
        let measured = (count(&scrape(web_admin).await) - before) / t0.elapsed().as_secs_f64();
        let full_window = tags(&dom, "data-window")
            .first()
            .is_some_and(|body| attr(body, "data-window").parse::<f64>().unwrap_or(0.0) >= 2.9);
        let edges = tags(&dom, "data-edge");
        let edge = edges.iter().find(|e| attr(e, "data-source") == "demo/web");
        if let Some(edge) = edge.filter(|e| full_window && attr(e, "data-success") == "1") {
            break (edge.clone(), tags(&dom, "data-node"), measured);
        }
        assert!(
            Instant::now() < give_up,
            "the page never showed the web -> hello edge over a full window:\n{dom}"
        );
    };
    let hello = nodes
        .iter()
        .find(|n| attr(n, "data-node") == "demo/hello")
        .unwrap();
    assert_eq!(attr(hello, "data-pods"), "2");
    let mut names: Vec<&str> = nodes.iter().map(|n| attr(n, "data-node")).collect();
    names.sort();
    assert_eq!(names, ["demo/hello", "demo/web"]);
    assert_eq!(attr(&edge, "data-edge"), "demo/web->demo/hello");
    assert_eq!(attr(&edge, "data-destination"), "demo/hello");
    assert_eq!(attr(&edge, "data-service"), "hello.demo");
    assert_eq!(attr(&edge, "data-mtls"), "true");
    assert_eq!(attr(&edge, "data-health"), "good");
    assert_eq!(attr(&edge, "data-breakers-open"), "0");
    assert_eq!(attr(&edge, "data-fault-drills"), "1");
    let shown: f64 = attr(&edge, "data-rate").parse().unwrap();
    assert!(
        (shown - measured).abs() <= 0.35 * measured,
        "the edge shows {shown} requests/s, the caller's metrics {measured}"
    );

    // The tap panel, started by the page's `?tap=` on load, shows the requests to /ok the
    // sidecars stream through the dashboard's relay, and no others.
    let tap_url = format!("{url}?tap=path%3D%2Fok");
    chromium::wait_for_dom(
        &tap_url,
        Duration::from_secs(20),
        "tapped requests",
        |dom| {
            let events = tags(dom, "data-tap-event");
            let only_ok = events.iter().all(|e| attr(e, "data-path") == "/ok");
            let answered = events.iter().any(|e| attr(e, "data-status") == "200");
            (only_ok && answered).then_some(())
        },
    )
    .await;

    // One endpoint fails every request: its breaker opens, and the page says so.
    let failing_ip = mesh.backends[1].ip.to_string();
    mesh.app(1).set_default(Reply::status(503));
    let opened = Instant::now();
    let dom = chromium::wait_for_dom(&url, Duration::from_secs(15), "the breaker open", |dom| {
        let open = tags(dom, "data-endpoint").iter().any(|e| {
            attr(e, "data-endpoint").starts_with(&format!("{failing_ip}:"))
                && attr(e, "data-state") == "open"
        });
        let badge = tags(dom, "data-badge")
            .iter()
            .any(|b| attr(b, "data-badge") == "breaker");
        (open && badge).then(|| dom.to_owned())
    })
    .await;
    eprintln!(
        "the page showed the breaker open {:?} after the endpoint began failing",
        opened.elapsed()
    );
    let edge = tags(&dom, "data-edge").into_iter().next().unwrap();
    assert_eq!(attr(&edge, "data-breakers-open"), "1");
    assert!(
        tags(&dom, "data-version")
            .iter()
            .any(|v| attr(v, "data-version") == version),
        "the policy version {version} in force is not shown"
    );

    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("dashboard.png");
    chromium::screenshot(&tap_url, &png, 1400, 900);
    if std::env::var_os("WEFT_WRITE_SCREENSHOT").is_some() {
        let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/images/dashboard.png");
        std::fs::copy(&png, docs).unwrap();
    }
    traffic.stop().await;
}

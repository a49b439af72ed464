//! The server half of ServicePolicy, end to end: a control plane with a MeshService and a
//! ServicePolicy, an endpoint proxy (`hello`) fronting a scriptable app, and callers' proxies with
//! identities of their own (`web`, `db`, `client`), all on loopback. The endpoint's proxy learns
//! its server policy by watching its own address; the tests check what callers get (status,
//! `weft-error`, `Retry-After`, gRPC codes from a real grpcio client), what the app saw, the
//! endpoint's metrics and its `/inbound` admin view.
//!
//! The tests run one at a time (see [`serial`]): some send at a measured rate.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_proxy::RunningProxy;
use weft_tests::apps::fault_app::{Reply, times};
use weft_tests::mesh::policy_mesh::{
    Answer, Caller, POLICY_DEADLINE, PolicyMesh, SERVICE, admin_get, policy, send,
    services_yaml_with_protocol,
};
use weft_tests::mesh::{ProxyOptions, identity};
use weft_tests::observe::metrics::metric;
use weft_tests::ports::free_port;
use weft_tests::process::local_peer::{LocalPeer, python_with, run_client};
use weft_tests::{clients::tls_probe, wait};

use crate::serial;

fn id(account: &str) -> String {
    identity(account).to_string()
}

/// A caller's proxy for `account` whose only listener leads to `hello.demo:8080`.
async fn caller(mesh: &PolicyMesh, account: &str) -> RunningProxy {
    mesh.mesh
        .proxy(account, ProxyOptions::forward_service(SERVICE))
        .await
}

async fn get(addr: SocketAddr, path: &str) -> Answer {
    send(addr, Method::GET, path, Bytes::new())
        .await
        .unwrap_or_else(|e| panic!("GET {path} via {addr}: {e}"))
}

/// The endpoint proxy's `/inbound` entry for its port, once it has an answer.
async fn inbound_port(mesh: &PolicyMesh) -> serde_json::Value {
    let proxy = mesh.backends[0].proxy.as_ref().unwrap();
    let (status, body) = admin_get(proxy, "/inbound").await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let all: serde_json::Value = serde_json::from_str(&body).unwrap();
    let want = mesh.endpoint(0).to_string();
    all["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["address"] == want.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("no /inbound entry for {want} in {body}"))
}

fn server_version(port: &serde_json::Value) -> String {
    port["server_policy"]["version"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

/// Writes `doc` and waits until the endpoint's proxy enforces a server policy other than `old`.
async fn edit_policy(mesh: &PolicyMesh, doc: &str, old: &str) -> serde_json::Value {
    mesh.mesh.write_policies(doc);
    wait::until(POLICY_DEADLINE, "the edited server policy", || async {
        let port = inbound_port(mesh).await;
        let version = server_version(&port);
        (!version.is_empty() && version != old).then_some(port)
    })
    .await
}

async fn backend_metric(mesh: &PolicyMesh, series: &str) -> f64 {
    metric(mesh.backends[0].proxy.as_ref().unwrap(), series).await
}

fn routes() -> &'static str {
    "  routes:
    - name: read
      match: {pathPrefix: /read, methods: [GET]}
    - name: write
      match: {pathPrefix: /write}
"
}

// ---------------------------------------------------------------------------------------------
// Authorization

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_are_allowed_by_identity_route_and_namespace_and_edits_apply_live() {
    let _serial = serial().await;
    let doc = |extra: &str| {
        policy(&format!(
            "{}  server:
    authorization:
      allow:
        - from: [\"{}\"]
          routes: [read]
        - from: [\"spiffe://cluster.local/ns/other/*\"]{extra}
",
            routes(),
            id("web")
        ))
    };
    let mesh = PolicyMesh::start(1, Some(&doc(""))).await;
    let db = caller(&mesh, "db").await;
    let mut web = Caller::connect(mesh.addr()).await.unwrap();

    assert_eq!(web.get("/read/1").await.unwrap().status, StatusCode::OK);
    let refused = web.get("/write/1").await.unwrap();
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(refused.weft_error(), Some("unauthorized"));
    assert!(
        refused.body.contains(&id("web")) && refused.body.contains("hello.demo"),
        "the body names the caller and the service: {}",
        refused.body
    );
    let db_refused = get(db.forward_addrs[0], "/read/1").await;
    assert_eq!(db_refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        mesh.app(0).seen().len(),
        1,
        "the app saw only the allowed request"
    );
    let port = inbound_port(&mesh).await;
    assert_eq!(port["service"], "hello.demo", "{port}");
    assert_eq!(
        port["server_policy"]["authorization"]["default"], "deny",
        "{port}"
    );
    let series = |caller: &str, route: &str| {
        format!(
            "weft_inbound_unauthorized_total{{client_identity=\"{caller}\",mode=\"enforce\",route=\"{route}\"}}"
        )
    };
    assert_eq!(
        backend_metric(&mesh, &series(&id("web"), "write")).await,
        1.0
    );
    assert_eq!(backend_metric(&mesh, &series(&id("db"), "read")).await, 1.0);

    // A namespace wildcard admits every service account of the namespace: db now, on the
    // connection web already holds too (no restart, no reconnect).
    let old = server_version(&port);
    let extra =
        "\n        - from: [\"spiffe://cluster.local/ns/demo/*\"]\n          routes: [write]";
    edit_policy(&mesh, &doc(extra), &old).await;
    assert_eq!(web.get("/write/2").await.unwrap().status, StatusCode::OK);
    assert_eq!(
        get(db.forward_addrs[0], "/write/2").await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(db.forward_addrs[0], "/read/2").await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_callers_need_unauthenticated_and_audit_mode_only_counts() {
    let _serial = serial().await;
    let doc = |mode: &str, unauthenticated: bool| {
        policy(&format!(
            "{}  server:
    mode: {mode}
    authorization:
      unauthenticated: {unauthenticated}
      allow: [{{from: [\"{}\"], routes: [read]}}]
",
            routes(),
            id("web")
        ))
    };
    let mesh = PolicyMesh::start(1, Some(&doc("enforce", false))).await;
    // Straight to the endpoint's inbound port, without a mesh certificate (permissive mode).
    let plaintext = get(mesh.endpoint(0), "/read/1").await;
    assert_eq!(
        plaintext.status,
        StatusCode::FORBIDDEN,
        "{}",
        plaintext.body
    );
    assert_eq!(plaintext.weft_error(), Some("unauthorized"));
    assert!(
        plaintext.body.contains("unauthenticated"),
        "{}",
        plaintext.body
    );

    let old = server_version(&inbound_port(&mesh).await);
    let old = server_version(&edit_policy(&mesh, &doc("enforce", true), &old).await);
    assert_eq!(
        get(mesh.endpoint(0), "/read/2").await.status,
        StatusCode::OK
    );

    // Audit: what enforce would refuse goes through, logged and counted as mode="audit".
    edit_policy(&mesh, &doc("audit", false), &old).await;
    assert_eq!(
        get(mesh.endpoint(0), "/write/3").await.status,
        StatusCode::OK
    );
    assert_eq!(get(mesh.addr(), "/write/4").await.status, StatusCode::OK);
    assert_eq!(mesh.app(0).seen_path("/write").len(), 2);
    for caller in ["unauthenticated".to_owned(), id("web")] {
        let series = format!(
            "weft_inbound_unauthorized_total{{client_identity=\"{caller}\",mode=\"audit\",route=\"write\"}}"
        );
        assert_eq!(backend_metric(&mesh, &series).await, 1.0, "{series}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_opaque_connection_is_closed() {
    let _serial = serial().await;
    let doc = policy(&format!(
        "  server:\n    authorization:\n      allow: [{{from: [\"{}\"]}}]\n",
        id("web")
    ));
    let mesh = PolicyMesh::start(1, Some(&doc)).await;
    let http_over_tcp = |account: &'static str| {
        let mesh = &mesh;
        async move {
            let mut tls = tls_probe::connect(
                mesh.endpoint(0),
                weft_proxy::tls::alpn::MESH_TCP,
                &mesh.mesh.trust_bundle(),
                &identity("hello"),
                Some(mesh.mesh.client_cert(account)),
            )
            .await
            .unwrap();
            tls.write_all(b"GET /tcp HTTP/1.1\r\nhost: hello\r\nconnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut answer = Vec::new();
            let read =
                tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut answer)).await;
            assert!(read.is_ok(), "the connection of {account} did not end");
            String::from_utf8_lossy(&answer).into_owned()
        }
    };
    // The service has a ServicePolicy, so its port carries HTTP: even an opaque stream is parsed,
    // and the denied caller is answered as HTTP.
    let denied = http_over_tcp("db").await;
    assert!(denied.starts_with("HTTP/1.1 403"), "{denied}");
    assert_eq!(mesh.app(0).seen_path("/tcp").len(), 0);

    // Declared opaque, the port carries whatever the caller sends, still by identity.
    let ips: Vec<_> = mesh.backends.iter().map(|b| b.ip).collect();
    mesh.mesh
        .write_services(&services_yaml_with_protocol(mesh.port, &ips, "opaque"));
    wait::until(POLICY_DEADLINE, "the port declared opaque", || async {
        (inbound_port(&mesh).await["protocol"] == "opaque").then_some(())
    })
    .await;
    let allowed = http_over_tcp("web").await;
    assert!(allowed.starts_with("HTTP/1.1 200"), "{allowed}");
    let denied = http_over_tcp("db").await;
    assert_eq!(denied, "", "closed without a byte");
    assert_eq!(mesh.app(0).seen_path("/tcp").len(), 1);
    let refused = "weft_inbound_connections_refused_total{reason=\"unauthorized\"}";
    assert_eq!(backend_metric(&mesh, refused).await, 1.0);
    let counted = format!(
        "weft_inbound_unauthorized_total{{client_identity=\"{}\",mode=\"enforce\",route=\"tcp\"}}",
        id("db")
    );
    assert_eq!(backend_metric(&mesh, &counted).await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_strict_per_port_overrides_the_proxy_s_mode() {
    let _serial = serial().await;
    let mesh = PolicyMesh::start(1, Some(&policy("  server:\n    mtls: strict\n"))).await;
    let refused = get(mesh.endpoint(0), "/plain").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.weft_error(), Some("plaintext_refused"));
    assert_eq!(get(mesh.addr(), "/mesh").await.status, StatusCode::OK);
    let counted = "weft_inbound_connections_refused_total{reason=\"plaintext\"}";
    assert_eq!(backend_metric(&mesh, counted).await, 1.0);

    let old = server_version(&inbound_port(&mesh).await);
    let doc = policy(&format!(
        "  server:\n    mtls: strict\n    ports: [{{port: {}, mtls: permissive}}]\n",
        mesh.port
    ));
    let port = edit_policy(&mesh, &doc, &old).await;
    assert_eq!(port["server_policy"]["mtls"], "permissive", "{port}");
    assert_eq!(get(mesh.endpoint(0), "/plain").await.status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// Rate limits

/// `count` GETs of `path` through `addr`, one every `every`, on one keep-alive connection.
async fn paced(addr: SocketAddr, path: &str, count: usize, every: Duration) -> Vec<Answer> {
    let mut caller = Caller::connect(addr).await.unwrap();
    let mut ticker = tokio::time::interval(every);
    let mut answers = Vec::with_capacity(count);
    for _ in 0..count {
        ticker.tick().await;
        answers.push(caller.get(path).await.unwrap());
    }
    answers
}

fn limited(answers: &[Answer]) -> usize {
    answers
        .iter()
        .filter(|a| a.status == StatusCode::TOO_MANY_REQUESTS)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_identity_has_its_own_rate() {
    let _serial = serial().await;
    let doc = policy("  server:\n    rateLimit:\n      perIdentity: {rps: 20, burst: 1}\n");
    let mesh = PolicyMesh::start(1, Some(&doc)).await;
    let db = caller(&mesh, "db").await;
    // web sends at twice its rate, db at half of it, for two seconds.
    let (fast, slow) = tokio::join!(
        paced(mesh.addr(), "/fast", 80, Duration::from_millis(25)),
        paced(db.forward_addrs[0], "/slow", 20, Duration::from_millis(100)),
    );
    let refused = limited(&fast);
    assert!(
        (28..=52).contains(&refused),
        "about half of web's 80 requests are over its 20/s: {refused}"
    );
    assert_eq!(limited(&slow), 0, "db has its own bucket");
    let example = fast
        .iter()
        .find(|a| a.status == StatusCode::TOO_MANY_REQUESTS)
        .unwrap();
    assert_eq!(example.weft_error(), Some("rate_limited"));
    assert_eq!(example.header("retry-after"), Some("1"));
    assert_eq!(mesh.app(0).seen_path("/fast").len(), 80 - refused);
    let series = format!(
        "weft_inbound_rate_limited_total{{client_identity=\"{}\",limit=\"identity\",mode=\"enforce\"}}",
        id("web")
    );
    assert_eq!(backend_metric(&mesh, &series).await, refused as f64);
    let buckets = backend_metric(&mesh, "weft_inbound_rate_limit_buckets").await;
    assert_eq!(buckets, 2.0, "one bucket per caller");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_total_an_override_and_refused_requests_use_no_tokens() {
    let _serial = serial().await;
    let doc = policy(&format!(
        "{}  server:
    authorization:
      allow:
        - from: [\"spiffe://cluster.local/ns/demo/*\"]
          routes: [read]
    rateLimit:
      total: {{rps: 1, burst: 5}}
      perIdentity: {{rps: 1, burst: 2}}
      overrides: [{{from: \"{}\", rps: 1, burst: 4}}]
",
        routes(),
        id("db")
    ));
    let mesh = PolicyMesh::start(1, Some(&doc)).await;
    let db = caller(&mesh, "db").await;
    let mut web = Caller::connect(mesh.addr()).await.unwrap();
    // Refused by authorization: no token spent.
    for _ in 0..10 {
        assert_eq!(
            web.get("/write").await.unwrap().status,
            StatusCode::FORBIDDEN
        );
    }
    // web's own bucket: 2; db's override: 4 — but the total holds 5.
    let statuses = |answers: Vec<Answer>| {
        answers
            .iter()
            .map(|a| a.status.as_u16())
            .collect::<Vec<_>>()
    };
    let mut web_answers = Vec::new();
    for _ in 0..3 {
        web_answers.push(web.get("/read").await.unwrap());
    }
    assert_eq!(statuses(web_answers), [200, 200, 429]);
    let mut db_caller = Caller::connect(db.forward_addrs[0]).await.unwrap();
    let mut db_answers = Vec::new();
    for _ in 0..4 {
        db_answers.push(db_caller.get("/read").await.unwrap());
    }
    assert_eq!(
        statuses(db_answers),
        [200, 200, 200, 429],
        "db's override allows 4, the total has 3 left"
    );
    let total = format!(
        "weft_inbound_rate_limited_total{{client_identity=\"{}\",limit=\"total\",mode=\"enforce\"}}",
        id("db")
    );
    assert_eq!(backend_metric(&mesh, &total).await, 1.0);
    let per_identity = format!(
        "weft_inbound_rate_limited_total{{client_identity=\"{}\",limit=\"identity\",mode=\"enforce\"}}",
        id("web")
    );
    assert_eq!(backend_metric(&mesh, &per_identity).await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_callers_get_permission_denied_and_resource_exhausted() {
    let Some(python) = python_with("grpc") else {
        return;
    };
    let _serial = serial().await;
    let port = free_port();
    let _server = LocalPeer::spawn(&python, &["grpc-fault-server", &port.to_string()]);
    let doc = policy(&format!(
        "  routes:
    - name: say
      match: {{grpc: {{service: test.Greeter, method: Say}}}}
  server:
    authorization:
      allow: [{{from: [\"{}\"], routes: [say]}}]
    rateLimit:
      perIdentity: {{rps: 1, burst: 2}}
",
        id("web")
    ));
    let mesh =
        PolicyMesh::start_in_front_of(SocketAddr::from(([127, 0, 0, 1], port)), Some(&doc)).await;
    let call = |method: &'static str, count: &'static str| {
        let (python, addr) = (python.clone(), mesh.addr().to_string());
        async move {
            tokio::task::spawn_blocking(move || {
                run_client(
                    &python,
                    &["grpc-call", &addr, method, count],
                    Duration::from_secs(20),
                )
            })
            .await
            .unwrap()
        }
    };
    let codes = |result: &serde_json::Value| {
        result["calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["code"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let denied = call("/test.Greeter/Count", "1").await;
    assert_eq!(codes(&denied), ["PERMISSION_DENIED"], "{denied}");
    let details = denied["calls"][0]["details"].as_str().unwrap();
    assert!(details.contains(&id("web")), "{details}");
    let limited = call("/test.Greeter/Say", "3").await;
    assert_eq!(
        codes(&limited),
        ["OK", "OK", "RESOURCE_EXHAUSTED"],
        "{limited}"
    );
}

// ---------------------------------------------------------------------------------------------
// Fault injection

/// A drill aborting half of the `read` route's requests until `until`. `client` is the client
/// half; without one the caller's breaker is off, so that runs of aborts do not eject the only
/// endpoint (the breaker is not under test here).
fn abort_doc(client: &str, until: SystemTime) -> String {
    let client = match client {
        "" => "  client:\n    defaults:\n      circuitBreaker: {consecutiveFailures: 0}\n",
        client => client,
    };
    policy(&format!(
        "{}{client}  server:
    faults:
      - routes: [read]
        abort: {{status: 503, percent: 50}}
        until: {}
",
        routes(),
        humantime::format_rfc3339_seconds(until)
    ))
}

async fn failures(addr: SocketAddr, count: usize) -> usize {
    let mut caller = Caller::connect(addr).await.unwrap();
    let mut failed = 0;
    for i in 0..count {
        let answer = caller.get(&format!("/read/{i}")).await.unwrap();
        if answer.status != StatusCode::OK {
            assert_eq!(
                (answer.status, answer.weft_error()),
                (StatusCode::SERVICE_UNAVAILABLE, Some("fault_injected")),
                "{}",
                answer.body
            );
            failed += 1;
        }
    }
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_abort_fails_half_without_retries_and_almost_none_with_them() {
    let _serial = serial().await;
    let in_an_hour = SystemTime::now() + Duration::from_secs(3600);
    let mesh = PolicyMesh::start(1, Some(&abort_doc("", in_an_hour))).await;
    mesh.app(0).script("/write", times(1, Reply::ok()));
    let failed = failures(mesh.addr(), 100).await;
    assert!(
        (30..=70).contains(&failed),
        "about half of 100 requests aborted: {failed}"
    );
    assert_eq!(mesh.app(0).seen_path("/read").len(), 100 - failed);
    let injected = "weft_inbound_faults_injected_total{kind=\"abort\",route=\"read\"}";
    assert_eq!(backend_metric(&mesh, injected).await, failed as f64);
    let port = inbound_port(&mesh).await;
    assert_eq!(port["server_policy"]["faults"][0]["active"], true, "{port}");
    // Other routes are untouched.
    assert_eq!(get(mesh.addr(), "/write").await.status, StatusCode::OK);

    // The client half retries 503s: almost every request gets through.
    let retries = "  client:
    defaults:
      retries:
        limit: 4
        on: [gateway-error]
        backoff: {base: 1ms, max: 5ms}
        budget: {ratio: 1.0, minPerSecond: 1000, window: 10s}
      circuitBreaker: {consecutiveFailures: 0}
";
    let old = server_version(&port);
    edit_policy(&mesh, &abort_doc(retries, in_an_hour), &old).await;
    mesh.wait_policy("the client half with retries", |v| v != old)
        .await;
    let failed = failures(mesh.addr(), 100).await;
    assert!(failed <= 8, "with 4 retries, 1/32 fail at most: {failed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_past_its_expiry_does_nothing() {
    let _serial = serial().await;
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let mesh = PolicyMesh::start(1, Some(&abort_doc("", an_hour_ago))).await;
    assert_eq!(failures(mesh.addr(), 40).await, 0);
    let port = inbound_port(&mesh).await;
    assert_eq!(
        port["server_policy"]["faults"][0]["active"], false,
        "{port}"
    );

    // A drill that ends in a few seconds stops by itself, with nobody editing anything.
    let soon = SystemTime::now() + Duration::from_secs(3);
    let old = server_version(&port);
    edit_policy(&mesh, &abort_doc("", soon), &old).await;
    assert!(failures(mesh.addr(), 40).await > 0, "the drill is on");
    let wait = soon.duration_since(SystemTime::now()).unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_secs(1)).await; // rfc3339 has whole seconds
    assert_eq!(failures(mesh.addr(), 40).await, 0, "the drill expired");
}

//! weft end to end in pods (network namespaces): iptables interception, original destinations,
//! discovery, mutual TLS on the wire, and real programs as apps and clients (curl, python grpcio,
//! python websockets, TCP echo, a server-first protocol).
//!
//! Needs root, iproute2, iptables, tcpdump, curl and python3 with grpcio and websockets; without
//! them each test says what is missing and is skipped (with `WEFT_REQUIRE_PEERS=1` it fails).

use std::time::{Duration, Instant};

use weft_tests::observe::metrics::metric_in as metric;
use weft_tests::pods::pod_mesh::PodMesh;
use weft_tests::pods::{self, Pods};
use weft_tests::process::programs;

const WEB: &str = "spiffe://cluster.local/ns/demo/sa/web";
const HELLO: &str = "spiffe://cluster.local/ns/demo/sa/hello";

fn available(test: &str) -> bool {
    pods::available(test)
        && programs::available("iptables", "iptables")
        && programs::available("curl", "curl")
        && python_modules(test)
}

fn python_modules(test: &str) -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import grpc, websockets"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok || programs::skip(&format!(
        "{test} needs python3 with grpcio and websockets (pip install grpcio websockets)"
    ))
}

/// One service `hello` with a VIP and the given endpoints (pods running the `hello` account).
fn hello_service(pods: &Pods, vip: std::net::Ipv4Addr, endpoints: &[&str]) -> String {
    let mut yaml = format!(
        "apiVersion: weft.dev/v1alpha1\nkind: MeshService\nmetadata:\n  name: hello\n  namespace: demo\nspec:\n  addresses: [{vip}]\n  ports:\n    - port: 8080\n    - port: 50051\n    - port: 8765\n    - port: 7000\n    - port: 2525\n      protocol: opaque\n  endpoints:\n"
    );
    for pod in endpoints {
        yaml.push_str(&format!(
            "    - address: {}\n      serviceAccount: hello\n",
            pods.pod(pod).ip()
        ));
    }
    yaml
}

fn json(ran: &pods::Ran) -> serde_json::Value {
    ran.expect_success();
    serde_json::from_str(ran.stdout_text().trim()).unwrap_or_else(|e| panic!("{e}: {ran}"))
}

#[test]
fn pods_talk_through_their_sidecars_over_mutual_tls() {
    if !available("pods_mesh") {
        return;
    }
    let mut vip = None;
    let mesh = PodMesh::start(&["client", "server"], |pods| {
        let v = pods.allocate_vip();
        vip = Some(v);
        hello_service(pods, v, &["server"])
    });
    let server_ip = mesh.pod("server").ip();
    let _proxies = [
        // A long detection wait: a server-first protocol must not wait for it.
        mesh.sidecar("client", "web", &["--detect-timeout=2s"]),
        mesh.sidecar("server", "hello", &[]),
    ];
    let _apps = [
        mesh.peer("server", &["http-server", "8080", "server"]),
        mesh.peer("server", &["grpc-server", "50051"]),
        mesh.peer("server", &["ws-server", "8765"]),
        mesh.peer("server", &["echo-server", "7000"]),
        mesh.peer("server", &["greeter-server", "2525"]),
    ];

    // curl to the pod's address: through both sidecars, and only TLS on the wire.
    let capture = mesh.pods.capture(mesh.pod("server"));
    let url = format!("http://{server_ip}:8080/through-the-mesh");
    let ran = mesh.run_in(
        "client",
        "curl",
        &["-s", "--max-time", "10", "-D", "-", &url],
    );
    ran.expect_success();
    let reply = ran.stdout_text();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("hello from server"), "{reply}");
    assert!(
        reply.contains(&format!("client-identity: {WEB}")),
        "{reply}"
    );
    assert!(reply.contains("path: /through-the-mesh"), "{reply}");
    assert!(
        reply
            .to_ascii_lowercase()
            .contains(&format!("weft-server-identity: {HELLO}")),
        "{reply}"
    );
    let traffic = capture.stop();
    let to_app_port = traffic.payload_to_port(8080);
    assert!(
        to_app_port.starts_with(&[0x16, 0x03]),
        "the first bytes to {server_ip}:8080 are not a TLS handshake record: {:?}",
        &to_app_port[..to_app_port.len().min(32)]
    );
    assert!(
        !traffic.contains(b"through-the-mesh"),
        "the request path crossed the wire in clear"
    );
    assert!(
        !traffic.contains(b"hello from server"),
        "the response crossed the wire in clear"
    );
    let server_metrics = mesh.admin("server", "/metrics");
    assert!(
        metric(
            &server_metrics,
            &format!(
                "weft_requests_total{{direction=\"inbound\",source_identity=\"{WEB}\",status_code=\"200\"}}"
            )
        ) >= 1.0,
        "{server_metrics}"
    );

    // gRPC, unary and bidirectional streaming, with python grpcio on both ends.
    let grpc = json(&mesh.run_in(
        "client",
        "python3",
        &[
            pods_peers(),
            "grpc-client",
            &format!("{server_ip}:50051"),
            "5",
        ],
    ));
    assert_eq!(grpc["unary"], "unary:ping");
    assert_eq!(grpc["server_identity"], HELLO);
    assert_eq!(
        grpc["bidi"],
        serde_json::json!(["echo:m0", "echo:m1", "echo:m2", "echo:m3", "echo:m4"])
    );

    // A WebSocket upgrade.
    let ws = json(&mesh.run_in(
        "client",
        "python3",
        &[
            pods_peers(),
            "ws-client",
            &format!("ws://{server_ip}:8765/chat"),
            "3",
        ],
    ));
    assert_eq!(
        ws["replies"],
        serde_json::json!(["echo:m0", "echo:m1", "echo:m2"])
    );

    // Opaque TCP: bytes that are not HTTP come back unchanged.
    let echo = json(&mesh.run_in(
        "client",
        "python3",
        &[pods_peers(), "echo-client", &format!("{server_ip}:7000")],
    ));
    assert_eq!(echo["echoed_equal"], true);

    // A server-first protocol on a port declared opaque: the greeting is not held back by the
    // client sidecar's 2 s detection wait.
    let greeter = json(&mesh.run_in(
        "client",
        "python3",
        &[pods_peers(), "greeter-client", &format!("{server_ip}:2525")],
    ));
    assert_eq!(greeter["greeting"], "220 ready\r\n");
    assert_eq!(greeter["reply"], "250 HELO\r\n");
    let waited = greeter["greeting_ms"].as_f64().unwrap();
    assert!(waited < 1000.0, "the greeting took {waited} ms");

    // An address outside the mesh passes through as plain TCP.
    let bridge_ip = mesh.pods.bridge_ip();
    let _outside = mesh.pods.spawn(mesh.pods.bridge_command("python3").args([
        pods_peers(),
        "http-server",
        "9090",
        "outside",
    ]));
    mesh.pods.bridge().wait_for_port(
        std::net::SocketAddrV4::new(bridge_ip, 9090),
        std::time::Duration::from_secs(20),
    );
    let outside = mesh.run_in(
        "client",
        "curl",
        &[
            "-s",
            "--max-time",
            "10",
            &format!("http://{bridge_ip}:9090/"),
        ],
    );
    assert!(
        outside.stdout_text().contains("hello from outside"),
        "{outside}"
    );
    assert!(
        outside.stdout_text().contains("client-identity: none"),
        "{outside}"
    );

    let client_metrics = mesh.admin("client", "/metrics");
    for (series, at_least) in [
        ("weft_outbound_connections_total{protocol=\"http1\"}", 1.0),
        ("weft_outbound_connections_total{protocol=\"http2\"}", 1.0),
        ("weft_outbound_connections_total{protocol=\"opaque\"}", 2.0),
        (
            "weft_outbound_connections_total{protocol=\"passthrough\"}",
            1.0,
        ),
    ] {
        assert!(
            metric(&client_metrics, series) >= at_least,
            "{series} in\n{client_metrics}"
        );
    }
    assert!(vip.is_some());
}

#[test]
fn permissive_and_strict_servers_and_a_pod_without_a_sidecar() {
    if !available("pods_mesh") {
        return;
    }
    let mesh = PodMesh::start(&["client", "permissive", "strict", "outsider"], |pods| {
        let vip = pods.allocate_vip();
        hello_service(pods, vip, &["permissive", "strict"])
    });
    let _proxies = [
        mesh.sidecar("client", "web", &[]),
        mesh.sidecar("permissive", "hello", &[]),
        mesh.sidecar("strict", "hello", &["--inbound-mode=strict"]),
    ];
    let _apps = [
        mesh.peer("permissive", &["http-server", "8080", "permissive"]),
        mesh.peer("strict", &["http-server", "8080", "strict"]),
    ];
    let url = |pod: &str| format!("http://{}:8080/", mesh.pod(pod).ip());

    let plain_to_permissive = mesh.run_in(
        "outsider",
        "curl",
        &["-s", "--max-time", "10", &url("permissive")],
    );
    let text = plain_to_permissive.stdout_text();
    assert!(
        text.contains("hello from permissive") && text.contains("client-identity: none"),
        "{plain_to_permissive}"
    );

    // Strict: the plaintext caller gets the refusal, never the app.
    let plain_to_strict = mesh.run_in(
        "outsider",
        "curl",
        &[
            "-s",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code}",
            &url("strict"),
        ],
    );
    let text = plain_to_strict.stdout_text();
    assert!(!text.contains("hello from strict"), "{plain_to_strict}");
    assert!(
        text.contains("requires mutual TLS") && !text.ends_with("\n200"),
        "{plain_to_strict}"
    );

    let meshed_to_strict = mesh.run_in(
        "client",
        "curl",
        &["-s", "--max-time", "10", &url("strict")],
    );
    let text = meshed_to_strict.stdout_text();
    assert!(
        text.contains("hello from strict") && text.contains(&format!("client-identity: {WEB}")),
        "{meshed_to_strict}"
    );

    let strict_metrics = mesh.admin("strict", "/metrics");
    assert!(
        metric(
            &strict_metrics,
            "weft_inbound_connections_total{tls=\"refused\"}"
        ) >= 1.0,
        "{strict_metrics}"
    );
}

#[test]
fn a_service_with_two_endpoints_uses_both_and_moves_off_a_dead_one() {
    if !available("pods_mesh") {
        return;
    }
    let mut vip = None;
    let mut mesh = PodMesh::start(&["client", "one", "two"], |pods| {
        let v = pods.allocate_vip();
        vip = Some(v);
        hello_service(pods, v, &["one", "two"])
    });
    let vip = vip.unwrap();
    let _proxies = [
        mesh.sidecar("client", "web", &[]),
        mesh.sidecar("one", "hello", &[]),
        mesh.sidecar("two", "hello", &[]),
    ];
    let _one = mesh.peer("one", &["http-server", "8080", "one"]);
    let two = mesh.peer("two", &["http-server", "8080", "two"]);

    // Concurrent requests to the service address spread over both endpoints.
    let urls = format!("http://{vip}:8080/[1-60]");
    let ran = mesh.run_in(
        "client",
        "curl",
        &["-s", "-Z", "--parallel-max", "8", "--max-time", "10", &urls],
    );
    let bodies = ran.stdout_text();
    let (ones, twos) = (
        bodies.matches("hello from one").count(),
        bodies.matches("hello from two").count(),
    );
    assert_eq!(ones + twos, 60, "{ran}");
    assert!(ones > 0 && twos > 0, "one: {ones}, two: {twos}");

    // Endpoint two's app dies: after at most a few failed requests, everything goes to one.
    two.kill();
    let mut streak = 0;
    let mut failures = 0;
    for _ in 0..100 {
        let ran = mesh.run_in(
            "client",
            "curl",
            &["-s", "--max-time", "5", &format!("http://{vip}:8080/")],
        );
        if ran.stdout_text().contains("hello from one") {
            streak += 1;
            if streak == 30 {
                break;
            }
        } else {
            streak = 0;
            failures += 1;
        }
    }
    assert_eq!(
        streak, 30,
        "traffic did not settle on the live endpoint ({failures} failures)"
    );
    assert!(
        failures <= 3,
        "{failures} requests failed before traffic moved"
    );

    // The control plane goes away: the client's sidecar keeps its last answer.
    mesh.stop_control_plane();
    let get = |mesh: &PodMesh| {
        let url = format!("http://{vip}:8080/");
        mesh.run_in("client", "curl", &["-s", "--max-time", "5", &url])
            .stdout_text()
    };
    for _ in 0..5 {
        assert!(get(&mesh).contains("hello from one"));
    }
    // It comes back with endpoint two removed: the watch resumes by itself and the proxy gets
    // the new answer.
    mesh.write_services(&hello_service(&mesh.pods, vip, &["one"]));
    let updates = |mesh: &PodMesh| {
        metric(
            &mesh.admin("client", "/metrics"),
            "weft_discovery_updates_total",
        )
    };
    let before = updates(&mesh);
    mesh.start_control_plane();
    let deadline = Instant::now() + Duration::from_secs(20);
    while updates(&mesh) <= before {
        assert!(
            Instant::now() < deadline,
            "no discovery update after the control plane returned"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let metrics = mesh.admin("client", "/metrics");
    let ended = metric(
        &metrics,
        "weft_discovery_stream_errors_total{reason=\"broken\"}",
    ) + metric(
        &metrics,
        "weft_discovery_stream_errors_total{reason=\"refused\"}",
    );
    assert!(ended >= 1.0, "{metrics}");
    for _ in 0..5 {
        assert!(get(&mesh).contains("hello from one"));
    }
}

fn pods_peers() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        weft_tests::pods::pod_mesh::peers_script()
            .display()
            .to_string()
    })
}

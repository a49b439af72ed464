//! The server side of the mesh in pods: what the inbound proxy lets callers reach, and over which
//! address families. Without a mesh, a port an app binds to loopback is private to the pod and
//! an IPv6 connection reaches an app listening on `::`; with weft in between, both must still
//! hold (`--inbound-connect-to`, the dual-stack inbound listener, the `::1` outbound listener).
//!
//! Needs root, iproute2, iptables, ip6tables, tcpdump, curl and python3; without them each test
//! says what is missing and is skipped (with `WEFT_REQUIRE_PEERS=1` it fails).

use weft_tests::observe::metrics::metric_in as metric;
use weft_tests::pods::pod_mesh::{PodMesh, peers_script};
use weft_tests::pods::{self, Pods};
use weft_tests::process::programs;

const TEST: &str = "pods_inbound";
const WEB: &str = "spiffe://cluster.local/ns/demo/sa/web";
const HELLO: &str = "spiffe://cluster.local/ns/demo/sa/hello";

/// The app's public HTTP port (listening on every address) and its private one (loopback only),
/// and the same pair for opaque TCP.
const PUBLIC_HTTP: u16 = 8080;
const PRIVATE_HTTP: u16 = 8081;
const PUBLIC_TCP: u16 = 7000;
const PRIVATE_TCP: u16 = 7001;

fn available() -> bool {
    pods::available(TEST)
        && programs::available("iptables", "iptables")
        && programs::available("curl", "curl")
        && programs::available("python3", "python3")
}

/// MeshService `hello.demo` on the four ports, with one endpoint per `(pod, ip)` (pods running
/// the `hello` account).
fn hello_service(endpoints: &[String]) -> String {
    let mut yaml = format!(
        "apiVersion: weft.dev/v1alpha1\nkind: MeshService\nmetadata:\n  name: hello\n  namespace: demo\nspec:\n  ports:\n    - port: {PUBLIC_HTTP}\n    - port: {PRIVATE_HTTP}\n    - port: {PUBLIC_TCP}\n      protocol: opaque\n    - port: {PRIVATE_TCP}\n      protocol: opaque\n  endpoints:\n"
    );
    for address in endpoints {
        yaml.push_str(&format!(
            "    - address: \"{address}\"\n      serviceAccount: hello\n"
        ));
    }
    yaml
}

/// curl from `pod` to `url`: the response head and body, then a last line with the status code.
fn curl(mesh: &PodMesh, pod: &str, url: &str) -> String {
    let ran = mesh.run_in(
        pod,
        "curl",
        &[
            "-sg",
            "--max-time",
            "10",
            "-D",
            "-",
            "-w",
            "\nstatus=%{http_code}",
            url,
        ],
    );
    ran.expect_success();
    ran.stdout_text()
}

/// `peers.py echo-client` from `pod` to `addr`: its JSON report.
fn echo(mesh: &PodMesh, pod: &str, addr: &str) -> serde_json::Value {
    let script = peers_script();
    let ran = mesh.run_in(
        pod,
        "python3",
        &[script.to_str().unwrap(), "echo-client", addr],
    );
    serde_json::from_str(ran.stdout_text().trim()).unwrap_or_else(|e| panic!("{e}: {ran}"))
}

/// `inbound_connect_to` in `pod`'s `/config`.
fn connect_to(mesh: &PodMesh, pod: &str) -> String {
    let config: serde_json::Value = serde_json::from_str(&mesh.admin(pod, "/config")).unwrap();
    config["inbound_connect_to"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// In `pod`: the HTTP and TCP apps, each pair one public (on `public_host`) and one on
/// loopback only, as a debug server would be.
fn start_apps(mesh: &PodMesh, pod: &str, public_host: &str) -> Vec<pods::Process> {
    let (public_http, private_http) = (PUBLIC_HTTP.to_string(), PRIVATE_HTTP.to_string());
    let (public_tcp, private_tcp) = (PUBLIC_TCP.to_string(), PRIVATE_TCP.to_string());
    let private_name = format!("{pod}-private");
    vec![
        mesh.peer(pod, &["http-server", &public_http, pod, public_host]),
        mesh.peer(
            pod,
            &["http-server", &private_http, &private_name, "127.0.0.1"],
        ),
        mesh.peer(pod, &["echo-server", &public_tcp, public_host]),
        mesh.peer(pod, &["echo-server", &private_tcp, "127.0.0.1"]),
    ]
}

#[test]
fn a_port_the_app_binds_to_loopback_stays_private_unless_told_otherwise() {
    if !available() {
        return;
    }
    let mesh = PodMesh::start(&["client", "server", "legacy"], |pods: &Pods| {
        hello_service(&[
            pods.pod("server").ip().to_string(),
            pods.pod("legacy").ip().to_string(),
        ])
    });
    let _proxies = [
        mesh.sidecar("client", "web", &[]),
        mesh.sidecar("server", "hello", &[]),
        mesh.sidecar("legacy", "hello", &["--inbound-connect-to=loopback"]),
    ];
    let _apps = [
        start_apps(&mesh, "server", "0.0.0.0"),
        start_apps(&mesh, "legacy", "0.0.0.0"),
    ];
    let server = mesh.pod("server").ip();
    let legacy = mesh.pod("legacy").ip();

    // The public port answers through both sidecars, over mutual TLS.
    let public = curl(&mesh, "client", &format!("http://{server}:{PUBLIC_HTTP}/"));
    assert!(public.starts_with("HTTP/1.1 200"), "{public}");
    assert!(public.contains("hello from server\n"), "{public}");
    assert!(
        public.contains(&format!("client-identity: {WEB}")),
        "{public}"
    );

    // The loopback-only port does not: the server's sidecar cannot reach the app at the pod's
    // address, and says so (502, weft-error: app_unreachable); the private app never answers.
    let private = curl(&mesh, "client", &format!("http://{server}:{PRIVATE_HTTP}/"));
    assert!(private.starts_with("HTTP/1.1 502"), "{private}");
    assert!(private.ends_with("status=502"), "{private}");
    assert!(
        private
            .to_ascii_lowercase()
            .contains("weft-error: app_unreachable"),
        "{private}"
    );
    assert!(
        private.contains(&format!("{server}:{PRIVATE_HTTP}")),
        "the message names the address tried: {private}"
    );
    assert!(!private.contains("hello from"), "{private}");

    // Opaque TCP likewise: the public echo works, the private one closes without a byte.
    let public_tcp = echo(&mesh, "client", &format!("{server}:{PUBLIC_TCP}"));
    assert_eq!(public_tcp["echoed_equal"], true, "{public_tcp}");
    let private_tcp = echo(&mesh, "client", &format!("{server}:{PRIVATE_TCP}"));
    assert_eq!(private_tcp["received"], 0, "{private_tcp}");

    let server_metrics = mesh.admin("server", "/metrics");
    assert!(
        metric(
            &server_metrics,
            "weft_proxy_errors_total{direction=\"inbound\",reason=\"app_unreachable\"}"
        ) >= 2.0,
        "{server_metrics}"
    );
    assert_eq!(connect_to(&mesh, "server"), "pod-address");

    // --inbound-connect-to loopback: the old behaviour, for apps that listen on loopback only.
    let via_loopback = curl(&mesh, "client", &format!("http://{legacy}:{PRIVATE_HTTP}/"));
    assert!(via_loopback.starts_with("HTTP/1.1 200"), "{via_loopback}");
    assert!(
        via_loopback.contains("hello from legacy-private\n")
            && via_loopback.contains(&format!("client-identity: {WEB}")),
        "{via_loopback}"
    );
    let tcp_via_loopback = echo(&mesh, "client", &format!("{legacy}:{PRIVATE_TCP}"));
    assert_eq!(tcp_via_loopback["echoed_equal"], true, "{tcp_via_loopback}");
    assert_eq!(connect_to(&mesh, "legacy"), "loopback");
}

#[test]
fn pods_talk_over_ipv6_through_both_sidecars() {
    if !available() || !programs::available("ip6tables", "iptables") {
        return;
    }
    if !pods::ipv6_available() {
        programs::skip(&format!("{TEST}: the kernel has IPv6 disabled"));
        return;
    }
    let mesh = PodMesh::start(&["client", "server"], |pods: &Pods| {
        hello_service(&[pods.pod("server").ip6().unwrap().to_string()])
    });
    let _proxies = [
        mesh.sidecar("client", "web", &[]),
        mesh.sidecar("server", "hello", &[]),
    ];
    // "::": an app listening on both families, as most do.
    let _apps = start_apps(&mesh, "server", "::");
    let server = mesh.pod("server").addr6(PUBLIC_HTTP);
    mesh.pod("server")
        .netns()
        .wait_for_port(server, std::time::Duration::from_secs(20));

    // Both pods hold IPv6 rules: without the client's, curl would reach the app directly (no
    // identity header); without listeners for IPv6, the redirected connections would fail.
    for pod in ["client", "server"] {
        let rules = mesh.run_in(pod, "ip6tables-save", &["-t", "nat"]);
        assert!(
            rules.stdout_text().contains("-j WEFT_OUTPUT"),
            "{pod}: {rules}"
        );
    }

    let reply = curl(&mesh, "client", &format!("http://{server}/over-ipv6"));
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("hello from server\n"), "{reply}");
    assert!(reply.contains("path: /over-ipv6"), "{reply}");
    assert!(
        reply.contains(&format!("client-identity: {WEB}")),
        "{reply}"
    );
    assert!(
        reply
            .to_ascii_lowercase()
            .contains(&format!("weft-server-identity: {HELLO}")),
        "{reply}"
    );

    let tcp = echo(
        &mesh,
        "client",
        &mesh.pod("server").addr6(PUBLIC_TCP).to_string(),
    );
    assert_eq!(tcp["echoed_equal"], true, "{tcp}");

    let server_metrics = mesh.admin("server", "/metrics");
    assert!(
        metric(
            &server_metrics,
            "weft_inbound_connections_total{tls=\"mtls\"}"
        ) >= 2.0,
        "{server_metrics}"
    );
    assert!(
        metric(
            &server_metrics,
            &format!(
                "weft_requests_total{{direction=\"inbound\",source_identity=\"{WEB}\",status_code=\"200\"}}"
            )
        ) >= 1.0,
        "{server_metrics}"
    );
    let client_metrics = mesh.admin("client", "/metrics");
    for series in [
        "weft_outbound_connections_total{protocol=\"http1\"}",
        "weft_outbound_connections_total{protocol=\"opaque\"}",
    ] {
        assert!(
            metric(&client_metrics, series) >= 1.0,
            "{series} in\n{client_metrics}"
        );
    }

    // A loopback-only app stays private over IPv6 too.
    let private = curl(
        &mesh,
        "client",
        &format!("http://{}/", mesh.pod("server").addr6(PRIVATE_HTTP)),
    );
    assert!(private.ends_with("status=502"), "{private}");
}

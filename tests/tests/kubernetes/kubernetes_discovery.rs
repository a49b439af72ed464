//! Discovery from Kubernetes, end to end: the fake API server holds real-shaped Services,
//! EndpointSlices, Pods and a Namespace (tests/fixtures/kubernetes/), a real control plane with
//! `--kubernetes --kubeconfig` watches them through kube's client, and a real Discovery gRPC
//! client (as a proxy) watches addresses over TLS. The tests edit the cluster while streams are
//! open and check what the client is told, and when.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;
use tonic::Streaming;
use tonic::transport::Channel;
use weft_api::discovery::discovery_client::DiscoveryClient;
use weft_api::discovery::{Endpoint, Resolution};
use weft_control_plane::RunningControlPlane;
use weft_tests::kubernetes::fake_apiserver::{FakeApiServer, fixture};
use weft_tests::mesh::control_plane_client::{self, next, quiet};
use weft_tests::observe::metrics::metric_at;
use weft_tests::ports::free_port;
use weft_tests::{clients, wait};

/// What the issue asks of a change: it reaches watching proxies within a second.
const CHANGE_DEADLINE: Duration = Duration::from_secs(1);
/// For steps with a backoff or a relist in them.
const SLOW_DEADLINE: Duration = Duration::from_secs(10);
/// How long "nothing arrives" is watched for: many times the control plane's coalescing delay.
const QUIET: Duration = Duration::from_millis(1500);

const PAYMENTS_VIP: &str = "10.96.120.15:80";
const PAYMENTS_METRICS_VIP: &str = "10.96.120.15:9090";
const POD_ABCDE: &str = "10.244.1.12";
const POD_FGHIJ: &str = "10.244.2.7";
const POD_LEGACY: &str = "10.244.2.9";
const PAYMENTS_ID: &str = "spiffe://cluster.local/ns/prod/sa/payments";

const FIXTURES: [&str; 7] = [
    "namespace-prod",
    "service-payments",
    "endpointslice-payments-a",
    "endpointslice-payments-b",
    "pod-payments-abcde",
    "pod-payments-fghij",
    "pod-payments-legacy-0",
];

struct Cluster {
    api: FakeApiServer,
    _dir: TempDir,
    control_plane: RunningControlPlane,
    client: DiscoveryClient<Channel>,
}

impl Cluster {
    /// The fake API server with every fixture, and a control plane watching it.
    async fn start() -> Self {
        let api = FakeApiServer::start().await;
        for name in FIXTURES {
            api.put(fixture(name));
        }
        Self::start_with(api).await
    }

    async fn start_with(api: FakeApiServer) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = api.control_plane_config(dir.path().join("control-plane"));
        let control_plane = weft_control_plane::start(config).await.unwrap();
        let client =
            weft_tests::mesh::control_plane_client::mesh_discovery_client(&control_plane, "web");
        Self {
            api,
            _dir: dir,
            control_plane,
            client,
        }
    }

    async fn watch(&self, address: &str) -> Streaming<Resolution> {
        control_plane_client::watch(&self.client, address)
            .await
            .unwrap()
    }

    /// A new watch and its first message.
    async fn resolve(&self, address: &str) -> (Streaming<Resolution>, Resolution) {
        let mut stream = self.watch(address).await;
        let first = next(&mut stream, SLOW_DEADLINE).await;
        (stream, first)
    }

    async fn admin(&self, path: &str) -> clients::Reply {
        clients::get(self.control_plane.admin_addr, path, "control-plane")
            .await
            .unwrap()
    }

    /// The value of `series` in the control plane's `/metrics`.
    async fn metric(&self, series: &str) -> f64 {
        metric_at(self.control_plane.admin_addr, series).await
    }

    /// Requests the fake API server has seen that start with `prefix`.
    fn requests(&self, prefix: &str) -> usize {
        self.api
            .requests()
            .iter()
            .filter(|r| r.starts_with(prefix))
            .count()
    }
}

fn meshed(address: &str) -> Endpoint {
    Endpoint {
        address: address.to_owned(),
        identity: PAYMENTS_ID.to_owned(),
        meshed: true,
    }
}

fn unmeshed(address: &str) -> Endpoint {
    Endpoint {
        address: address.to_owned(),
        identity: String::new(),
        meshed: false,
    }
}

fn addresses(resolution: &Resolution) -> Vec<&str> {
    resolution
        .endpoints
        .iter()
        .map(|e| e.address.as_str())
        .collect()
}

fn with_opaque_ports(mut object: Value, ports: &str) -> Value {
    object["metadata"]["annotations"]["weft.dev/opaque-ports"] = json!(ports);
    object
}

#[tokio::test]
async fn two_slices_merge_and_an_endpoint_going_not_ready_leaves_within_a_second() {
    let cluster = Cluster::start().await;
    let (mut stream, first) = cluster.resolve(PAYMENTS_VIP).await;
    assert!(first.known);
    assert_eq!(first.service, "payments.prod");
    assert!(!first.opaque);
    // Slice a has abcde, slice b fghij and the legacy pod; the named targetPort `http` is 8080.
    assert_eq!(
        first.endpoints,
        vec![
            meshed(&format!("{POD_ABCDE}:8080")),
            meshed(&format!("{POD_FGHIJ}:8080")),
            unmeshed(&format!("{POD_LEGACY}:8080")),
        ]
    );

    let mut slice = fixture("endpointslice-payments-b");
    slice["endpoints"][0]["conditions"] = json!({"ready": false, "serving": false});
    let changed = Instant::now();
    cluster.api.put(slice);
    let second = next(&mut stream, CHANGE_DEADLINE).await;
    let took = changed.elapsed();
    assert_eq!(
        addresses(&second),
        [format!("{POD_ABCDE}:8080"), format!("{POD_LEGACY}:8080")]
    );
    eprintln!("a not-ready endpoint left the client's answer after {took:?}");
    assert!(took < CHANGE_DEADLINE, "took {took:?}");
}

#[tokio::test]
async fn a_deleted_slice_is_removed() {
    let cluster = Cluster::start().await;
    let (mut stream, first) = cluster.resolve(PAYMENTS_VIP).await;
    assert_eq!(first.endpoints.len(), 3);
    cluster.api.delete(
        "discovery.k8s.io/v1",
        "EndpointSlice",
        Some("prod"),
        "payments-9mtlz",
    );
    let second = next(&mut stream, CHANGE_DEADLINE).await;
    assert_eq!(addresses(&second), [format!("{POD_ABCDE}:8080")]);

    // Its pods' own addresses are no longer the service's.
    let (_stream, pod) = cluster.resolve(&format!("{POD_FGHIJ}:8080")).await;
    assert!(!pod.known);
}

#[tokio::test]
async fn named_target_ports_resolve_through_the_slices_per_pod() {
    let cluster = Cluster::start().await;
    let (_metrics_stream, metrics) = cluster.resolve(PAYMENTS_METRICS_VIP).await;
    assert_eq!(
        addresses(&metrics),
        [
            format!("{POD_ABCDE}:9090"),
            format!("{POD_FGHIJ}:9090"),
            format!("{POD_LEGACY}:9090")
        ]
    );

    // The pods of slice b are rolled to a version whose `http` container port is 8081.
    let (mut stream, _) = cluster.resolve(PAYMENTS_VIP).await;
    let mut slice = fixture("endpointslice-payments-b");
    slice["ports"][0]["port"] = json!(8081);
    cluster.api.put(slice);
    let second = next(&mut stream, CHANGE_DEADLINE).await;
    assert_eq!(
        addresses(&second),
        [
            format!("{POD_ABCDE}:8080"),
            format!("{POD_FGHIJ}:8081"),
            format!("{POD_LEGACY}:8081")
        ]
    );
}

#[tokio::test]
async fn opaque_ports_come_from_the_pod_else_the_service_else_the_namespace() {
    let cluster = Cluster::start().await;
    let opaque = |address: String| {
        let cluster = &cluster;
        async move {
            let (_stream, answer) = cluster.resolve(&address).await;
            assert!(answer.known, "{address}");
            answer.opaque
        }
    };
    let abcde_metrics = format!("{POD_ABCDE}:9090");
    assert!(!opaque(PAYMENTS_METRICS_VIP.to_owned()).await);

    // The namespace's annotation: for the service and its pods.
    let (mut vip, _) = cluster.resolve(PAYMENTS_METRICS_VIP).await;
    cluster
        .api
        .put(with_opaque_ports(fixture("namespace-prod"), "9090"));
    assert!(next(&mut vip, CHANGE_DEADLINE).await.opaque);
    assert!(opaque(abcde_metrics.clone()).await);

    // The service's overrides it (no merging): only its port 80 (and the pods' 8080 behind it).
    cluster
        .api
        .put(with_opaque_ports(fixture("service-payments"), "80"));
    assert!(!next(&mut vip, CHANGE_DEADLINE).await.opaque);
    assert!(opaque(PAYMENTS_VIP.to_owned()).await);
    assert!(opaque(format!("{POD_ABCDE}:8080")).await);
    assert!(!opaque(abcde_metrics.clone()).await);

    // A pod's overrides both, for that pod's address only.
    let (mut pod, _) = cluster.resolve(&abcde_metrics).await;
    cluster
        .api
        .put(with_opaque_ports(fixture("pod-payments-abcde"), "9090"));
    assert!(next(&mut pod, CHANGE_DEADLINE).await.opaque);
    assert!(!opaque(format!("{POD_ABCDE}:8080")).await);
    assert!(opaque(format!("{POD_FGHIJ}:8080")).await);
    assert!(opaque(PAYMENTS_VIP.to_owned()).await);
    assert!(!opaque(PAYMENTS_METRICS_VIP.to_owned()).await);
}

#[tokio::test]
async fn a_relist_after_410_gone_sends_nothing_and_a_later_change_arrives() {
    let cluster = Cluster::start().await;
    let (mut stream, first) = cluster.resolve(PAYMENTS_VIP).await;
    assert_eq!(first.endpoints.len(), 3);

    let slice_lists = "GET /apis/discovery.k8s.io/v1/endpointslices?";
    let lists_before = cluster.requests(slice_lists);
    let errors = r#"weft_kubernetes_watch_errors_total{resource="endpointslices"}"#;
    assert_eq!(cluster.metric(errors).await, 0.0);
    cluster.api.expire_watches();
    // The watcher hears 410, lists again and watches from the new list.
    wait::until(SLOW_DEADLINE, "a relist of the slices", || async {
        let requests = cluster.api.requests();
        let mut slices = requests.iter().filter(|r| r.starts_with(slice_lists));
        let relisted = slices
            .by_ref()
            .skip(lists_before)
            .any(|r| !r.contains("watch=true"));
        let watching_again = relisted && slices.any(|r| r.contains("watch=true"));
        watching_again.then_some(())
    })
    .await;
    assert_eq!(cluster.metric(errors).await, 1.0);
    quiet(&mut stream, QUIET, "a relist that changes nothing").await;

    let mut slice = fixture("endpointslice-payments-a");
    slice["endpoints"][0]["conditions"]["ready"] = json!(false);
    cluster.api.put(slice);
    let second = next(&mut stream, CHANGE_DEADLINE).await;
    assert_eq!(second.endpoints.len(), 2);
}

#[tokio::test]
async fn a_pod_address_leads_to_that_pod_and_an_unmeshed_one_has_no_identity() {
    let cluster = Cluster::start().await;
    // A native sidecar (init container with restartPolicy: Always) counts as meshed.
    let (_a, fghij) = cluster.resolve(&format!("{POD_FGHIJ}:8080")).await;
    assert_eq!(fghij.service, "payments.prod");
    assert_eq!(fghij.endpoints, vec![meshed(&format!("{POD_FGHIJ}:8080"))]);

    let (_b, legacy) = cluster.resolve(&format!("{POD_LEGACY}:8080")).await;
    assert!(legacy.known);
    assert_eq!(
        legacy.endpoints,
        vec![unmeshed(&format!("{POD_LEGACY}:8080"))]
    );

    // Its identity is its service account's: a new one shows.
    let (mut stream, _) = cluster.resolve(&format!("{POD_ABCDE}:8080")).await;
    let mut pod = fixture("pod-payments-abcde");
    pod["spec"]["serviceAccountName"] = json!("payments-v2");
    cluster.api.put(pod);
    let changed = next(&mut stream, CHANGE_DEADLINE).await;
    assert_eq!(
        changed.endpoints[0].identity,
        "spiffe://cluster.local/ns/prod/sa/payments-v2"
    );
}

#[tokio::test]
async fn until_the_first_list_watches_wait_and_ready_fails_then_an_outage_keeps_the_last_state() {
    let api = FakeApiServer::start().await;
    for name in FIXTURES {
        api.put(fixture(name));
    }
    api.set_down(true);
    let cluster = Cluster::start_with(api).await;
    assert_eq!(cluster.admin("/ready").await.status, 503);
    let opened = Instant::now();
    let mut stream = cluster.watch(PAYMENTS_VIP).await;
    // No "unknown" guessed while the cluster has not been listed.
    quiet(&mut stream, QUIET, "before the first list").await;
    wait::until(SLOW_DEADLINE, "errors counted while down", || async {
        (cluster
            .metric(r#"weft_kubernetes_watch_errors_total{resource="pods"}"#)
            .await
            > 0.0)
            .then_some(())
    })
    .await;

    cluster.api.set_down(false);
    let mut first = next(&mut stream, SLOW_DEADLINE).await;
    if !first.known {
        // The watcher's backoff outlasted the bound: then, and only then, "unknown" is allowed.
        assert!(opened.elapsed() >= weft_control_plane::discovery::INITIAL_SYNC_WAIT);
        first = next(&mut stream, SLOW_DEADLINE).await;
    }
    assert_eq!(first.endpoints.len(), 3);
    assert_eq!(cluster.admin("/ready").await.status, 200);
    assert_eq!(
        cluster
            .metric(r#"weft_kubernetes_objects{resource="endpointslices"}"#)
            .await,
        2.0
    );

    // Down again: the last known state is served to new watches, and a change made meanwhile
    // arrives once the API server is back.
    cluster.api.set_down(true);
    let (_other, again) = cluster.resolve(PAYMENTS_VIP).await;
    assert_eq!(again.endpoints.len(), 3);
    cluster.api.delete(
        "discovery.k8s.io/v1",
        "EndpointSlice",
        Some("prod"),
        "payments-7x2kq",
    );
    quiet(&mut stream, QUIET, "while the API server is down").await;
    cluster.api.set_down(false);
    let after = next(&mut stream, SLOW_DEADLINE).await;
    assert_eq!(after.endpoints.len(), 2);
}

/// Pods per service (and per EndpointSlice) in the memory measurement.
const PODS_PER_SERVICE: usize = 100;

/// `pods` meshed pods from the fixtures, `PODS_PER_SERVICE` to a service with one slice each.
fn load_pods(api: &FakeApiServer, pods: usize) {
    api.put(fixture("namespace-prod"));
    for s in 0..pods.div_ceil(PODS_PER_SERVICE) {
        let name = format!("svc-{s}");
        let vip = format!("10.96.{}.{}", s / 250, s % 250 + 1);
        let mut service = fixture("service-payments");
        service["metadata"]["name"] = json!(name);
        service["spec"]["clusterIP"] = json!(vip);
        service["spec"]["clusterIPs"] = json!([vip]);
        api.put(service);
        let mut slice = fixture("endpointslice-payments-a");
        slice["metadata"]["name"] = json!(format!("{name}-x7k2q"));
        slice["metadata"]["labels"]["kubernetes.io/service-name"] = json!(name);
        let template = slice["endpoints"][0].clone();
        let mut endpoints = Vec::new();
        for k in s * PODS_PER_SERVICE..((s + 1) * PODS_PER_SERVICE).min(pods) {
            let ip = format!("10.244.{}.{}", k / 250, k % 250 + 1);
            let pod_name = format!("{name}-6d9f7b8c4-{k:05}");
            let mut endpoint = template.clone();
            endpoint["addresses"] = json!([ip]);
            endpoint["targetRef"]["name"] = json!(pod_name);
            endpoints.push(endpoint);
            let mut pod = fixture("pod-payments-abcde");
            pod["metadata"]["name"] = json!(pod_name);
            pod["status"]["podIP"] = json!(ip);
            pod["status"]["podIPs"] = json!([{"ip": ip}]);
            api.put(pod);
        }
        slice["endpoints"] = json!(endpoints);
        api.put(slice);
    }
}

/// A `weft-control-plane` process, killed on drop.
struct Process(std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Starts the control plane binary against `api`, waits until it indexed `pods` endpoints, and
/// returns its memory then.
async fn control_plane_memory(api: &FakeApiServer, pods: usize) -> (u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let admin: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let child = std::process::Command::new(weft_tests::process::bins::path("weft-control-plane"))
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--admin-listen", &admin.to_string()])
        .arg("--data-dir")
        .arg(dir.path().join("cp"))
        .arg("--kubernetes")
        .arg("--kubeconfig")
        .arg(api.kubeconfig())
        .arg("--webhook-listen=off")
        .env("WEFT_LOG", "warn")
        .spawn()
        .unwrap();
    let process = Process(child);
    let expected = format!("weft_discovery_endpoints {pods}");
    wait::until(Duration::from_secs(120), "every pod indexed", || async {
        // The process may not be listening yet (the client panics on a refused connection).
        tokio::net::TcpStream::connect(admin).await.ok()?;
        let reply = clients::get(admin, "/metrics", "control-plane")
            .await
            .ok()?;
        reply.body.lines().any(|l| l == expected).then_some(())
    })
    .await;
    rss_kib(process.0.id())
}

/// The control plane's resident memory with 0, 1k and 10k pods' worth of real-shaped objects
/// (100 pods per Service and EndpointSlice) listed from the fake API server. The per-1k figure
/// in docs/performance.md is (RSS at 10k − RSS at 1k) / 9.
#[tokio::test]
#[ignore = "a measurement (tens of seconds): cargo test -p weft-tests --test kubernetes kubernetes_discovery:: -- --ignored --nocapture"]
async fn memory_per_1k_pods() {
    let mut rows = Vec::new();
    for pods in [0, 1_000, 10_000] {
        let api = FakeApiServer::start().await;
        load_pods(&api, pods);
        let (rss, peak) = control_plane_memory(&api, pods).await;
        eprintln!("{pods:>6} pods: VmRSS {rss:>7} KiB, VmHWM {peak:>7} KiB");
        rows.push((pods, rss, peak));
    }
    let per_1k = |column: fn(&(usize, u64, u64)) -> u64| {
        (column(&rows[2]) as f64 - column(&rows[1]) as f64) / 9.0 / 1024.0
    };
    let (rss_per_1k, peak_per_1k) = (per_1k(|r| r.1), per_1k(|r| r.2));
    eprintln!("per 1k pods: {rss_per_1k:.2} MiB resident, {peak_per_1k:.2} MiB peak");
    // A guard against a regression that parses or keeps whole Pods again (that was ~31 MiB).
    assert!(rss_per_1k < 6.0, "{rss_per_1k:.2} MiB per 1k pods");
}

//! Control-plane high availability and authenticated watches, over real processes, gRPC and TLS:
//! two replicas sharing one CA (root + intermediate, as `weft ca create` makes it) where one is
//! killed under traffic; discovery refused without a mesh certificate, with a foreign one, and
//! past the per-identity stream limit; a connection that goes silent noticed by keepalive within
//! its bound and replaced through another path.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use weft_certs::CertificateAuthority;
use weft_control_plane::ca_secret::{self, SecretMaterial};
use weft_proxy::tls::TlsStore;
use weft_proxy::{ProxyConfig, RunningProxy};
use weft_tests::apps::stalling_relay::StallingRelay;
use weft_tests::clients::traffic::Traffic;
use weft_tests::mesh::control_plane_client::{self, certified_by_data_dir, discovery_client};
use weft_tests::mesh::policy_mesh::{
    DESTINATION, SERVICE, destination, endpoint_addresses, services_yaml,
};
use weft_tests::mesh::{ProxyOptions, identity, wait_ready};
use weft_tests::observe::metrics::{metric, metric_at, metric_in};
use weft_tests::process::control_plane_process::ControlPlaneProcess;
use weft_tests::{Mesh, clients, wait};

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);
/// Long enough for a reload (files are polled every second) and a reconnection.
const CHANGE_DEADLINE: Duration = Duration::from_secs(15);

/// A proxy of `mesh` for `account`, talking to the control plane at `addrs` and trusting
/// `trust_anchors`, with `extra` applied to its flags; started and holding a certificate.
async fn proxy(
    mesh: &Mesh,
    account: &str,
    options: ProxyOptions,
    addrs: &str,
    trust_anchors: &Path,
    extra: impl FnOnce(&mut weft_proxy::ProxyArgs),
) -> RunningProxy {
    let mut args = mesh.proxy_args(account, &options);
    args.control_plane_addr = Some(addrs.to_owned());
    args.trust_anchors = Some(trust_anchors.to_owned());
    extra(&mut args);
    let config = ProxyConfig::from_args(args).unwrap_or_else(|e| panic!("bad config: {e:?}"));
    let proxy = weft_proxy::start(config, None).await.unwrap();
    wait_ready(&proxy).await;
    proxy
}

/// Waits until the caller's `/destinations` lists `hello.demo` with `want` endpoints.
async fn wait_endpoints(client: &RunningProxy, want: usize, what: &str) {
    wait::until(CHANGE_DEADLINE, what, || async {
        let d = destination(client).await.ok()??;
        (d["endpoints"].as_array().map_or(0, Vec::len) == want).then_some(())
    })
    .await
}

/// The flags of a replica serving the CA in `ca`, the mesh's tokens, services and policies.
fn replica_flags(mesh: &Mesh, ca: &SecretMaterial, cert_ttl: &str) -> Vec<String> {
    vec![
        format!("--ca-cert={}", ca.ca_cert.display()),
        format!("--ca-key={}", ca.ca_key.display()),
        format!("--trust-bundle={}", ca.trust_bundle.display()),
        format!(
            "--bootstrap-tokens={}",
            mesh.dir.path().join("tokens.yaml").display()
        ),
        format!(
            "--services={}",
            mesh.services_file.as_ref().unwrap().display()
        ),
        format!(
            "--policies={}",
            mesh.policies_dir.as_ref().unwrap().display()
        ),
        format!("--cert-ttl={cert_ttl}"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_traffic_loses_no_request_and_the_survivor_carries_on() {
    let (ips, port) = endpoint_addresses(2);
    // The mesh's own in-process control plane only provides the files; replicas serve.
    let mut mesh = Mesh::start_with(HOUR, &services_yaml(port, &ips[..1]), None).await;
    mesh.stop_control_plane().await;
    let ca =
        ca_secret::create(&mesh.dir.path().join("ca"), "cluster.local", DAY, DAY, None).unwrap();
    let flags = replica_flags(&mesh, &ca, "3s");
    let mut replicas = vec![
        ControlPlaneProcess::start(&mesh.dir.path().join("replica-a"), &flags).await,
        ControlPlaneProcess::start(&mesh.dir.path().join("replica-b"), &flags).await,
    ];
    let addrs = format!("{},{}", replicas[0].grpc_addr, replicas[1].grpc_addr);

    // Two hello backends (only the first is listed yet) and a caller, all on both replicas.
    let mut backends = Vec::new();
    for ip in &ips {
        let app = weft_tests::apps::fault_app::FaultApp::start(&format!("hello-{ip}")).await;
        let options = ProxyOptions {
            app: Some(app.addr),
            inbound_listen: Some(SocketAddr::from((*ip, port))),
            ..ProxyOptions::default()
        };
        let proxy = proxy(&mesh, "hello", options, &addrs, &ca.trust_bundle, |_| {}).await;
        backends.push((app, proxy));
    }
    let client = proxy(
        &mesh,
        "web",
        ProxyOptions::forward_service(SERVICE),
        &addrs,
        &ca.trust_bundle,
        |_| {},
    )
    .await;
    // Leaves chain through the intermediate to the root the proxies trust.
    let credentials = client.store.current().unwrap();
    assert!(
        credentials.info.issuer.contains("weft intermediate CA"),
        "{}",
        credentials.info.issuer
    );
    let warm = clients::get(client.forward_addrs[0], "/", "hello")
        .await
        .unwrap();
    assert_eq!(warm.status, 200, "{}", warm.body);
    wait_endpoints(&client, 1, "the caller to know the first endpoint").await;

    let traffic = Traffic::start(
        client.forward_addrs[0],
        "/",
        2,
        Duration::from_millis(20),
        1_000,
        Duration::from_secs(60),
    );
    wait::until(Duration::from_secs(10), "traffic to flow", || async {
        (traffic.count() >= 20).then_some(())
    })
    .await;

    // Kill the replica holding the caller's watches (either, if both do).
    let mut watches = Vec::new();
    for replica in &replicas {
        let text = replica.metrics().await.unwrap();
        watches.push(metric_in(&text, "weft_discovery_watches"));
    }
    let victim = if watches[0] >= watches[1] { 0 } else { 1 };
    assert!(watches[victim] > 0.0, "no replica has a watch: {watches:?}");
    replicas[victim].kill();
    let survivor = &replicas[1 - victim];
    let killed_at = Instant::now();

    // Certificates keep being renewed (TTL 3s), by the survivor only.
    let generations: Vec<u64> = [&client, &backends[0].1]
        .iter()
        .map(|p| p.store.generation())
        .collect();
    wait::until(
        Duration::from_secs(15),
        "two renewals of every proxy after the kill",
        || async {
            let now = [&client, &backends[0].1].map(|p| p.store.generation());
            (now[0] >= generations[0] + 2 && now[1] >= generations[1] + 2).then_some(())
        },
    )
    .await;

    // A change to the services file reaches the caller through the survivor: the second
    // endpoint is listed, then gets traffic.
    mesh.write_services(&services_yaml(port, &ips));
    wait_endpoints(&client, 2, "the caller to learn the second endpoint").await;
    wait::until(
        CHANGE_DEADLINE,
        "the second backend to get requests",
        || async { (backends[1].0.count() > 0).then_some(()) },
    )
    .await;
    let answers = traffic.stop().await;
    let after_kill = answers.iter().filter(|a| a.at > killed_at).count();
    let failed: Vec<_> = answers
        .iter()
        .filter(|a| !matches!(&a.answer, Ok(answer) if answer.status == 200))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:?}",
        failed.len(),
        answers.len()
    );
    assert!(
        after_kill >= 20,
        "only {after_kill} requests after the kill"
    );
    let text = survivor.metrics().await.unwrap();
    assert!(metric_in(&text, "weft_certify_requests_total{result=\"issued\"}") >= 4.0);
    assert!(metric_in(&text, "weft_discovery_watches") >= 1.0);
}

/// A store for `account` trusting the mesh's roots but holding a certificate of another CA.
fn foreign_store(mesh: &Mesh, account: &str) -> Arc<TlsStore> {
    let foreign = CertificateAuthority::generate("cluster.local", HOUR).unwrap();
    let store = mesh.uncertified_store(account);
    let issued = foreign
        .certify(&store.csr().unwrap(), &identity(account), HOUR)
        .unwrap();
    store
        .install(
            issued.leaf,
            issued.intermediates,
            foreign.trust_bundle().clone(),
        )
        .unwrap();
    store
}

async fn watch(
    client: &weft_api::discovery::discovery_client::DiscoveryClient<tonic::transport::Channel>,
    address: &str,
) -> Result<tonic::Streaming<weft_api::discovery::Resolution>, tonic::Status> {
    let mut stream = control_plane_client::watch(client, address).await?;
    // The first answer, so the stream is surely open on the control plane.
    stream.message().await?;
    Ok(stream)
}

/// The value of `series` in the in-process control plane's `/metrics`.
async fn control_plane_metric(mesh: &Mesh, series: &str) -> f64 {
    metric_at(mesh.control_plane.as_ref().unwrap().admin_addr, series).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_needs_a_mesh_certificate_and_each_identity_has_a_stream_limit() {
    let (ips, port) = endpoint_addresses(1);
    let mut mesh = Mesh::start_with(HOUR, &services_yaml(port, &ips), None).await;
    mesh.stop_control_plane().await;
    let mut config = mesh.control_plane_config();
    config.max_watches_per_identity = 3;
    let running = weft_control_plane::start(config).await.unwrap();
    mesh.control_plane_addr = running.grpc_addr;
    mesh.control_plane = Some(running);
    let cp = mesh.control_plane.as_ref().unwrap();
    let data_dir = cp.trust_bundle_path.parent().unwrap().to_owned();
    let vip = format!("{}:{port}", ips[0]);

    // No certificate: UNAUTHENTICATED with what to do, counted by reason.
    let ca = CertificateAuthority::from_pem(
        &std::fs::read(data_dir.join("ca.pem")).unwrap(),
        &std::fs::read_to_string(data_dir.join("ca-key.pem")).unwrap(),
        None,
    )
    .unwrap();
    let bare = control_plane_client::uncertified_store(&identity("web"), &ca);
    let status = watch(&discovery_client(cp, bare, false), &vip)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    assert!(
        status
            .message()
            .contains("discovery needs the caller's mesh certificate"),
        "{status:?}"
    );
    let no_cert = "weft_discovery_refusals_total{reason=\"no_client_certificate\"}";
    assert_eq!(control_plane_metric(&mesh, no_cert).await, 1.0);

    // A certificate of a foreign CA: the handshake is refused, counted.
    let handshakes = "weft_control_plane_tls_handshake_errors_total";
    let before = control_plane_metric(&mesh, handshakes).await;
    let foreign = discovery_client(cp, foreign_store(&mesh, "web"), true);
    let status = watch(&foreign, &vip).await.unwrap_err();
    assert_ne!(status.code(), tonic::Code::Ok);
    wait::until(
        Duration::from_secs(5),
        "the refused handshake to be counted",
        || async { (control_plane_metric(&mesh, handshakes).await > before).then_some(()) },
    )
    .await;

    // The limit: three watches of web, the fourth refused; db is unaffected; a slot comes back.
    let web = discovery_client(cp, certified_by_data_dir(&identity("web"), &data_dir), true);
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(watch(&web, &vip).await.unwrap());
    }
    let status = watch(&web, &vip).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains(
            "spiffe://cluster.local/ns/demo/sa/web has 3 discovery watches open on this control plane"
        ),
        "{status:?}"
    );
    let exhausted = "weft_discovery_refusals_total{reason=\"too_many_watches\"}";
    assert_eq!(control_plane_metric(&mesh, exhausted).await, 1.0);
    let db = discovery_client(cp, certified_by_data_dir(&identity("db"), &data_dir), true);
    let _db_watch = watch(&db, &vip).await.unwrap();
    drop(open.pop());
    wait::until(
        Duration::from_secs(5),
        "web's closed watch to free its slot",
        || async { watch(&web, &vip).await.ok() },
    )
    .await;

    // A proxy's own watches present its certificate and work.
    let trust = mesh.trust_bundle_path();
    let addr = mesh.control_plane_addr.to_string();
    let client = proxy(
        &mesh,
        "client",
        ProxyOptions::forward_service(SERVICE),
        &addr,
        &trust,
        |_| {},
    )
    .await;
    wait::until(CHANGE_DEADLINE, "the proxy's watch to answer", || async {
        let d = destination(&client).await.ok()??;
        (d["destination"] == DESTINATION && d["endpoints"].as_array()?.len() == 1).then_some(())
    })
    .await;
    assert_eq!(
        metric(&client, "weft_discovery_stream_errors_total").await,
        0.0
    );
    // Only the refusals above were counted: none for the proxy.
    assert_eq!(control_plane_metric(&mesh, no_cert).await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_noticed_within_the_keepalive_bound_and_replaced() {
    let (ips, port) = endpoint_addresses(2);
    let mesh = Mesh::start_with(HOUR, &services_yaml(port, &ips[..1]), None).await;
    let target = mesh.control_plane_addr;
    // The second path's port is reserved but nothing listens there yet: both of the proxy's
    // connections (Certify, discovery) go through the first relay.
    let second_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let first = StallingRelay::start(target).await;
    let addrs = format!("{},{second_addr}", first.addr);
    let interval = Duration::from_millis(300);
    let timeout = Duration::from_millis(300);
    let client = proxy(
        &mesh,
        "web",
        ProxyOptions::forward_service(SERVICE),
        &addrs,
        &mesh.trust_bundle_path(),
        |args| {
            args.control_plane_keepalive_interval = Some("300ms".to_owned());
            args.control_plane_keepalive_timeout = Some("300ms".to_owned());
        },
    )
    .await;
    let _ = clients::get(client.forward_addrs[0], "/", "hello").await;
    wait_endpoints(&client, 1, "the caller's watch to answer").await;
    assert!(first.accepted() >= 2, "both channels use the first path");
    let second = StallingRelay::start_on(second_addr, target).await;

    first.stall();
    let stalled_at = Instant::now();
    let broken = "weft_discovery_stream_errors_total{reason=\"broken\"}";
    wait::until(
        Duration::from_secs(5),
        "the proxy to notice the silent connection",
        || async { (metric(&client, broken).await >= 1.0).then_some(()) },
    )
    .await;
    let noticed = stalled_at.elapsed();
    // The bound is interval + timeout; polling every 20 ms and scheduling add a little.
    let bound = interval + timeout + Duration::from_millis(400);
    assert!(
        noticed <= bound,
        "noticed after {noticed:?}, bound {bound:?}"
    );

    // The watch reconnects through the other path and follows a change from there.
    mesh.write_services(&services_yaml(port, &ips));
    wait_endpoints(&client, 2, "the change to arrive over the second path").await;
    assert!(
        second.accepted() >= 1,
        "the second path carried the new connection"
    );
}

#[test]
fn a_ca_key_readable_by_others_is_refused_and_created_keys_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_secret::create(&dir.path().join("ca"), "cluster.local", DAY, DAY, None).unwrap();
    for key in [&ca.ca_key, &ca.root_key] {
        let mode = std::fs::metadata(key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", key.display());
    }
    std::fs::set_permissions(&ca.ca_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = std::process::Command::new(weft_tests::process::bins::path("weft-control-plane"))
        .arg(format!("--data-dir={}", dir.path().join("data").display()))
        .arg("--listen=127.0.0.1:0")
        .arg("--admin-listen=127.0.0.1:0")
        .arg(format!("--ca-cert={}", ca.ca_cert.display()))
        .arg(format!("--ca-key={}", ca.ca_key.display()))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains(&ca.ca_key.display().to_string()), "{log}");
    assert!(log.contains("mode 0644"), "{log}");
    assert!(log.contains("chmod 600"), "{log}");
    assert!(log.contains("defaultMode: 0400"), "{log}");
}

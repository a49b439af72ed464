//! The control plane's discovery service over real gRPC and TLS, fed by a real services file that
//! the test rewrites while streams are open: answers, live updates, a broken edit that changes
//! nothing, refusals, reconnection, and shutdown with watches open.

use std::path::PathBuf;
use std::time::Duration;

use tempfile::TempDir;
use tonic::Streaming;
use tonic::transport::Channel;
use weft_api::discovery::discovery_client::DiscoveryClient;
use weft_api::discovery::{Endpoint, PortProtocol, Resolution};
use weft_control_plane::{ControlPlaneConfig, RunningControlPlane};
use weft_tests::mesh::control_plane_client::{next, quiet};
use weft_tests::mesh::policy_mesh::timeout_policy;
use weft_tests::mesh::{identity, write_atomically};
use weft_tests::observe::metrics::metric_at;
use weft_tests::{mesh::control_plane_client, wait};

/// Longer than a reload takes (files are polled every second), short enough for a test.
const UPDATE_DEADLINE: Duration = Duration::from_secs(5);
/// How long "nothing arrives" is watched for: more than two polls of the file.
const QUIET: Duration = Duration::from_millis(2500);

const HELLO_VIP: &str = "10.96.0.10:80";
const DB_VIP: &str = "10.96.0.20:5432";

fn services(hello_endpoints: &str) -> String {
    format!(
        "\
apiVersion: weft.dev/v1alpha1
kind: MeshService
metadata:
  name: hello
  namespace: demo
spec:
  addresses: [10.96.0.10]
  ports:
    - port: 80
      targetPort: 8080
  endpoints:
{hello_endpoints}---
apiVersion: weft.dev/v1alpha1
kind: MeshService
metadata:
  name: db
  namespace: data
spec:
  addresses: [10.96.0.20]
  ports:
    - port: 5432
      protocol: opaque
  endpoints:
    - address: 10.200.1.5
      meshed: false
"
    )
}

const ONE_ENDPOINT: &str = "    - address: 10.200.0.2\n      serviceAccount: hello\n";
const TWO_ENDPOINTS: &str = "    - address: 10.200.0.2\n      serviceAccount: hello\n    - address: 10.200.0.3\n      identity: spiffe://cluster.local/ns/demo/sa/hello\n";

/// A control plane with `--services`, and a discovery client.
struct Fixture {
    _dir: TempDir,
    services: PathBuf,
    /// The `--policies` directory, empty at start.
    policies: PathBuf,
    control_plane: Option<RunningControlPlane>,
    client: DiscoveryClient<Channel>,
}

impl Fixture {
    async fn start(contents: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let services = dir.path().join("services.yaml");
        write_atomically(&services, contents);
        let mut config = ControlPlaneConfig::local(dir.path().join("control-plane"));
        config.services = Some(services.clone());
        let policies = dir.path().join("policies");
        std::fs::create_dir(&policies).unwrap();
        config.policies = Some(policies.clone());
        let control_plane = weft_control_plane::start(config).await.unwrap();
        let client = client(&control_plane);
        Self {
            _dir: dir,
            services,
            policies,
            control_plane: Some(control_plane),
            client,
        }
    }

    fn control_plane(&self) -> &RunningControlPlane {
        self.control_plane.as_ref().unwrap()
    }

    async fn watch(&self, address: &str) -> Result<Streaming<Resolution>, tonic::Status> {
        control_plane_client::watch(&self.client, address).await
    }

    /// A new watch and its first message.
    async fn resolve(&self, address: &str) -> (Streaming<Resolution>, Resolution) {
        let mut stream = self.watch(address).await.unwrap();
        let first = next(&mut stream, UPDATE_DEADLINE).await;
        (stream, first)
    }

    /// The value of `series` in the control plane's `/metrics`.
    async fn metric(&self, series: &str) -> f64 {
        metric_at(self.control_plane().admin_addr, series).await
    }

    fn reload_errors(&self) -> String {
        format!(
            r#"weft_config_reloads_total{{file="{}",result="error"}}"#,
            self.services.display()
        )
    }
}

/// A discovery client that verifies the control plane's identity over TLS and presents the
/// mesh certificate of `web`, as a proxy's watches do.
fn client(control_plane: &RunningControlPlane) -> DiscoveryClient<Channel> {
    let data_dir = control_plane.trust_bundle_path.parent().unwrap();
    let store = control_plane_client::certified_by_data_dir(&identity("web"), data_dir);
    control_plane_client::discovery_client(control_plane, store, true)
}

fn hello_endpoint(address: &str) -> Endpoint {
    Endpoint {
        address: address.to_owned(),
        identity: "spiffe://cluster.local/ns/demo/sa/hello".to_owned(),
        meshed: true,
    }
}

fn hello(endpoints: Vec<Endpoint>) -> Resolution {
    Resolution {
        known: true,
        service: "hello.demo".to_owned(),
        endpoints,
        opaque: false,
        policy: None,
        server_policy: None,
        routes: None,
        protocol: PortProtocol::Detect.into(),
    }
}

#[tokio::test]
async fn watches_follow_the_file_and_survive_a_broken_edit() {
    let fixture = Fixture::start(&services(ONE_ENDPOINT)).await;

    // A service address: every endpoint, on the target port, with its identity.
    let (mut vip, first) = fixture.resolve(HELLO_VIP).await;
    assert_eq!(first, hello(vec![hello_endpoint("10.200.0.2:8080")]));
    let (mut db, first) = fixture.resolve(DB_VIP).await;
    assert_eq!(
        first,
        Resolution {
            known: true,
            service: "db.data".to_owned(),
            endpoints: vec![Endpoint {
                address: "10.200.1.5:5432".to_owned(),
                identity: String::new(),
                meshed: false,
            }],
            opaque: true,
            policy: None,
            server_policy: None,
            routes: None,
            protocol: PortProtocol::Opaque.into(),
        }
    );
    assert_eq!(
        fixture
            .metric(r#"weft_discovery_watches{kind="destination"}"#)
            .await,
        2.0
    );
    assert_eq!(fixture.metric("weft_discovery_services").await, 2.0);
    assert_eq!(fixture.metric("weft_discovery_endpoints").await, 2.0);

    // An endpoint is added: the stream delivers the whole new answer.
    write_atomically(&fixture.services, &services(TWO_ENDPOINTS));
    let grown = hello(vec![
        hello_endpoint("10.200.0.2:8080"),
        hello_endpoint("10.200.0.3:8080"),
    ]);
    assert_eq!(next(&mut vip, UPDATE_DEADLINE).await, grown);
    assert_eq!(fixture.metric("weft_discovery_endpoints").await, 3.0);
    // The other service did not change, so its watch hears nothing.
    quiet(&mut db, QUIET, "db is unchanged").await;

    // A broken edit: logged, counted, and nothing changes for anyone.
    let errors_before = fixture.metric(&fixture.reload_errors()).await;
    write_atomically(
        &fixture.services,
        &services(TWO_ENDPOINTS).replace("port: 80\n", "port: 0\n"),
    );
    wait::until(UPDATE_DEADLINE, "the broken file to be counted", || async {
        (fixture.metric(&fixture.reload_errors()).await == errors_before + 1.0).then_some(())
    })
    .await;
    quiet(&mut vip, QUIET, "a broken file keeps the last good answer").await;
    assert_eq!(fixture.metric("weft_discovery_endpoints").await, 3.0);
    // A new watch gets the last good answer too.
    let (_again, first) = fixture.resolve(HELLO_VIP).await;
    assert_eq!(first, grown);

    // Fixed again, with one endpoint gone: the open stream follows.
    write_atomically(&fixture.services, &services(ONE_ENDPOINT));
    assert_eq!(
        next(&mut vip, UPDATE_DEADLINE).await,
        hello(vec![hello_endpoint("10.200.0.2:8080")])
    );
}

#[tokio::test]
async fn pods_strangers_and_refusals() {
    let fixture = Fixture::start(&services(TWO_ENDPOINTS)).await;

    // A pod's own address: that endpoint only.
    let (_pod, first) = fixture.resolve("10.200.0.3:8080").await;
    assert_eq!(first, hello(vec![hello_endpoint("10.200.0.3:8080")]));

    // Nobody's address or name, and a service address or name on a port it does not have.
    for unknown in [
        "10.1.2.3:80",
        "10.96.0.10:8080",
        "[fd00::1]:80",
        "nobody.demo:80",
        "hello.demo:8080",
    ] {
        let (_stream, first) = fixture.resolve(unknown).await;
        assert_eq!(first, Resolution::default(), "{unknown}");
        assert!(!first.known);
    }

    for malformed in ["10.96.0.10", "hello.demo:http", "10.96.0.10:0", ""] {
        let status = fixture.watch(malformed).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{malformed}");
        assert!(status.message().contains("ip:port"), "{status:?}");
    }
    assert_eq!(
        fixture
            .metric(r#"weft_discovery_requests_total{result="invalid_address"}"#)
            .await,
        3.0 + 1.0
    );
}

#[tokio::test]
async fn a_new_watch_starts_with_the_full_answer_and_closed_ones_are_released() {
    let fixture = Fixture::start(&services(ONE_ENDPOINT)).await;
    let (vip, _) = fixture.resolve(HELLO_VIP).await;
    assert_eq!(
        fixture
            .metric(r#"weft_discovery_watches{kind="destination"}"#)
            .await,
        1.0
    );

    // The proxy goes away; meanwhile the service changes.
    drop(vip);
    wait::until(
        UPDATE_DEADLINE,
        "the closed watch to be released",
        || async {
            (fixture
                .metric(r#"weft_discovery_watches{kind="destination"}"#)
                .await
                == 0.0)
                .then_some(())
        },
    )
    .await;
    write_atomically(&fixture.services, &services(TWO_ENDPOINTS));
    wait::until(UPDATE_DEADLINE, "the new file to load", || async {
        (fixture.metric("weft_discovery_endpoints").await == 3.0).then_some(())
    })
    .await;

    // Watching again: the whole current answer first, nothing to replay.
    let (mut vip, first) = fixture.resolve(HELLO_VIP).await;
    assert_eq!(
        first,
        hello(vec![
            hello_endpoint("10.200.0.2:8080"),
            hello_endpoint("10.200.0.3:8080"),
        ])
    );

    // Stopping the control plane ends open watches instead of waiting on them.
    let mut fixture = fixture;
    let control_plane = fixture.control_plane.take().unwrap();
    tokio::time::timeout(UPDATE_DEADLINE, control_plane.shutdown())
        .await
        .expect("shutdown does not wait for open watches");
    let end = tokio::time::timeout(UPDATE_DEADLINE, vip.message())
        .await
        .expect("the stream ends");
    match end {
        Err(status) => assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}"),
        Ok(message) => assert_eq!(message, None),
    }
}

#[tokio::test]
async fn a_broken_services_file_stops_startup_and_no_file_means_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("services.yaml");
    let bad_protocol = services(ONE_ENDPOINT).replace(
        "      targetPort: 8080\n",
        "      targetPort: 8080\n      protocol: udp\n",
    );
    write_atomically(&path, &bad_protocol);
    let mut config = ControlPlaneConfig::local(dir.path().join("control-plane"));
    config.services = Some(path.clone());
    let Err(e) = weft_control_plane::start(config.clone()).await else {
        panic!("a broken services file must stop startup");
    };
    let message = format!("{e:#}");
    let expected = format!(
        "{}:11: unknown protocol \"udp\" (expected detect, http or opaque)",
        path.display()
    );
    assert!(message.contains(&expected), "{message}");

    config.services = None;
    let control_plane = weft_control_plane::start(config).await.unwrap();
    let mut stream = control_plane_client::watch(&client(&control_plane), HELLO_VIP)
        .await
        .unwrap();
    assert_eq!(
        next(&mut stream, UPDATE_DEADLINE).await,
        Resolution::default()
    );
    control_plane.shutdown().await;
}

#[tokio::test]
async fn policy_edits_reach_open_watches_and_a_broken_edit_keeps_the_last_good() {
    let fixture = Fixture::start(&services(ONE_ENDPOINT)).await;
    let (mut by_vip, first) = fixture.resolve(HELLO_VIP).await;
    assert_eq!(
        first.policy, None,
        "no ServicePolicy yet: the proxy's built-in defaults"
    );
    let (mut by_name, named) = fixture.resolve("hello.demo:80").await;
    assert_eq!(
        named, first,
        "a name and port resolve like the service address"
    );
    let (mut db, _) = fixture.resolve(DB_VIP).await;

    let file = fixture.policies.join("hello.yaml");
    write_atomically(&file, &timeout_policy("3s"));
    let written = std::time::Instant::now();
    let update = next(&mut by_vip, UPDATE_DEADLINE).await;
    // One poll of the directory (every second), with room for a busy machine.
    assert!(
        written.elapsed() < Duration::from_millis(2000),
        "{:?}",
        written.elapsed()
    );
    let policy = update.policy.clone().unwrap();
    assert!(
        policy.version.starts_with("hello.demo@"),
        "{}",
        policy.version
    );
    let timeouts = policy.default_rules.unwrap().timeouts.unwrap();
    assert_eq!(timeouts.request_ms, 3_000);
    assert_eq!(update.endpoints, first.endpoints);
    assert_eq!(next(&mut by_name, UPDATE_DEADLINE).await, update);
    assert_eq!(fixture.metric("weft_policies").await, 1.0);

    // A broken edit: logged, counted, and the last good policy stays in force.
    write_atomically(&file, &timeout_policy("3 s"));
    quiet(&mut by_vip, QUIET, "a broken policy edit").await;
    let errors = format!(
        r#"weft_config_reloads_total{{file="{}",result="error"}}"#,
        fixture.policies.display()
    );
    assert_eq!(fixture.metric(&errors).await, 1.0);
    assert_eq!(fixture.metric("weft_policies").await, 1.0);
    let (_fresh, answer) = fixture.resolve(HELLO_VIP).await;
    assert_eq!(answer.policy, update.policy);

    // Removed: the answer goes back to no policy; other services never heard of any of it.
    std::fs::remove_file(&file).unwrap();
    assert_eq!(next(&mut by_vip, UPDATE_DEADLINE).await.policy, None);
    quiet(&mut db, QUIET, "edits of another service's policy").await;
    assert_eq!(fixture.metric("weft_policies").await, 0.0);
}

#[tokio::test]
async fn a_broken_policy_file_stops_startup_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies.yaml");
    std::fs::write(
        &policies,
        timeout_policy("3 s").replace("timeouts", "timeout"),
    )
    .unwrap();
    let mut config = ControlPlaneConfig::local(dir.path().join("control-plane"));
    config.policies = Some(policies.clone());
    let Err(err) = weft_control_plane::start(config).await else {
        panic!("a broken policy file must stop the control plane");
    };
    assert_eq!(
        format!("{err:#}"),
        format!(
            "{}:7:7: spec.client.defaults.timeout: unknown field; did you mean `timeouts`?",
            policies.display()
        )
    );
}

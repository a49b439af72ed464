//! ServicePolicy and MeshService custom resources, end to end: objects put into the fake API
//! server, a real control plane with `--kubernetes` watching them, and a real discovery client
//! over gRPC and TLS reading `Resolution.policy` as a proxy would. Statuses are read back from
//! the API server, as `kubectl get -o yaml` would show them.

use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;
use tonic::Streaming;
use tonic::transport::Channel;
use weft_api::discovery::Resolution;
use weft_api::discovery::discovery_client::DiscoveryClient;
use weft_control_plane::RunningControlPlane;
use weft_tests::kubernetes::fake_apiserver::{FakeApiServer, fixture};
use weft_tests::mesh::control_plane_client::{self, next, quiet};
use weft_tests::observe::metrics::metric_at;
use weft_tests::wait;

const API_VERSION: &str = "weft.dev/v1alpha1";
/// The MeshService fixture's address and HTTP port.
const PAYMENTS_VIP: &str = "10.96.0.30:80";
/// A list, a watch and a check take milliseconds; this leaves room for a busy machine.
const DEADLINE: Duration = Duration::from_secs(10);
/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(1500);

struct Fixture {
    _dir: TempDir,
    control_plane: RunningControlPlane,
    client: DiscoveryClient<Channel>,
}

impl Fixture {
    /// A control plane watching `api`, with optional `--services` / `--policies` files.
    async fn start(api: &FakeApiServer, services: Option<&str>, policies: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = api.control_plane_config(dir.path().join("control-plane"));
        if let Some(text) = services {
            let path = dir.path().join("services.yaml");
            std::fs::write(&path, text).unwrap();
            config.services = Some(path);
        }
        if let Some(text) = policies {
            let path = dir.path().join("policies.yaml");
            std::fs::write(&path, text).unwrap();
            config.policies = Some(path);
        }
        let control_plane = weft_control_plane::start(config).await.unwrap();
        let client =
            weft_tests::mesh::control_plane_client::mesh_discovery_client(&control_plane, "web");
        Self {
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

    /// A watch whose first answer satisfies `ready` (a fresh watch each try, until the
    /// control plane has listed the objects), and that answer.
    async fn watch_until(
        &self,
        address: &str,
        what: &str,
        ready: impl Fn(&Resolution) -> bool,
    ) -> (Streaming<Resolution>, Resolution) {
        wait::until(DEADLINE, what, || async {
            let mut stream = self.watch(address).await;
            let first = next(&mut stream, DEADLINE).await;
            ready(&first).then_some((stream, first))
        })
        .await
    }

    async fn metric(&self, series: &str) -> f64 {
        metric_at(self.control_plane.admin_addr, series).await
    }
}

/// The request timeout and retry limit of an answer's client policy.
fn request_and_limit(resolution: &Resolution) -> Option<(u64, u32)> {
    let rules = resolution.policy.as_ref()?.default_rules.as_ref()?;
    Some((
        rules.timeouts.as_ref()?.request_ms,
        rules.retries.as_ref()?.limit,
    ))
}

/// The stored object's `Accepted` condition, once its status describes `generation`.
async fn accepted_condition(
    api: &FakeApiServer,
    kind: &str,
    name: &str,
    generation: i64,
) -> (Value, Value) {
    wait::until(
        DEADLINE,
        &format!("the status of {kind} prod/{name} for generation {generation}"),
        || async {
            let object = api.get(API_VERSION, kind, Some("prod"), name)?;
            let status = object.get("status")?.clone();
            (status["observedGeneration"] == json!(generation)).then_some(())?;
            let condition = status["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Accepted")?
                .clone();
            Some((status, condition))
        },
    )
    .await
}

fn with_spec(mut object: Value, pointer: &str, value: Value) -> Value {
    *object.pointer_mut(pointer).unwrap() = value;
    object
}

#[tokio::test]
async fn a_valid_service_policy_is_accepted_and_reaches_a_watching_client() {
    let api = FakeApiServer::start().await;
    api.put(fixture("meshservice-payments"));
    let fixture_ = Fixture::start(&api, None, None).await;
    let (mut stream, first) = fixture_
        .watch_until(PAYMENTS_VIP, "the MeshService object to be listed", |r| {
            r.known
        })
        .await;
    assert_eq!(first.service, "payments.prod");
    assert_eq!(first.policy, None, "no ServicePolicy yet");

    let stored = api.put(fixture("servicepolicy-payments"));
    let generation = stored["metadata"]["generation"].as_i64().unwrap();
    let update = next(&mut stream, DEADLINE).await;
    assert_eq!(request_and_limit(&update), Some((10_000, 2)), "{update:?}");
    assert_eq!(update.endpoints, first.endpoints);
    let policy = update.policy.as_ref().unwrap();
    assert!(
        policy.version.starts_with("payments.prod@"),
        "{}",
        policy.version
    );

    let (status, condition) =
        accepted_condition(&api, "ServicePolicy", "payments", generation).await;
    assert_eq!(condition["status"], "True", "{status}");
    assert_eq!(condition["reason"], "Accepted");
    assert_eq!(condition["observedGeneration"], json!(generation));
    assert!(condition["lastTransitionTime"].is_string(), "{status}");
    assert_eq!(status["acceptedGeneration"], json!(generation));
    // The status write does not bump the generation, and is not answered by another check.
    let checked = r#"weft_custom_resources_checked_total{kind="ServicePolicy",result="accepted"}"#;
    assert_eq!(fixture_.metric(checked).await, 1.0);
    quiet(&mut stream, QUIET, "the control plane's own status write").await;
    assert_eq!(fixture_.metric(checked).await, 1.0);
    assert_eq!(fixture_.metric("weft_policies").await, 1.0);

    // Deleted: the answer goes back to the built-in defaults.
    api.delete(API_VERSION, "ServicePolicy", Some("prod"), "payments");
    assert_eq!(next(&mut stream, DEADLINE).await.policy, None);
}

#[tokio::test]
async fn an_invalid_edit_keeps_the_last_accepted_policy_until_it_is_fixed() {
    let api = FakeApiServer::start().await;
    api.put(fixture("meshservice-payments"));
    let good = fixture("servicepolicy-payments");
    api.put(good.clone());
    let fixture_ = Fixture::start(&api, None, None).await;
    let (mut stream, first) = fixture_
        .watch_until(PAYMENTS_VIP, "the policy object to be in force", |r| {
            r.policy.is_some()
        })
        .await;
    assert_eq!(request_and_limit(&first), Some((10_000, 2)));
    accepted_condition(&api, "ServicePolicy", "payments", 1).await;

    // Two mistakes: both reported, with the field paths, and nothing changes for callers.
    let broken = with_spec(
        with_spec(
            good.clone(),
            "/spec/client/defaults/retries/limit",
            json!(9),
        ),
        "/spec/client/defaults/timeouts/request",
        json!("3 s"),
    );
    let stored = api.put(broken);
    assert_eq!(stored["metadata"]["generation"], 2);
    let (status, condition) = accepted_condition(&api, "ServicePolicy", "payments", 2).await;
    assert_eq!(condition["status"], "False", "{status}");
    assert_eq!(condition["reason"], "Invalid");
    assert_eq!(
        condition["message"],
        "ServicePolicy prod/payments: spec.client.defaults.retries.limit: 9 is out of range (0-5)\n\
         ServicePolicy prod/payments: spec.client.defaults.timeouts.request: `3 s` is not a duration: expected a number and a unit (ms, s, m, h, d), like 300ms or 1h30m; did you mean 3s?"
    );
    assert_eq!(
        status["acceptedGeneration"], 1,
        "generation 1 stays in force"
    );
    quiet(&mut stream, QUIET, "an invalid edit").await;
    let fresh = fixture_
        .watch_until(PAYMENTS_VIP, "a fresh answer", |_| true)
        .await
        .1;
    assert_eq!(request_and_limit(&fresh), Some((10_000, 2)));
    let invalid = r#"weft_custom_resources_checked_total{kind="ServicePolicy",result="invalid"}"#;
    assert_eq!(fixture_.metric(invalid).await, 1.0);

    // Fixed: accepted, and the new values arrive.
    let fixed = with_spec(
        with_spec(good, "/spec/client/defaults/retries/limit", json!(1)),
        "/spec/client/defaults/timeouts/request",
        json!("5s"),
    );
    api.put(fixed);
    let update = next(&mut stream, DEADLINE).await;
    assert_eq!(request_and_limit(&update), Some((5_000, 1)), "{update:?}");
    let (status, condition) = accepted_condition(&api, "ServicePolicy", "payments", 3).await;
    assert_eq!(condition["status"], "True", "{status}");
    assert_eq!(condition["reason"], "Accepted");
    assert_eq!(status["acceptedGeneration"], 3);
}

/// The MeshService fixture as a `--services` document.
const PAYMENTS_FILE: &str = "\
apiVersion: weft.dev/v1alpha1
kind: MeshService
metadata: {name: payments, namespace: prod}
spec:
  addresses: [10.96.0.30]
  endpoints:
    - {address: 10.200.3.1, serviceAccount: payments}
    - {address: 10.200.3.2, identity: \"spiffe://cluster.local/ns/prod/sa/payments\"}
    - {address: 10.200.3.9, meshed: false}
  ports:
    - {port: 80, protocol: http, targetPort: 8080}
    - {port: 5432, protocol: opaque}
";

#[tokio::test]
async fn a_mesh_service_object_resolves_like_the_file_version() {
    let api = FakeApiServer::start().await;
    api.put(fixture("meshservice-payments"));
    let from_object = Fixture::start(&api, None, None).await;
    let empty = FakeApiServer::start().await;
    let from_file = Fixture::start(&empty, Some(PAYMENTS_FILE), None).await;
    for address in [
        PAYMENTS_VIP,
        "10.96.0.30:5432",
        "10.200.3.1:8080",
        "10.200.3.9:5432",
        "payments.prod:80",
    ] {
        let (_, by_object) = from_object.watch_until(address, address, |r| r.known).await;
        let (_, by_file) = from_file.watch_until(address, address, |r| r.known).await;
        assert_eq!(by_object, by_file, "{address}");
    }
    let (_, vip) = from_object
        .watch_until(PAYMENTS_VIP, "the VIP", |r| r.known)
        .await;
    assert_eq!(vip.endpoints.len(), 3);
    let (status, condition) = accepted_condition(&api, "MeshService", "payments", 1).await;
    assert_eq!(condition["status"], "True", "{status}");

    // Another object claiming the same address is refused; the first one is unaffected.
    let mut thief = fixture("meshservice-payments");
    thief["metadata"]["name"] = json!("thief");
    thief["spec"]["endpoints"] = json!([{"address": "10.200.9.9", "meshed": false}]);
    api.put(thief);
    let (status, condition) = accepted_condition(&api, "MeshService", "thief", 1).await;
    assert_eq!(condition["reason"], "Invalid", "{status}");
    assert_eq!(
        condition["message"],
        "MeshService prod/thief: 10.96.0.30:80 (a service address of thief.prod) is already claimed by service payments.prod"
    );
    let (_, still) = from_object
        .watch_until(PAYMENTS_VIP, "the VIP", |r| r.known)
        .await;
    assert_eq!(still, vip);

    // A broken object says what the file checker would say, without line numbers.
    let broken = with_spec(
        fixture("meshservice-payments"),
        "/spec/ports/0/port",
        json!(0),
    );
    let mut broken = broken;
    broken["metadata"]["name"] = json!("broken");
    broken["spec"]["addresses"] = json!(["10.96.0.31"]);
    broken["spec"]["endpoints"] = json!([]);
    api.put(broken);
    let (_, condition) = accepted_condition(&api, "MeshService", "broken", 1).await;
    assert_eq!(condition["reason"], "Invalid");
    assert_eq!(
        condition["message"],
        "MeshService prod/broken: port 0 is out of range (1-65535)"
    );
}

#[tokio::test]
async fn a_policies_file_wins_over_an_object_of_the_same_service() {
    let api = FakeApiServer::start().await;
    api.put(fixture("meshservice-payments"));
    api.put(fixture("servicepolicy-payments"));
    let file = "apiVersion: weft.dev/v1alpha1\nkind: ServicePolicy\nmetadata: {name: payments, namespace: prod}\nspec:\n  client:\n    defaults:\n      timeouts: {request: 4s}\n      retries: {limit: 0}\n";
    let fixture_ = Fixture::start(&api, None, Some(file)).await;
    let (_, condition) = accepted_condition(&api, "ServicePolicy", "payments", 1).await;
    assert_eq!(condition["status"], "False");
    assert_eq!(condition["reason"], "Overridden");
    let message = condition["message"].as_str().unwrap();
    assert!(
        message.contains("policies.yaml (--policies) also defines ServicePolicy payments.prod; the file is in force"),
        "{message}"
    );
    let (_, answer) = fixture_
        .watch_until(PAYMENTS_VIP, "the service", |r| r.known)
        .await;
    assert_eq!(request_and_limit(&answer), Some((4_000, 0)));
}

#[tokio::test]
async fn an_object_deleted_while_the_api_server_was_away_is_dropped_at_the_relist() {
    let api = FakeApiServer::start().await;
    api.put(fixture("meshservice-payments"));
    api.put(fixture("servicepolicy-payments"));
    let fixture_ = Fixture::start(&api, None, None).await;
    let (mut stream, _) = fixture_
        .watch_until(PAYMENTS_VIP, "the policy object to be in force", |r| {
            r.policy.is_some()
        })
        .await;
    // The DELETED event is never seen: the watch is down, then its revision is too old.
    api.set_down(true);
    api.delete(API_VERSION, "ServicePolicy", Some("prod"), "payments");
    api.expire_watches();
    api.set_down(false);
    let update = next(&mut stream, DEADLINE).await;
    assert_eq!(update.policy, None, "{update:?}");
    assert!(update.known, "the MeshService object is still listed");
    let lists = api
        .requests()
        .iter()
        .filter(|r| {
            r.starts_with("GET /apis/weft.dev/v1alpha1/servicepolicies")
                && !r.contains("watch=true")
        })
        .count();
    assert_eq!(
        lists,
        2,
        "a list at start and one after the 410: {:#?}",
        api.requests()
    );
    let failed = r#"weft_custom_resource_errors_total{kind="ServicePolicy",operation="watch"}"#;
    assert!(fixture_.metric(failed).await >= 1.0);
}

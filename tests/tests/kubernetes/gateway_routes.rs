//! Gateway API routes from a cluster, end to end: HTTPRoute and ReferenceGrant objects (in the
//! shapes of the Gateway API's mesh conformance manifests, `conformance/tests/mesh/` of
//! kubernetes-sigs/gateway-api v1.6.1) put into the fake API server, a real control plane with
//! `--kubernetes` watching it, real sidecars and apps on loopback. The tests count which app
//! answered and read each route's `status.parents[]` back from the API server, as
//! `kubectl get httproute -o yaml` shows it.
//!
//! The mesh: `hello.demo` (ports 8080 and 8081, an endpoint of its own), `hello-v1.demo`,
//! `hello-v2.demo` and `hello-v3.shop` (port 8080), each endpoint a sidecar in front of an app
//! that answers with `x-app: hello-<ip>`. The caller `web` of `demo` has listeners for
//! `hello.demo:8080` and `:8081`; `web` of `shop` one for `hello.demo:8080`.

use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;
use weft_proxy::RunningProxy;
use weft_tests::kubernetes::fake_apiserver::FakeApiServer;
use weft_tests::mesh::policy_mesh::{
    Backend, Caller, admin_get, endpoint_addresses, start_backends,
};
use weft_tests::mesh::{Mesh, OTHER_NAMESPACE, ProxyOptions};
use weft_tests::observe::metrics::metric_at;
use weft_tests::wait;

const HOUR: Duration = Duration::from_secs(3600);
/// A list, a watch, a check and a discovery push take milliseconds; room for a busy machine.
const DEADLINE: Duration = Duration::from_secs(10);
/// How long "nothing is written" is watched for: many times a watch event's round trip.
const QUIET: Duration = Duration::from_secs(1);
const ROUTE: &str = "gateway.networking.k8s.io/v1";
const GRANT: &str = "gateway.networking.k8s.io/v1beta1";

struct Cluster {
    api: FakeApiServer,
    mesh: Mesh,
    backends: Vec<Backend>,
    /// `web` of `demo`: listeners for `hello.demo:8080` and `hello.demo:8081`.
    client: RunningProxy,
}

fn services(ips: &[Ipv4Addr], port: u16) -> String {
    let service = |name: &str, namespace: &str, ports: &str, ip: Ipv4Addr| {
        format!(
            "apiVersion: weft.dev/v1alpha1\nkind: MeshService\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  ports: [{ports}]\n  endpoints: [{{address: {ip}, identity: spiffe://cluster.local/ns/demo/sa/hello}}]\n"
        )
    };
    let one = format!("{{port: 8080, targetPort: {port}}}");
    let two = format!("{one}, {{port: 8081, targetPort: {port}}}");
    [
        service("hello", "demo", &two, ips[0]),
        service("hello-v1", "demo", &one, ips[1]),
        service("hello-v2", "demo", &one, ips[2]),
        service("hello-v3", OTHER_NAMESPACE, &one, ips[3]),
    ]
    .join("---\n")
}

/// An HTTPRoute object `name` of `namespace` attached to `hello.demo` (on `port`, or every
/// port) with `rules`, as `kubectl apply` stores it.
fn route(name: &str, namespace: &str, port: Option<u16>, rules: Value) -> Value {
    let mut parent = json!({"group": "", "kind": "Service", "name": "hello", "namespace": "demo"});
    if let Some(port) = port {
        parent["port"] = json!(port);
    }
    json!({
        "apiVersion": ROUTE, "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": namespace,
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {"parentRefs": [parent], "rules": rules},
    })
}

fn split(v1: u32, v2: u32) -> Value {
    route(
        "mesh-weighted-backends",
        "demo",
        Some(8080),
        json!([{"backendRefs": [
            {"name": "hello-v1", "port": 8080, "weight": v1},
            {"name": "hello-v2", "port": 8080, "weight": v2},
        ]}]),
    )
}

/// `shop` lets HTTPRoutes of `demo` send to its Service `hello-v3`.
fn grant() -> Value {
    json!({
        "apiVersion": GRANT, "kind": "ReferenceGrant",
        "metadata": {"name": "demo-routes", "namespace": OTHER_NAMESPACE},
        "spec": {
            "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "demo"}],
            "to": [{"group": "", "kind": "Service", "name": "hello-v3"}],
        },
    })
}

impl Cluster {
    async fn start() -> Self {
        let api = FakeApiServer::start().await;
        let (ips, port) = endpoint_addresses(4);
        let mut mesh = Mesh::start_with(HOUR, &services(&ips, port), None).await;
        mesh.use_kubernetes(api.kubeconfig()).await;
        let backends = start_backends(&mesh, &ips, port, None).await;
        let forward = vec!["hello.demo:8080".into(), "hello.demo:8081".into()];
        let client = mesh
            .proxy(
                "web",
                ProxyOptions {
                    forward_services: forward,
                    ..ProxyOptions::default()
                },
            )
            .await;
        Self {
            api,
            mesh,
            backends,
            client,
        }
    }

    /// Which app answered: 0 hello, 1 hello-v1, 2 hello-v2, 3 hello-v3.
    fn app(&self, x_app: Option<&str>) -> Option<usize> {
        self.backends
            .iter()
            .position(|b| Some(b.app.name.as_str()) == x_app)
    }

    /// `n` GETs through `addr` on one keep-alive connection: `(status, app)` of each.
    async fn send(&self, addr: std::net::SocketAddr, n: usize) -> Vec<(u16, Option<usize>)> {
        let mut caller = Caller::connect(addr).await.unwrap();
        let mut out = Vec::new();
        for _ in 0..n {
            let answer = caller.get("/").await.unwrap();
            out.push((answer.status.as_u16(), self.app(answer.header("x-app"))));
        }
        out
    }

    /// Waits until the stored object's weft entry describes `generation` with `conditions`
    /// (`"Accepted=True Accepted"` …); returns the entry.
    async fn status(&self, name: &str, generation: i64, conditions: [&str; 2]) -> Value {
        self.status_of("HTTPRoute", name, generation, conditions)
            .await
    }

    /// [`Cluster::status`] of a route of `kind`.
    async fn status_of(
        &self,
        kind: &str,
        name: &str,
        generation: i64,
        conditions: [&str; 2],
    ) -> Value {
        let what = format!("the status of {kind} demo/{name}: {conditions:?} for {generation}");
        wait::until(DEADLINE, &what, || async {
            let object = self.api.get(ROUTE, kind, Some("demo"), name)?;
            let parents = object["status"]["parents"].as_array()?.clone();
            let ours = parents
                .into_iter()
                .find(|p| p["controllerName"] == "weft.dev/mesh-controller")?;
            let found: Vec<String> = ours["conditions"]
                .as_array()?
                .iter()
                .filter(|c| c["observedGeneration"] == generation)
                .map(|c| {
                    format!(
                        "{}={} {}",
                        c["type"].as_str()?,
                        c["status"].as_str()?,
                        c["reason"].as_str()?
                    )
                    .into()
                })
                .collect::<Option<_>>()?;
            (found == conditions).then_some(ours)
        })
        .await
    }

    /// Waits until the caller's table for `hello.demo:8080` satisfies `ready`.
    async fn wait_table(&self, proxy: &RunningProxy, what: &str, ready: impl Fn(&Value) -> bool) {
        wait::until(DEADLINE, what, || async {
            let (_, body) = admin_get(proxy, "/destinations").await.ok()?;
            let all: Value = serde_json::from_str(&body).ok()?;
            let table = all
                .as_array()?
                .iter()
                .find(|d| d["watched"] == "hello.demo:8080")?["gateway_routes"]
                .clone();
            ready(&table).then_some(())
        })
        .await
    }
}

fn share(answers: &[(u16, Option<usize>)], app: usize) -> f64 {
    answers.iter().filter(|(_, a)| *a == Some(app)).count() as f64 / answers.len() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_object_splits_traffic_a_weight_edit_takes_effect_and_its_status_says_so() {
    let cluster = Cluster::start().await;
    let stored = cluster.api.put(split(70, 30));
    assert_eq!(stored["metadata"]["generation"], 1);
    let addr = cluster.client.forward_addrs[0];
    cluster
        .wait_table(&cluster.client, "the 70/30 split", |t| {
            t["version"]
                .as_str()
                .is_some_and(|v| v.starts_with("demo/mesh-weighted-backends@"))
        })
        .await;

    // httproute-weight: 400 requests, each app's share within 0.07 of its weight's (the
    // standard deviation at 0.3 is 0.023: 3 of them).
    let answers = cluster.send(addr, 400).await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    let (v1, v2) = (share(&answers, 1), share(&answers, 2));
    assert!(
        (v1 - 0.7).abs() < 0.07 && (v2 - 0.3).abs() < 0.07,
        "v1 {v1}, v2 {v2}"
    );

    let ours = cluster
        .status(
            "mesh-weighted-backends",
            1,
            ["Accepted=True Accepted", "ResolvedRefs=True ResolvedRefs"],
        )
        .await;
    assert_eq!(
        ours["parentRef"],
        json!({"group": "", "kind": "Service", "name": "hello", "namespace": "demo", "port": 8080})
    );
    assert!(
        ours["conditions"][0]["lastTransitionTime"].is_string(),
        "{ours}"
    );
    // The status is written once: a change that leaves it as it is (a grant elsewhere, which
    // makes the control plane judge every route again) writes nothing.
    let writes = || {
        let requests = cluster.api.requests();
        let path = "PATCH /apis/gateway.networking.k8s.io/v1/namespaces/demo/httproutes/mesh-weighted-backends/status";
        requests.iter().filter(|r| r.starts_with(path)).count()
    };
    assert_eq!(writes(), 1);
    let mut unrelated = grant();
    unrelated["metadata"]["name"] = json!("unrelated");
    cluster.api.put(unrelated);
    tokio::time::sleep(QUIET).await;
    assert_eq!(writes(), 1, "the status was written again unchanged");

    // A weight edit through the API, under load: every request succeeds, and from 1 s after
    // the edit on, every one goes to hello-v2.
    let load = {
        let (name_of, addr) = (
            cluster
                .backends
                .iter()
                .map(|b| b.app.name.clone())
                .collect::<Vec<_>>(),
            addr,
        );
        tokio::spawn(async move {
            let mut caller = Caller::connect(addr).await.unwrap();
            let mut seen = Vec::new();
            let stop = Instant::now() + Duration::from_secs(3);
            // Paced, so the load lasts its 3 s however fast the machine is (at most 1,500).
            let mut pace = tokio::time::interval(Duration::from_millis(2));
            while Instant::now() < stop {
                pace.tick().await;
                let sent = Instant::now();
                let answer = caller.get("/").await.unwrap();
                let app = name_of
                    .iter()
                    .position(|n| Some(n.as_str()) == answer.header("x-app"));
                seen.push((sent, answer.status.as_u16(), app));
            }
            seen
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let edited = Instant::now();
    cluster.api.put(split(0, 100));
    let seen = load.await.unwrap();
    assert!(
        seen.iter().all(|(_, s, _)| *s == 200),
        "a request failed during the edit"
    );
    let late: Vec<_> = seen
        .iter()
        .filter(|(sent, _, app)| *sent > edited + Duration::from_secs(1) && *app != Some(2))
        .collect();
    assert!(
        late.is_empty(),
        "{} requests went elsewhere than hello-v2 over 1 s after the edit",
        late.len()
    );
    assert!(
        seen.iter()
            .filter(|(sent, _, _)| *sent > edited + Duration::from_secs(1))
            .count()
            > 10
    );
    cluster
        .status(
            "mesh-weighted-backends",
            2,
            ["Accepted=True Accepted", "ResolvedRefs=True ResolvedRefs"],
        )
        .await;

    // mesh-consumer-route: a route in `shop` for `hello.demo` (sending to hello-v1 of the
    // Service's own namespace, no grant needed) adds a header for `shop`'s callers only.
    let consumer = route(
        "mesh-echo-add-header",
        OTHER_NAMESPACE,
        None,
        json!([{"filters": [{"type": "ResponseHeaderModifier", "responseHeaderModifier": {"set": [{"name": "X-Header-Set", "value": "set"}]}}],
                "backendRefs": [{"name": "hello-v1", "namespace": "demo", "port": 8080}]}]),
    );
    cluster.api.put(consumer);
    let forward = vec!["hello.demo:8080".into()];
    let shop = cluster
        .mesh
        .proxy_in(
            OTHER_NAMESPACE,
            "web",
            ProxyOptions {
                forward_services: forward,
                ..ProxyOptions::default()
            },
        )
        .await;
    cluster
        .wait_table(&shop, "the consumer route in shop's caller", |t| {
            t["version"]
                .as_str()
                .is_some_and(|v| v.starts_with("shop/mesh-echo-add-header@"))
        })
        .await;
    let mut caller = Caller::connect(shop.forward_addrs[0]).await.unwrap();
    let answer = caller.get("/").await.unwrap();
    assert_eq!(
        (answer.status.as_u16(), answer.header("x-header-set")),
        (200, Some("set"))
    );
    assert_eq!(cluster.app(answer.header("x-app")), Some(1));
    let mut caller = Caller::connect(addr).await.unwrap();
    let answer = caller.get("/").await.unwrap();
    assert_eq!(
        (answer.status.as_u16(), answer.header("x-header-set")),
        (200, None)
    );
    assert_eq!(
        cluster.app(answer.header("x-app")),
        Some(2),
        "demo's callers keep the producer route"
    );

    // A GRPCRoute object (grpcroute-weight's shape) is read and answered the same way.
    let mut grpc = route(
        "grpc-weighted-backends",
        "demo",
        Some(8081),
        json!([{"matches": [{"method": {"service": "hello.Greeter"}}],
                "backendRefs": [{"name": "hello-v1", "port": 8080, "weight": 1},
                                {"name": "hello-v2", "port": 8080, "weight": 1}]}]),
    );
    grpc["kind"] = json!("GRPCRoute");
    cluster.api.put(grpc);
    let accepted = ["Accepted=True Accepted", "ResolvedRefs=True ResolvedRefs"];
    cluster
        .status_of("GRPCRoute", "grpc-weighted-backends", 1, accepted)
        .await;

    // A route deleted while the API server was away (and its watch history lost: 410 Gone)
    // is out of force after the relist: hello's own endpoint answers again.
    cluster.api.set_down(true);
    let name = "mesh-weighted-backends";
    cluster.api.delete(ROUTE, "HTTPRoute", Some("demo"), name);
    cluster.api.expire_watches();
    cluster.api.set_down(false);
    cluster
        .wait_table(&cluster.client, "the route gone after the relist", |t| {
            t["version"].as_str().is_none_or(|v| !v.contains(name))
        })
        .await;
    assert_eq!(cluster.send(addr, 3).await, [(200, Some(0)); 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_namespace_backends_need_a_grant_and_broken_routes_say_why() {
    let cluster = Cluster::start().await;
    let addr = cluster.client.forward_addrs[0];
    let cross = route(
        "cross",
        "demo",
        Some(8080),
        json!([{"backendRefs": [
            {"name": "hello-v1", "port": 8080, "weight": 50},
            {"name": "hello-v3", "namespace": OTHER_NAMESPACE, "port": 8080, "weight": 50},
        ]}]),
    );
    cluster.api.put(cross);
    let ours = cluster
        .status(
            "cross",
            1,
            [
                "Accepted=True Accepted",
                "ResolvedRefs=False RefNotPermitted",
            ],
        )
        .await;
    assert!(
        ours["conditions"][1]["message"]
            .as_str()
            .unwrap()
            .contains("hello-v3.shop: no ReferenceGrant"),
        "{ours}"
    );
    cluster
        .wait_table(&cluster.client, "the cross route", |t| {
            t["version"]
                .as_str()
                .is_some_and(|v| v.starts_with("demo/cross@"))
        })
        .await;
    // Without the grant, hello-v3's share is answered 500 (200 requests: 0.5 ± 0.15).
    let answers = cluster.send(addr, 200).await;
    let errors = answers.iter().filter(|(s, _)| *s == 500).count() as f64 / 200.0;
    assert!((errors - 0.5).abs() < 0.15, "500s: {errors}");
    assert!(
        answers.iter().all(|(s, app)| *s == 500 || *app == Some(1)),
        "{answers:?}"
    );
    let refused = metric_at(
        cluster.mesh.control_plane.as_ref().unwrap().admin_addr,
        "weft_gateway_routes_refused{reason=\"RefNotPermitted\"}",
    )
    .await;
    assert_eq!(refused, 1.0);

    // The grant: served by both, and the status flips.
    cluster.api.put(grant());
    cluster
        .status(
            "cross",
            1,
            ["Accepted=True Accepted", "ResolvedRefs=True ResolvedRefs"],
        )
        .await;
    cluster
        .wait_table(&cluster.client, "hello-v3 granted", |t| {
            backend_refused(t, "hello-v3.shop:8080") == Some(false)
        })
        .await;
    let answers = cluster.send(addr, 100).await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    assert!(share(&answers, 3) > 0.25, "{answers:?}");
    cluster.api.delete(
        GRANT,
        "ReferenceGrant",
        Some(OTHER_NAMESPACE),
        "demo-routes",
    );
    cluster
        .status(
            "cross",
            1,
            [
                "Accepted=True Accepted",
                "ResolvedRefs=False RefNotPermitted",
            ],
        )
        .await;

    // A backend that does not exist; an unsupported filter (not applied: port 8081 stays
    // hello's own).
    cluster.api.put(route(
        "missing",
        "demo",
        Some(8080),
        json!([{"backendRefs": [{"name": "hello-v9", "port": 8080}]}]),
    ));
    cluster
        .status(
            "missing",
            1,
            [
                "Accepted=True Accepted",
                "ResolvedRefs=False BackendNotFound",
            ],
        )
        .await;
    let unsupported = route(
        "unsupported",
        "demo",
        Some(8081),
        json!([{"filters": [{"type": "ExtensionRef", "extensionRef": {"group": "example.com", "kind": "Filter", "name": "f"}}],
                "backendRefs": [{"name": "hello-v2", "port": 8080}]}]),
    );
    cluster.api.put(unsupported);
    let ours = cluster
        .status(
            "unsupported",
            1,
            [
                "Accepted=False UnsupportedValue",
                "ResolvedRefs=True ResolvedRefs",
            ],
        )
        .await;
    let message = ours["conditions"][0]["message"].as_str().unwrap();
    assert!(message.starts_with("HTTPRoute demo/unsupported: spec.rules[0].filters[0].type: ExtensionRef: not supported by weft"), "{message}");
    let answers = cluster.send(cluster.client.forward_addrs[1], 5).await;
    assert!(
        answers.iter().all(|a| *a == (200, Some(0))),
        "port 8081 is routed: {answers:?}"
    );

    // The same grant semantics from files: a --routes document without, then with the grant.
    cluster
        .api
        .delete(ROUTE, "HTTPRoute", Some("demo"), "cross");
    cluster
        .api
        .delete(ROUTE, "HTTPRoute", Some("demo"), "missing");
    let file_route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: from-file, namespace: demo}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: hello, port: 8080}]\n  rules:\n    - backendRefs: [{name: hello-v3, namespace: shop, port: 8080}]\n";
    cluster.mesh.write_routes(file_route);
    cluster
        .wait_table(&cluster.client, "the file's route alone, refused", |t| {
            let alone = t["version"]
                .as_str()
                .is_some_and(|v| v.starts_with("demo/from-file@") && !v.contains(','));
            alone && backend_refused(t, "hello-v3.shop:8080") == Some(true)
        })
        .await;
    let answers = cluster.send(addr, 3).await;
    assert!(answers.iter().all(|(s, _)| *s == 500), "{answers:?}");
    let file_grant = "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: demo-routes, namespace: shop}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: demo}]\n  to: [{group: \"\", kind: Service, name: hello-v3}]\n";
    cluster
        .mesh
        .write_routes(&format!("{file_route}---\n{file_grant}"));
    cluster
        .wait_table(&cluster.client, "the file's grant", |t| {
            backend_refused(t, "hello-v3.shop:8080") == Some(false)
        })
        .await;
    let answers = cluster.send(addr, 3).await;
    assert!(answers.iter().all(|a| *a == (200, Some(3))), "{answers:?}");

    // An object of the same name as the file's route: the file is in force, the object says so.
    let same = route(
        "from-file",
        "demo",
        Some(8080),
        json!([{"backendRefs": [{"name": "hello-v1", "port": 8080}]}]),
    );
    cluster.api.put(same);
    let overridden = [
        "Accepted=False Overridden",
        "ResolvedRefs=True ResolvedRefs",
    ];
    cluster.status("from-file", 1, overridden).await;
    let answers = cluster.send(addr, 3).await;
    assert!(answers.iter().all(|a| *a == (200, Some(3))), "{answers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_gateway_api_crds_the_control_plane_serves_and_retries() {
    let api = FakeApiServer::start().await;
    api.set_group_absent("gateway.networking.k8s.io", true);
    let dir = tempfile::tempdir().unwrap();
    let config = api.control_plane_config(dir.path().join("control-plane"));
    let control_plane = weft_control_plane::start(config).await.unwrap();
    let lists = |api: &FakeApiServer| {
        let requests = api.requests();
        requests
            .iter()
            .filter(|r| r.starts_with("GET /apis/gateway.networking.k8s.io/v1/httproutes?"))
            .count()
    };
    // Retried with kube's backoff (0.8 s, then 1.6 s …), counted.
    wait::until(DEADLINE, "a second list of httproutes", || async {
        (lists(&api) >= 2).then_some(())
    })
    .await;
    let errors = metric_at(
        control_plane.admin_addr,
        "weft_gateway_api_errors_total{operation=\"watch\"}",
    )
    .await;
    assert!(errors >= 2.0, "{errors}");
    // Serving all along: discovery answers.
    let client =
        weft_tests::mesh::control_plane_client::mesh_discovery_client(&control_plane, "web");
    let mut stream = weft_tests::mesh::control_plane_client::watch(&client, "10.96.0.1:80")
        .await
        .unwrap();
    weft_tests::mesh::control_plane_client::next(&mut stream, DEADLINE).await;

    // Installed later: the next retry lists, and the route gets a status.
    api.set_group_absent("gateway.networking.k8s.io", false);
    api.put(split(1, 1));
    wait::until(
        Duration::from_secs(15),
        "a status once the CRDs are installed",
        || async {
            let object = api.get(ROUTE, "HTTPRoute", Some("demo"), "mesh-weighted-backends")?;
            let reason = object["status"]["parents"][0]["conditions"][0]["reason"]
                .as_str()?
                .to_owned();
            (reason == "NoMatchingParent").then_some(())
        },
    )
    .await;
    control_plane.shutdown().await;
}

/// Whether the caller's route table (`/destinations`' `gateway_routes`) marks `backend` refused
/// for want of a ReferenceGrant; `None` when no rule has it.
fn backend_refused(table: &Value, backend: &str) -> Option<bool> {
    let rules = table["rules"].as_array()?;
    let mut backends = rules
        .iter()
        .flat_map(|rule| rule["backends"].as_array().into_iter().flatten());
    let found = backends.find(|b| b["backend"] == backend)?;
    found["ref_not_permitted"].as_bool()
}

//! Gateway API routes (HTTPRoute) on a loopback mesh: the scenarios of the Gateway API's mesh
//! conformance suite (`conformance/tests/mesh/` of kubernetes-sigs/gateway-api) reproduced with
//! weft's fixtures, real sidecars and apps. Each conformance scenario runs twice
//! ([`both_sources!`]): with the routes in the control plane's `--routes` directory, and as
//! objects in a (fake) Kubernetes API server that the control plane watches with
//! `--kubernetes`; the answers must be the same.
//!
//! The mesh: the Service `hello.demo` (ports 8080 and 8081, one endpoint of its own) and two
//! versions, `hello-v1.demo` and `hello-v2.demo` (port 8080, one endpoint each), every endpoint a
//! sidecar in front of a fault app that answers with `x-app: hello-<ip>`, so a test knows which
//! backend answered. The caller (`web`) has one listener for `hello.demo:8080` and one for
//! `hello.demo:8081`, resolved through discovery as a pod's intercepted connections are.

mod consumer;
mod filters;
mod grpc;
mod matching;
mod mirror;
mod overrides;
mod split;

use std::net::Ipv4Addr;
use std::time::Duration;

use tokio::time::Instant;
use weft_proxy::RunningProxy;
use weft_tests::kubernetes::fake_apiserver::FakeApiServer;
use weft_tests::mesh::policy_mesh::{Backend, admin_get, endpoint_addresses, start_backends};
use weft_tests::mesh::{Mesh, ProxyOptions};

const HOUR: Duration = Duration::from_secs(3600);
/// Discovery plus a routes reload (files are polled twice a second), with room to spare.
const ROUTES_DEADLINE: Duration = Duration::from_secs(10);

/// An object put into the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RouteObject {
    api_version: String,
    kind: String,
    namespace: String,
    name: String,
}

impl RouteObject {
    fn of(object: &serde_json::Value) -> Self {
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
        Self {
            api_version: text(&object["apiVersion"]),
            kind: text(&object["kind"]),
            namespace: text(&object["metadata"]["namespace"]),
            name: text(&object["metadata"]["name"]),
        }
    }
}

/// Which of the mesh's apps answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum App {
    Hello,
    V1,
    V2,
}

/// Where the control plane reads the routes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `--routes` files.
    Files,
    /// HTTPRoute and GRPCRoute objects in an API server, watched with `--kubernetes`.
    Cluster,
}

/// `#[tokio::test]`s running each scenario `async fn name(source: Source)` once per source:
/// `from_files::name` and `from_cluster::name`.
macro_rules! both_sources {
    ($($scenario:ident),+ $(,)?) => {
        mod from_files {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(crate::routes::Source::Files).await
                }
            )+
        }
        mod from_cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(crate::routes::Source::Cluster).await
                }
            )+
        }
    };
}
use both_sources;

pub struct RoutesMesh {
    pub mesh: Mesh,
    /// The API server of [`Source::Cluster`], and the routes put into it.
    cluster: Option<(FakeApiServer, std::sync::Mutex<Vec<RouteObject>>)>,
    /// `hello`'s own endpoint, `hello-v1`'s, `hello-v2`'s.
    pub backends: Vec<Backend>,
    pub client: RunningProxy,
    /// Held for the test's whole run: these tests send hundreds of requests, and the timing
    /// assertions of `resilience` and `server_policy` must not share the machine with them.
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

/// The three MeshServices: `hello` (8080 and 8081), `hello-v1` and `hello-v2` (8080), each with
/// one endpoint of `ips` on `port`.
fn services(ips: &[Ipv4Addr], port: u16) -> String {
    let service = |name: &str, ports: &str, ip: Ipv4Addr| {
        format!(
            "apiVersion: weft.dev/v1alpha1\nkind: MeshService\nmetadata: {{name: {name}, namespace: demo}}\nspec:\n  ports: [{ports}]\n  endpoints: [{{address: {ip}, serviceAccount: hello}}]\n"
        )
    };
    [
        service(
            "hello",
            &format!("{{port: 8080, targetPort: {port}}}, {{port: 8081, targetPort: {port}}}"),
            ips[0],
        ),
        service(
            "hello-v1",
            &format!("{{port: 8080, targetPort: {port}}}"),
            ips[1],
        ),
        service(
            "hello-v2",
            &format!("{{port: 8080, targetPort: {port}}}"),
            ips[2],
        ),
    ]
    .join("---\n")
}

/// An HTTPRoute `name` attached to `hello.demo` (on `port`, or every port), with `rules`
/// (YAML indented below `rules:`).
pub fn route(name: &str, port: Option<u16>, rules: &str) -> String {
    let port = port.map(|p| format!(", port: {p}")).unwrap_or_default();
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: demo}}\nspec:\n  parentRefs: [{{group: \"\", kind: Service, name: hello{port}}}]\n  rules:\n{rules}"
    )
}

impl RoutesMesh {
    /// The mesh with `routes` (HTTPRoute and GRPCRoute documents) in force in the caller's
    /// proxy, read from `source`.
    pub async fn start(source: Source, routes: &str) -> Self {
        Self::start_with(source, routes, None).await
    }

    /// [`RoutesMesh::start`] with ServicePolicy documents in force from the start.
    pub async fn start_with(source: Source, routes: &str, policies: Option<&str>) -> Self {
        let serial = crate::serial().await;
        let (ips, port) = endpoint_addresses(3);
        let mut mesh = Mesh::start_with(HOUR, &services(&ips, port), policies).await;
        let cluster = match source {
            Source::Files => None,
            Source::Cluster => {
                let api = FakeApiServer::start().await;
                mesh.use_kubernetes(api.kubeconfig()).await;
                Some((api, std::sync::Mutex::default()))
            }
        };
        let backends = start_backends(&mesh, &ips, port, None).await;
        let client = mesh
            .proxy(
                "web",
                ProxyOptions {
                    forward_services: vec!["hello.demo:8080".into(), "hello.demo:8081".into()],
                    ..ProxyOptions::default()
                },
            )
            .await;
        let mesh = Self {
            mesh,
            cluster,
            backends,
            client,
            _serial: serial,
        };
        mesh.set_routes(routes);
        mesh.wait_routes(|version| !version.is_empty()).await;
        mesh
    }

    /// Puts `routes` (YAML documents) in force: the routes file replaced, or the objects put
    /// into the API server (and those of the last call that are not among them deleted), as
    /// `kubectl apply --prune` would.
    pub fn set_routes(&self, routes: &str) {
        let Some((api, put)) = &self.cluster else {
            self.mesh.write_routes(routes);
            return;
        };
        let objects: Vec<serde_json::Value> = serde_saphyr::from_multiple(routes).unwrap();
        let objects: Vec<serde_json::Value> =
            objects.into_iter().filter(|o| !o.is_null()).collect();
        let keys: Vec<RouteObject> = objects.iter().map(RouteObject::of).collect();
        let mut put = put.lock().unwrap();
        for gone in put.iter().filter(|k| !keys.contains(k)) {
            api.delete(
                &gone.api_version,
                &gone.kind,
                Some(&gone.namespace),
                &gone.name,
            );
        }
        for object in objects {
            api.put(object);
        }
        *put = keys;
    }

    /// The caller's listener for `hello.demo:8080` (the routed port).
    pub fn addr(&self) -> std::net::SocketAddr {
        self.client.forward_addrs[0]
    }

    /// The caller's listener for `hello.demo:8081`.
    pub fn other_port(&self) -> std::net::SocketAddr {
        self.client.forward_addrs[1]
    }

    /// Which app's `x-app` this is.
    pub fn app_of(&self, x_app: Option<&str>) -> Option<App> {
        let apps = [App::Hello, App::V1, App::V2];
        let i = self
            .backends
            .iter()
            .position(|b| Some(b.app.name.as_str()) == x_app)?;
        Some(apps[i])
    }

    pub fn app(&self, app: App) -> &weft_tests::apps::fault_app::FaultApp {
        let i = match app {
            App::Hello => 0,
            App::V1 => 1,
            App::V2 => 2,
        };
        &self.backends[i].app
    }

    /// Waits until the caller's route table version for `hello.demo:8080` is accepted by
    /// `version`; returns the table.
    pub async fn wait_routes(&self, version: impl Fn(&str) -> bool) -> serde_json::Value {
        wait_routes_of(&self.client, version).await
    }
}

/// `proxy`'s `/destinations` entry for `hello.demo:8080`.
pub async fn destination_of(proxy: &RunningProxy) -> serde_json::Value {
    let (_, body) = admin_get(proxy, "/destinations").await.unwrap();
    let all: serde_json::Value = serde_json::from_str(&body).unwrap();
    all.as_array()
        .into_iter()
        .flatten()
        .find(|d| d["watched"] == "hello.demo:8080")
        .cloned()
        .unwrap_or_default()
}

/// Waits until `proxy`'s route table version for `hello.demo:8080` is accepted by `version`;
/// returns the table.
pub async fn wait_routes_of(
    proxy: &RunningProxy,
    version: impl Fn(&str) -> bool,
) -> serde_json::Value {
    let give_up = Instant::now() + ROUTES_DEADLINE;
    loop {
        let table = destination_of(proxy).await["gateway_routes"].clone();
        if version(table["version"].as_str().unwrap_or_default()) {
            return table;
        }
        assert!(
            Instant::now() < give_up,
            "the caller's routes were not in force within {ROUTES_DEADLINE:?}: {table}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

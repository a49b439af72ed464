//! A loopback mesh for resilience tests: one service `hello.demo:8080` whose endpoints are server
//! proxies each fronting its own [`FaultApp`], and a caller's proxy with a listener resolved
//! through discovery, so endpoints and the ServicePolicy reach it the way they do in a cluster.
//!
//! A MeshService has one `targetPort` per port, so its endpoints differ by address alone. On
//! loopback that means distinct addresses sharing one port: Linux routes all of 127/8 to `lo`,
//! so endpoint `i` listens on `127.0.X.(2+i):PORT`, where `X` varies per mesh so that meshes of
//! concurrent tests (or other worktrees) do not meet.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;
use weft_proxy::RunningProxy;

use crate::apps::fault_app::FaultApp;
use crate::mesh::{Mesh, ProxyOptions, identity};
use crate::observe::metrics;

/// What the caller's listener leads to.
pub const SERVICE: &str = "hello.demo:8080";
/// The `destination` label of the caller's metrics and `/destinations`.
pub const DESTINATION: &str = "hello.demo";
const HOUR: Duration = Duration::from_secs(3600);
/// Discovery plus a policy reload (files are polled every second), with room to spare.
pub const POLICY_DEADLINE: Duration = Duration::from_secs(10);

/// One endpoint of `hello.demo`: its app and the proxy in front of it.
pub struct Backend {
    pub ip: Ipv4Addr,
    pub app: FaultApp,
    pub proxy: Option<RunningProxy>,
}

impl Backend {
    /// Stops the app (listener closed, connections dropped) and its proxy.
    pub async fn kill(&mut self) {
        self.app.stop().await;
        if let Some(proxy) = self.proxy.take() {
            proxy.kill().await;
        }
    }

    /// Stops the proxy only: connections to the endpoint are refused.
    pub async fn kill_proxy(&mut self) {
        if let Some(proxy) = self.proxy.take() {
            proxy.kill().await;
        }
    }
}

pub struct PolicyMesh {
    pub mesh: Mesh,
    pub backends: Vec<Backend>,
    /// The caller's proxy (`web`); `client.forward_addrs[0]` leads to `hello.demo:8080`.
    pub client: RunningProxy,
    /// The inbound port every backend proxy listens on (its address differs).
    pub port: u16,
}

/// `apiVersion`/`kind`/`metadata` of the `hello.demo` policy, before `spec:`.
pub const POLICY_HEADER: &str = "apiVersion: weft.dev/v1alpha1\nkind: ServicePolicy\nmetadata: {name: hello, namespace: demo}\n";

/// A ServicePolicy for `hello.demo` whose `spec:` is `spec` (indented YAML below `spec:`).
pub fn policy(spec: &str) -> String {
    format!("{POLICY_HEADER}spec:\n{spec}")
}

/// A ServicePolicy for `hello.demo` with a request timeout of `request` and nothing else.
pub fn timeout_policy(request: &str) -> String {
    policy(&format!(
        "  client:\n    defaults:\n      timeouts: {{request: {request}}}\n"
    ))
}

/// The MeshService `hello.demo`: port 8080 → `target_port` on each of `endpoints` (identity
/// `.../sa/hello`).
pub fn services_yaml(target_port: u16, endpoints: &[Ipv4Addr]) -> String {
    services_yaml_with_protocol(target_port, endpoints, "detect")
}

/// [`services_yaml`] with the port's `protocol` (`detect`, `http` or `opaque`).
pub fn services_yaml_with_protocol(
    target_port: u16,
    endpoints: &[Ipv4Addr],
    protocol: &str,
) -> String {
    let mut yaml = format!(
        "apiVersion: weft.dev/v1alpha1\nkind: MeshService\nmetadata:\n  name: hello\n  namespace: demo\nspec:\n  ports:\n    - port: 8080\n      targetPort: {target_port}\n      protocol: {protocol}\n  endpoints:\n"
    );
    for ip in endpoints {
        yaml.push_str(&format!(
            "    - address: {ip}\n      serviceAccount: hello\n"
        ));
    }
    yaml
}

/// Distinct loopback addresses for `n` endpoints and a port free on every one of them.
pub fn endpoint_addresses(n: usize) -> (Vec<Ipv4Addr>, u16) {
    static NEXT: AtomicU8 = AtomicU8::new(0);
    for _ in 0..20 {
        let x = (std::process::id() as u8)
            .wrapping_mul(31)
            .wrapping_add(NEXT.fetch_add(1, Ordering::SeqCst));
        let ips: Vec<Ipv4Addr> = (0..n)
            .map(|i| Ipv4Addr::new(127, 0, x.max(1), 2 + i as u8))
            .collect();
        let Ok(first) = std::net::TcpListener::bind((ips[0], 0)) else {
            continue;
        };
        let port = first.local_addr().unwrap().port();
        let free = ips[1..]
            .iter()
            .all(|ip| std::net::TcpListener::bind((*ip, port)).is_ok());
        if free {
            return (ips, port);
        }
    }
    panic!("no port free on {n} loopback addresses after 20 tries");
}

/// A [`FaultApp`] and a `hello` proxy in front of it (or of `fronting`) on each `ip:port`.
pub async fn start_backends(
    mesh: &Mesh,
    ips: &[Ipv4Addr],
    port: u16,
    fronting: Option<SocketAddr>,
) -> Vec<Backend> {
    let mut started = Vec::new();
    for &ip in ips {
        let app = FaultApp::start(&format!("hello-{ip}")).await;
        let proxy = mesh
            .proxy(
                "hello",
                ProxyOptions {
                    app: Some(fronting.unwrap_or(app.addr)),
                    inbound_listen: Some(SocketAddr::from((ip, port))),
                    ..ProxyOptions::default()
                },
            )
            .await;
        started.push(Backend {
            ip,
            app,
            proxy: Some(proxy),
        });
    }
    started
}

impl PolicyMesh {
    /// `backends` endpoints of `hello.demo`, the ServicePolicy `policy_yaml` (`None`: built-in
    /// policy), and the caller's proxy. Returns once the caller knows every endpoint and the
    /// policy is in force (see [`PolicyMesh::wait_ready`]), with the apps' records cleared.
    pub async fn start(backends: usize, policy_yaml: Option<&str>) -> Self {
        Self::start_inner(backends, policy_yaml, None).await
    }

    /// One endpoint whose proxy fronts `app` (a program of the test's own, such as a python
    /// gRPC server) instead of its [`FaultApp`].
    pub async fn start_in_front_of(app: SocketAddr, policy_yaml: Option<&str>) -> Self {
        Self::start_inner(1, policy_yaml, Some(app)).await
    }

    async fn start_inner(
        backends: usize,
        policy_yaml: Option<&str>,
        fronting: Option<SocketAddr>,
    ) -> Self {
        let (ips, port) = endpoint_addresses(backends);
        let mesh = Mesh::start_with(HOUR, &services_yaml(port, &ips), policy_yaml).await;
        let started = start_backends(&mesh, &ips, port, fronting).await;
        let client = mesh
            .proxy("web", ProxyOptions::forward_service(SERVICE))
            .await;
        let policy_mesh = Self {
            mesh,
            backends: started,
            client,
            port,
        };
        let builtin = policy_yaml.is_none();
        policy_mesh
            .wait_ready(|version| {
                if builtin {
                    version == "builtin"
                } else {
                    !version.is_empty() && version != "builtin"
                }
            })
            .await;
        policy_mesh
    }

    /// The caller's listener for `hello.demo:8080`.
    pub fn addr(&self) -> SocketAddr {
        self.client.forward_addrs[0]
    }

    /// The address of endpoint `i` as discovery names it.
    pub fn endpoint(&self, i: usize) -> SocketAddr {
        SocketAddr::from((self.backends[i].ip, self.port))
    }

    pub fn app(&self, i: usize) -> &FaultApp {
        &self.backends[i].app
    }

    /// Requests seen by every app together.
    pub fn total_seen(&self) -> usize {
        self.backends.iter().map(|b| b.app.count()).sum()
    }

    /// Waits until the caller's `/destinations` shows `hello.demo` with every endpoint and a
    /// `policy_version` accepted by `version`. The caller may resolve on first use, so while it
    /// does not, a warm-up request is sent; the apps' records are cleared afterwards.
    pub async fn wait_ready(&self, version: impl Fn(&str) -> bool) {
        let want = self.backends.len();
        let give_up = Instant::now() + POLICY_DEADLINE;
        loop {
            let last = match destination(&self.client).await {
                Ok(Some(d)) => {
                    let endpoints = d["endpoints"].as_array().map_or(0, Vec::len);
                    let v = d["policy_version"].as_str().unwrap_or("");
                    if endpoints == want && version(v) {
                        break;
                    }
                    d.to_string()
                }
                Ok(None) => {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(1),
                        send(self.addr(), Method::GET, "/__warmup", Bytes::new()),
                    )
                    .await;
                    format!("{DESTINATION} not listed")
                }
                Err(e) => e,
            };
            assert!(
                Instant::now() < give_up,
                "the caller's /destinations did not show {DESTINATION} with {want} endpoints and \
                 the expected policy within {POLICY_DEADLINE:?}; last: {last}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for backend in &self.backends {
            backend.app.clear();
        }
    }

    /// The caller's `policy_version` for `hello.demo`.
    pub async fn policy_version(&self) -> String {
        destination(&self.client)
            .await
            .ok()
            .flatten()
            .and_then(|d| d["policy_version"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// Waits until the caller's `policy_version` for `hello.demo` is accepted by `version`.
    pub async fn wait_policy(&self, what: &str, version: impl Fn(&str) -> bool) -> String {
        let give_up = Instant::now() + POLICY_DEADLINE;
        loop {
            let current = self.policy_version().await;
            if version(&current) {
                return current;
            }
            assert!(
                Instant::now() < give_up,
                "policy version {what} not in force within {POLICY_DEADLINE:?}; still {current:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The caller's endpoint states (`closed`, `open`, `half-open`) by endpoint address.
    pub async fn endpoint_states(&self) -> Vec<(String, String)> {
        let Ok(Some(d)) = destination(&self.client).await else {
            return Vec::new();
        };
        d["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                (
                    e["address"].as_str().unwrap_or("").to_owned(),
                    e["state"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }

    /// The state of endpoint `i` (matched on its IP, whatever form the address takes).
    pub async fn endpoint_state(&self, i: usize) -> Option<String> {
        let ip = self.backends[i].ip.to_string();
        self.endpoint_states()
            .await
            .into_iter()
            .find(|(address, _)| address.split(':').next() == Some(ip.as_str()))
            .map(|(_, state)| state)
    }

    /// One of the caller's metrics; see [`metrics::metric`].
    pub async fn metric(&self, series: &str) -> f64 {
        metrics::metric(&self.client, series).await
    }
}

/// GETs `path` from a proxy's admin server.
pub async fn admin_get(proxy: &RunningProxy, path: &str) -> Result<(StatusCode, String), String> {
    let reply = send(proxy.admin_addr, Method::GET, path, Bytes::new()).await?;
    Ok((reply.status, reply.body))
}

/// The `/destinations` entry of `hello.demo`: `Ok(None)` if the proxy does not list it, `Err` if
/// the endpoint does not answer JSON.
pub async fn destination(proxy: &RunningProxy) -> Result<Option<serde_json::Value>, String> {
    let (status, body) = admin_get(proxy, "/destinations").await?;
    if !status.is_success() {
        return Err(format!("GET /destinations: {status} {body}"));
    }
    let all: serde_json::Value = serde_json::from_str(&body)
        .map_err(|e| format!("/destinations is not JSON: {e}: {body}"))?;
    Ok(all
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["destination"] == DESTINATION)
        .cloned())
}

/// A response read to its end, and how long it took.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
    pub elapsed: Duration,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `weft-error`, the mark of an answer the proxy made.
    pub fn weft_error(&self) -> Option<&str> {
        self.header("weft-error")
    }
}

/// One HTTP/1.1 request on a fresh connection to `addr` (`host: hello.demo`).
pub async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    body: Bytes,
) -> Result<Answer, String> {
    let mut caller = Caller::connect(addr).await?;
    caller.send(method, path, body).await
}

/// One keep-alive HTTP/1.1 connection, as a long-lived app client holds it.
pub struct Caller {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Caller {
    pub async fn connect(addr: SocketAddr) -> Result<Self, String> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("handshake with {addr}: {e}"))?;
        tokio::spawn(conn);
        Ok(Self { sender })
    }

    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<Answer, String> {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "hello.demo:8080")
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        self.exchange(request).await
    }

    pub async fn get(&mut self, path: &str) -> Result<Answer, String> {
        self.send(Method::GET, path, Bytes::new()).await
    }

    /// A bodiless request with `headers` besides `host: hello.demo:8080`.
    pub async fn send_with(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Answer, String> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "hello.demo:8080");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        self.exchange(request).await
    }

    async fn exchange(&mut self, request: Request<Full<Bytes>>) -> Result<Answer, String> {
        let started = Instant::now();
        self.sender
            .ready()
            .await
            .map_err(|e| format!("connection unusable: {e}"))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("response body broke off: {e}"))?
            .to_bytes();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            elapsed: started.elapsed(),
        })
    }
}

/// `identity("hello")`, the identity every backend proves.
pub fn backend_identity() -> String {
    identity("hello").to_string()
}

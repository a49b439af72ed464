//! A small Kubernetes API server over HTTPS on loopback, so the control plane's real kube client,
//! TLS and watch code run in tests (no API server runs here).
//!
//! It stores whatever objects a test puts in it (fixtures in `tests/fixtures/kubernetes/`, in
//! the shape a real API server sends) and speaks the parts of the API weft uses: list and watch
//! with resource versions, bookmarks and `410 Gone` ([`store`]), get, create, replace, merge
//! patches (server-side apply is treated as a merge too), status writes (a merge of `status` that
//! keeps the generation), delete, `/version`, TokenReview and the service-account issuer's
//! discovery documents, and answers `404` for an API group whose CRDs a test says are not
//! installed. It checks the bearer token of its kubeconfig, like a real one.

pub mod store;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{CertificateParams, KeyPair, SanType};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use store::{Filter, Key, Store};

/// The bearer token the kubeconfig carries; other tokens are answered 401.
const CLIENT_TOKEN: &str = "weft-control-plane-test-token";

/// What TokenReview answers for a token.
#[derive(Debug, Clone)]
pub struct ReviewedToken {
    pub namespace: String,
    pub service_account: String,
    pub audiences: Vec<String>,
}

#[derive(Default)]
struct State {
    store: Store,
    requests: Vec<String>,
    down: bool,
    tokens: HashMap<String, ReviewedToken>,
    jwks: Option<Value>,
    issuer: Option<String>,
    /// `(major, minor, gitVersion)` of `/version`.
    version: Option<(String, String, String)>,
    /// SelfSubjectAccessReview says no to these `(group, resource)` pairs.
    denied: Vec<(String, String)>,
    /// The pod proxy (`/api/v1/namespaces/<ns>/pods/<pod>:<port>/proxy/...`) forwards to these.
    pod_ports: HashMap<String, SocketAddr>,
    /// API groups (`apis/<group>/`) whose resources are not served (their CRDs not installed).
    absent_groups: Vec<String>,
}

type Shared = Arc<Mutex<State>>;
type Answer = Response<BoxBody<Bytes, std::convert::Infallible>>;

pub struct FakeApiServer {
    addr: SocketAddr,
    state: Shared,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
    stop: CancellationToken,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl FakeApiServer {
    pub async fn start() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "fake-kubernetes-ca");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let ca = rcgen::Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        let cert = params.signed_by(&key, &ca).unwrap();

        let mut tls = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(tls));

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_yaml(addr, &ca_cert.pem())).unwrap();

        let state: Shared = Arc::default();
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, acceptor, state.clone(), stop.clone()));
        Self {
            addr,
            state,
            kubeconfig,
            _dir: dir,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// A local control plane's settings with `--kubernetes` against this server.
    pub fn control_plane_config(
        &self,
        data_dir: PathBuf,
    ) -> weft_control_plane::ControlPlaneConfig {
        let mut config = weft_control_plane::ControlPlaneConfig::local(data_dir);
        config.kubernetes = true;
        config.kubeconfig = Some(self.kubeconfig.clone());
        config
    }

    /// A kubeconfig naming this server, its CA and a token it accepts.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Creates or replaces an object; open watches see ADDED or MODIFIED. Returns it as stored.
    pub fn put(&self, object: Value) -> Value {
        self.state.lock().unwrap().store.put(object)
    }

    pub fn delete(&self, api_version: &str, kind: &str, namespace: Option<&str>, name: &str) {
        let key = store::key_of(api_version, kind, namespace, name);
        let deleted = self.state.lock().unwrap().store.delete(&key);
        assert!(
            deleted.is_some(),
            "no {kind} {namespace:?}/{name} to delete"
        );
    }

    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let key = store::key_of(api_version, kind, namespace, name);
        self.state.lock().unwrap().store.get(&key).cloned()
    }

    /// Ends every open watch with `410 Gone`; a watch from an older revision gets 410 too, so
    /// clients must list again.
    pub fn expire_watches(&self) {
        self.state.lock().unwrap().store.expire_watches();
    }

    /// Sends a BOOKMARK with the current revision to every watch that asked for bookmarks.
    pub fn bookmark(&self) {
        self.state.lock().unwrap().store.send_bookmarks();
    }

    /// Every request so far, as `METHOD /path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    /// While down, every connection is closed without an answer and open watches end.
    pub fn set_down(&self, down: bool) {
        let mut state = self.state.lock().unwrap();
        state.down = down;
        if down {
            state.store.drop_watches();
        }
    }

    /// TokenReview will say `token` is this service account's, for these audiences.
    pub fn accept_token(&self, token: &str, reviewed: ReviewedToken) {
        self.state
            .lock()
            .unwrap()
            .tokens
            .insert(token.to_owned(), reviewed);
    }

    /// `/version` answers Kubernetes `1.<minor>` (1.33 by default).
    pub fn set_version(&self, minor: u32) {
        self.state.lock().unwrap().version =
            Some(("1".to_owned(), minor.to_string(), format!("v1.{minor}.4")));
    }

    /// SelfSubjectAccessReview answers `allowed: false` for `resource` of `group`.
    pub fn deny(&self, group: &str, resource: &str) {
        self.state
            .lock()
            .unwrap()
            .denied
            .push((group.to_owned(), resource.to_owned()));
    }

    /// The API server's pod proxy for `namespace/pod:port` forwards to `to` (plain HTTP/1.1), as
    /// a real one forwards to the pod's IP.
    pub fn proxy_pod_port(&self, namespace: &str, pod: &str, port: u16, to: SocketAddr) {
        self.state
            .lock()
            .unwrap()
            .pod_ports
            .insert(format!("{namespace}/{pod}:{port}"), to);
    }

    /// While `absent`, every resource of API group `group` is answered `404` as a real API
    /// server answers for a kind whose CRD is not installed.
    pub fn set_group_absent(&self, group: &str, absent: bool) {
        let prefix = format!("apis/{group}/");
        let mut state = self.state.lock().unwrap();
        state.absent_groups.retain(|g| *g != prefix);
        if absent {
            state.absent_groups.push(prefix);
        }
    }

    /// Serves `jwks` at `/openid/v1/jwks` and a discovery document naming `issuer`.
    pub fn set_service_account_issuer(&self, issuer: &str, jwks: Value) {
        let mut state = self.state.lock().unwrap();
        state.issuer = Some(issuer.to_owned());
        state.jwks = Some(jwks);
    }
}

/// A fixture object from `tests/fixtures/kubernetes/<name>.json`.
pub fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/kubernetes")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn kubeconfig_yaml(addr: SocketAddr, ca_pem: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: https://{addr}\n    certificate-authority-data: {ca}\nusers:\n- name: weft\n  user:\n    token: {CLIENT_TOKEN}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: weft\n    namespace: weft-system\ncurrent-context: fake\n"
    )
}

async fn serve(listener: TcpListener, tls: TlsAcceptor, state: Shared, stop: CancellationToken) {
    loop {
        let (tcp, _) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => continue,
            },
        };
        if state.lock().unwrap().down {
            drop(tcp);
            continue;
        }
        let (tls, state, stop) = (tls.clone(), state.clone(), stop.clone());
        tokio::spawn(async move {
            let Ok(stream) = tls.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(move |request| {
                let state = state.clone();
                async move { answer(request, &state).await }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = connection => {}
            }
        });
    }
}

/// Answers one request; an `Err` closes the connection (the server is "down").
async fn answer(request: Request<Incoming>, state: &Shared) -> Result<Answer, std::io::Error> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let query = parse_query(parts.uri.query().unwrap_or(""));
    {
        let mut state = state.lock().unwrap();
        state
            .requests
            .push(format!("{} {}", parts.method, parts.uri));
        if state.down {
            return Err(std::io::Error::other("down"));
        }
    }
    let authorized = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {CLIENT_TOKEN}"));
    if !authorized {
        return Ok(status(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Unauthorized",
        ));
    }
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if let Some(answer) = pod_proxy(&path, state).await {
        return Ok(answer);
    }
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    Ok(route(
        &parts.method,
        &path,
        &query,
        &content_type,
        &body,
        state,
    ))
}

fn route(
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    content_type: &str,
    body: &[u8],
    state: &Shared,
) -> Answer {
    match (method, path) {
        (&Method::GET, "/version") => {
            let (major, minor, git) = state.lock().unwrap().version.clone().unwrap_or((
                "1".into(),
                "33".into(),
                "v1.33.1".into(),
            ));
            json_answer(
                StatusCode::OK,
                &json!({"major": major, "minor": minor, "gitVersion": git,
                        "gitCommit": "8adc0f041b8e7ad1d30e29cc59c6ae7a15e19828",
                        "gitTreeState": "clean", "buildDate": "2025-05-15T08:19:08Z",
                        "goVersion": "go1.24.2", "compiler": "gc", "platform": "linux/amd64"}),
            )
        }
        (&Method::POST, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews") => {
            access_review(body, state)
        }
        (&Method::GET, "/openid/v1/jwks") => match &state.lock().unwrap().jwks {
            Some(jwks) => json_answer(StatusCode::OK, jwks),
            None => status(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the page could not be found",
            ),
        },
        (&Method::GET, "/.well-known/openid-configuration") => {
            match &state.lock().unwrap().issuer {
                Some(issuer) => json_answer(
                    StatusCode::OK,
                    &json!({"issuer": issuer, "jwks_uri": format!("{issuer}/openid/v1/jwks"),
                            "response_types_supported": ["id_token"],
                            "subject_types_supported": ["public"],
                            "id_token_signing_alg_values_supported": ["RS256"]}),
                ),
                None => status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    "the page could not be found",
                ),
            }
        }
        (&Method::POST, "/apis/authentication.k8s.io/v1/tokenreviews") => token_review(body, state),
        _ => resource(method, path, query, content_type, body, state),
    }
}

/// What a real API server answers a TokenReview with (status.user for a service account, or
/// `authenticated: false` with an error).
fn token_review(body: &[u8], state: &Shared) -> Answer {
    let Ok(review) = serde_json::from_slice::<Value>(body) else {
        return status(StatusCode::BAD_REQUEST, "BadRequest", "not a TokenReview");
    };
    let token = review["spec"]["token"].as_str().unwrap_or("");
    let wanted: Vec<String> = review["spec"]["audiences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let known = state.lock().unwrap().tokens.get(token).cloned();
    let status_field = match known {
        None => json!({"authenticated": false, "user": {},
                       "error": "[invalid bearer token, token could not be validated]"}),
        Some(t) if !wanted.is_empty() && !wanted.iter().any(|a| t.audiences.contains(a)) => {
            json!({"authenticated": false, "user": {},
                   "error": format!("[invalid bearer token, token audiences {:?} is invalid for the target audiences {:?}]", t.audiences, wanted)})
        }
        Some(t) => json!({
            "authenticated": true,
            "user": {
                "username": format!("system:serviceaccount:{}:{}", t.namespace, t.service_account),
                "uid": "5d0f6ea1-8e29-4f35-9a2e-0f0a2d7c3b11",
                "groups": ["system:serviceaccounts",
                           format!("system:serviceaccounts:{}", t.namespace),
                           "system:authenticated"],
                "extra": {
                    "authentication.kubernetes.io/credential-id": ["JTI=7f7c6b59-7f4e-4f57-9d0b-4f3f3d2a1c55"],
                    "authentication.kubernetes.io/node-name": ["kind-worker"],
                    "authentication.kubernetes.io/pod-name": ["app-7c5ddbdf54-x2x4k"],
                    "authentication.kubernetes.io/pod-uid": ["0c6f1a1e-5a43-4b0c-8c39-cf0d0f0e3c4a"],
                },
            },
            "audiences": t.audiences,
        }),
    };
    json_answer(
        StatusCode::CREATED,
        &json!({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"creationTimestamp": null},
                "spec": review["spec"], "status": status_field}),
    )
}

/// What a real API server answers a SelfSubjectAccessReview with.
fn access_review(body: &[u8], state: &Shared) -> Answer {
    let Ok(review) = serde_json::from_slice::<Value>(body) else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "not a SelfSubjectAccessReview",
        );
    };
    let attributes = &review["spec"]["resourceAttributes"];
    let asked = (
        attributes["group"].as_str().unwrap_or("").to_owned(),
        attributes["resource"].as_str().unwrap_or("").to_owned(),
    );
    let denied = state.lock().unwrap().denied.contains(&asked);
    let status_field = if denied {
        json!({"allowed": false, "reason": ""})
    } else {
        json!({"allowed": true, "reason": "RBAC: allowed by ClusterRoleBinding \"cluster-admin\" of ClusterRole \"cluster-admin\" to Group \"system:masters\""})
    };
    json_answer(
        StatusCode::CREATED,
        &json!({"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                "metadata": {"creationTimestamp": null},
                "spec": review["spec"], "status": status_field}),
    )
}

/// `/api/v1/namespaces/<ns>/pods/<pod>:<port>/proxy/<path>`: forwards a GET to the registered
/// address and answers with what it said.
async fn pod_proxy(path: &str, state: &Shared) -> Option<Answer> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    let (namespace, rest) = rest.split_once("/pods/")?;
    let (pod_port, forwarded) = rest.split_once("/proxy")?;
    let to = state
        .lock()
        .unwrap()
        .pod_ports
        .get(&format!("{namespace}/{pod_port}"))
        .copied();
    let Some(to) = to else {
        return Some(status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            &format!(
                "error trying to reach service: dial tcp {pod_port}: connect: connection refused"
            ),
        ));
    };
    let forwarded = if forwarded.is_empty() { "/" } else { forwarded };
    let answer = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(to).await?;
        let request =
            format!("GET {forwarded} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        tcp.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let answer = tokio::time::timeout(std::time::Duration::from_secs(5), answer)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("no answer within 5 s")));
    Some(match answer {
        Ok(raw) => {
            let text = String::from_utf8_lossy(&raw);
            let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
            let code = head
                .split(' ')
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(502);
            Response::builder()
                .status(code)
                .header(http::header::CONTENT_TYPE, "text/plain")
                .body(BoxBody::new(Full::new(Bytes::from(body.to_owned()))))
                .unwrap()
        }
        Err(e) => status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            &format!("error trying to reach service: {e}"),
        ),
    })
}

/// Lists, watches, gets and status writes on `/api/v1/...` and `/apis/<group>/<version>/...`.
fn resource(
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    content_type: &str,
    body: &[u8],
    state: &Shared,
) -> Answer {
    let Some(target) = Target::parse(path) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        );
    };
    let mut state = state.lock().unwrap();
    if state
        .absent_groups
        .iter()
        .any(|g| target.collection.starts_with(g.as_str()))
    {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        );
    }
    let store = &mut state.store;
    match (method, &target.name, target.status) {
        (&Method::GET, None, _) => {
            let filter = Filter {
                collection: target.collection.clone(),
                namespace: target.namespace.clone(),
                labels: selector(query.get("labelSelector")),
                fields: selector(query.get("fieldSelector")),
            };
            if query.get("watch").map(String::as_str) != Some("true") {
                return json_answer(StatusCode::OK, &store.list(&filter));
            }
            let since = query
                .get("resourceVersion")
                .and_then(|rv| rv.parse().ok())
                .unwrap_or(0);
            let bookmarks = query.get("allowWatchBookmarks").map(String::as_str) == Some("true");
            let initial = query.get("sendInitialEvents").map(String::as_str) == Some("true");
            let current = store.revision();
            match store.watch(filter, since, bookmarks, initial) {
                Some(events) => watch_answer(events),
                None => watch_gone(current),
            }
        }
        (&Method::GET, Some(name), false) => match store.get(&target.key(name)) {
            Some(object) => json_answer(StatusCode::OK, object),
            None => not_found(&target, name),
        },
        (&Method::PATCH | &Method::PUT, Some(name), true) => {
            let Ok(patch) = serde_json::from_slice::<Value>(body) else {
                return status(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UnsupportedMediaType",
                    &format!("the fake API server reads JSON bodies only ({content_type})"),
                );
            };
            let key = target.key(name);
            let Some(current) = store.get(&key) else {
                return not_found(&target, name);
            };
            let mut status_field = current.get("status").cloned().unwrap_or(json!({}));
            if method == Method::PUT {
                status_field = patch["status"].clone();
            } else {
                merge(&mut status_field, &patch["status"]);
            }
            let stored = store.put_status(&key, status_field).unwrap();
            json_answer(StatusCode::OK, &stored)
        }
        (&Method::PATCH, Some(name), false) => {
            let Ok(patch) = serde_json::from_slice::<Value>(body) else {
                return status(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UnsupportedMediaType",
                    &format!("the fake API server reads JSON merge patches only ({content_type})"),
                );
            };
            let Some(current) = store.get(&target.key(name)) else {
                return not_found(&target, name);
            };
            let mut object = current.clone();
            merge(&mut object, &patch);
            json_answer(StatusCode::OK, &store.put(object))
        }
        (&Method::PUT, Some(_), false) | (&Method::POST, None, _) => {
            match serde_json::from_slice::<Value>(body) {
                Ok(object) if object["metadata"]["name"].is_string() => {
                    json_answer(StatusCode::OK, &store.put(object))
                }
                _ => status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "not a JSON object with metadata.name",
                ),
            }
        }
        (&Method::DELETE, Some(name), false) => match store.delete(&target.key(name)) {
            Some(object) => json_answer(StatusCode::OK, &object),
            None => not_found(&target, name),
        },
        _ => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("the fake API server does not serve {method} {path}"),
        ),
    }
}

/// A parsed resource path.
struct Target {
    collection: String,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

impl Target {
    fn parse(path: &str) -> Option<Self> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (prefix, rest) = match parts.as_slice() {
            ["api", version, rest @ ..] => (format!("api/{version}"), rest),
            ["apis", group, version, rest @ ..] => (format!("apis/{group}/{version}"), rest),
            _ => return None,
        };
        let (namespace, rest) = match rest {
            ["namespaces", namespace, rest @ ..] if !rest.is_empty() => {
                (Some((*namespace).to_owned()), rest)
            }
            _ => (None, rest),
        };
        let (plural, name, status) = match rest {
            [plural] => (plural, None, false),
            [plural, name] => (plural, Some((*name).to_owned()), false),
            [plural, name, "status"] => (plural, Some((*name).to_owned()), true),
            _ => return None,
        };
        Some(Self {
            collection: format!("{prefix}/{plural}"),
            namespace,
            name,
            status,
        })
    }

    fn key(&self, name: &str) -> Key {
        Key {
            collection: self.collection.clone(),
            namespace: self.namespace.clone(),
            name: name.to_owned(),
        }
    }
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(target), Some(patch)) => {
            for (k, v) in patch {
                if v.is_null() {
                    target.remove(k);
                } else {
                    merge(target.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

/// `a=b,c=d` (also `a==b`) into terms.
fn selector(text: Option<&String>) -> Vec<(String, String)> {
    text.map(|t| {
        t.split(',')
            .filter_map(|term| {
                let (k, v) = term.split_once('=')?;
                Some((k.to_owned(), v.trim_start_matches('=').to_owned()))
            })
            .collect()
    })
    .unwrap_or_default()
}

fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => out.push(b),
                    Err(_) => out.extend_from_slice(&bytes[i..i + 3]),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn watch_answer(events: tokio::sync::mpsc::UnboundedReceiver<Value>) -> Answer {
    let stream = futures_util::stream::unfold(events, |mut events| async move {
        let event = events.recv().await?;
        let mut line = serde_json::to_vec(&event).unwrap();
        line.push(b'\n');
        Some((Ok(Frame::data(Bytes::from(line))), events))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("transfer-encoding", "chunked")
        .body(BoxBody::new(StreamBody::new(stream)))
        .unwrap()
}

/// A real API server answers a watch from a compacted revision with 200 and one ERROR event.
fn watch_gone(current: u64) -> Answer {
    let mut line = serde_json::to_vec(&store::gone(current)).unwrap();
    line.push(b'\n');
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(BoxBody::new(Full::new(Bytes::from(line))))
        .unwrap()
}

fn json_answer(code: StatusCode, value: &Value) -> Answer {
    Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(BoxBody::new(Full::new(Bytes::from(
            serde_json::to_vec(value).unwrap(),
        ))))
        .unwrap()
}

fn not_found(target: &Target, name: &str) -> Answer {
    let resource = target.collection.rsplit('/').next().unwrap_or("");
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{resource} \"{name}\" not found"),
    )
}

/// A `kind: Status` error, as the API server writes them.
fn status(code: StatusCode, reason: &str, message: &str) -> Answer {
    json_answer(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "code": code.as_u16()}),
    )
}

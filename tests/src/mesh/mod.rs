//! Meshes on loopback, all in this process: [`Mesh`] here (one control plane with bootstrap
//! tokens for a few identities, proxies started on demand), [`policy_mesh`] for a service whose
//! endpoints and ServicePolicy reach the caller through discovery, and [`control_plane_client`]
//! for tests that speak to the control plane's gRPC port as a proxy would.

pub mod control_plane_client;
pub mod policy_mesh;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tempfile::TempDir;
use weft_certs::{SpiffeId, TrustBundle};
use weft_control_plane::{ControlPlaneConfig, RunningControlPlane};
use weft_proxy::tls::TlsStore;
use weft_proxy::{ProxyArgs, ProxyConfig, RunningProxy};

use crate::ports::restartable_port;
use crate::wait;

/// Service accounts (in namespace `demo`) that have bootstrap tokens.
pub const ACCOUNTS: [&str; 5] = ["web", "hello", "db", "client", "server"];

pub struct Mesh {
    pub dir: TempDir,
    pub control_plane: Option<RunningControlPlane>,
    pub control_plane_addr: SocketAddr,
    pub cert_ttl: Duration,
    /// The control plane's `--services` file, when it has one.
    pub services_file: Option<PathBuf>,
    /// The control plane's `--policies` directory, when it has one ([`Mesh::write_policies`]
    /// keeps one document file in it).
    pub policies_dir: Option<PathBuf>,
    /// The control plane's `--routes` directory, beside the policies directory
    /// ([`Mesh::write_routes`] keeps one document file in it).
    pub routes_dir: Option<PathBuf>,
    /// With one, the control plane runs with `--kubernetes` against that API server.
    pub kubeconfig: Option<PathBuf>,
}

/// How to start one proxy.
#[derive(Debug, Clone, Default)]
pub struct ProxyOptions {
    /// Where the proxy's own app listens.
    pub app: Option<SocketAddr>,
    /// Explicit outbound listeners: each a list of peer endpoints `(identity, inbound address)`.
    pub forwards: Vec<Vec<(SpiffeId, SocketAddr)>>,
    pub strict: bool,
    /// The inbound listener (default `127.0.0.1:0`): endpoints of one service share a port on
    /// distinct loopback addresses.
    pub inbound_listen: Option<SocketAddr>,
    /// Outbound listeners resolved through discovery: each `NAME.NAMESPACE:PORT`, listening on
    /// `127.0.0.1:0` (`--forward 127.0.0.1:0=hello.demo:8080`), after the `forwards`.
    pub forward_services: Vec<String>,
    /// `--trace-collector`, `--trace-sampling` and `--access-log`.
    pub trace_collector: Option<SocketAddr>,
    pub trace_sampling: Option<f64>,
    pub access_log: Option<PathBuf>,
}

impl ProxyOptions {
    pub fn app(app: SocketAddr) -> Self {
        Self {
            app: Some(app),
            ..Self::default()
        }
    }

    pub fn forward_to(peers: Vec<(SpiffeId, SocketAddr)>) -> Self {
        Self {
            forwards: vec![peers],
            ..Self::default()
        }
    }

    /// One outbound listener for `service` (`hello.demo:8080`), resolved through discovery.
    pub fn forward_service(service: &str) -> Self {
        Self {
            forward_services: vec![service.to_owned()],
            ..Self::default()
        }
    }
}

/// The name of the document file in a mesh's policies directory.
pub const POLICY_FILE: &str = "policy.yaml";

/// The name of the document file in a mesh's routes directory.
pub const ROUTES_FILE: &str = "routes.yaml";

/// `spiffe://cluster.local/ns/demo/sa/<account>`
pub fn identity(account: &str) -> SpiffeId {
    identity_in("demo", account)
}

/// A namespace besides `demo` whose `web` account the control plane also certifies
/// ([`Mesh::proxy_in`]): a caller whose consumer routes differ from `demo`'s.
pub const OTHER_NAMESPACE: &str = "shop";

/// `spiffe://cluster.local/ns/<namespace>/sa/<account>`
pub fn identity_in(namespace: &str, account: &str) -> SpiffeId {
    SpiffeId::new("cluster.local", namespace, account).expect("valid test identity")
}

/// The bootstrap token of `account` (long enough for the control plane's minimum).
pub fn token(account: &str) -> String {
    token_in("demo", account)
}

fn token_in(namespace: &str, account: &str) -> String {
    match namespace {
        "demo" => format!("test-token-for-{account}-0123456789"),
        _ => format!("test-token-for-{namespace}-{account}-0123456789"),
    }
}

impl Mesh {
    /// A control plane with a fresh CA issuing certificates that live `cert_ttl`.
    pub async fn start(cert_ttl: Duration) -> Self {
        Self::start_inner(cert_ttl, None, None).await
    }

    /// [`Mesh::start`] with a `--services` file holding `services_yaml` (MeshService documents)
    /// and a `--policies` directory holding `policies_yaml` (ServicePolicy documents; `None`
    /// leaves the directory empty: built-in policies until [`Mesh::write_policies`]).
    pub async fn start_with(
        cert_ttl: Duration,
        services_yaml: &str,
        policies_yaml: Option<&str>,
    ) -> Self {
        Self::start_inner(cert_ttl, Some(services_yaml), Some(policies_yaml)).await
    }

    async fn start_inner(
        cert_ttl: Duration,
        services_yaml: Option<&str>,
        policies_yaml: Option<Option<&str>>,
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut tokens =
            String::from("apiVersion: weft.dev/v1alpha1\nkind: BootstrapTokens\ntokens:\n");
        let others = [(OTHER_NAMESPACE, "web")];
        let all = ACCOUNTS.map(|a| ("demo", a)).into_iter().chain(others);
        for (namespace, account) in all {
            tokens.push_str(&format!(
                "  - identity: {}\n    token: {}\n",
                identity_in(namespace, account),
                token_in(namespace, account)
            ));
        }
        std::fs::write(dir.path().join("tokens.yaml"), tokens).expect("write tokens");
        let services_file = services_yaml.map(|yaml| {
            let path = dir.path().join("services.yaml");
            write_atomically(&path, yaml);
            path
        });
        let policies_dir = policies_yaml.map(|yaml| {
            let path = dir.path().join("policies");
            std::fs::create_dir(&path).expect("policies dir");
            if let Some(yaml) = yaml {
                write_atomically(&path.join(POLICY_FILE), yaml);
            }
            path
        });
        let routes_dir = policies_dir.as_ref().map(|_| {
            let path = dir.path().join("routes");
            std::fs::create_dir(&path).expect("routes dir");
            path
        });
        let mut mesh = Self {
            dir,
            control_plane: None,
            // Tests stop the control plane and start it again on the same address.
            control_plane_addr: SocketAddr::from(([127, 0, 0, 1], restartable_port())),
            cert_ttl,
            services_file,
            policies_dir,
            routes_dir,
            kubeconfig: None,
        };
        mesh.start_control_plane().await;
        mesh
    }

    /// Replaces the `--services` file at once (the control plane reloads it within a second).
    pub fn write_services(&self, yaml: &str) {
        let path = self
            .services_file
            .as_ref()
            .expect("a mesh started with Mesh::start_with has a services file");
        write_atomically(path, yaml);
    }

    /// Replaces the ServicePolicy documents at once (write a temporary file, then rename it
    /// over the old one, so the control plane never reads half a document).
    pub fn write_policies(&self, yaml: &str) {
        write_atomically(&self.policies_path(), yaml);
    }

    /// Removes the ServicePolicy documents: built-in policies again.
    pub fn remove_policies(&self) {
        let _ = std::fs::remove_file(self.policies_path());
    }

    /// Replaces the Gateway API route documents at once, as [`Mesh::write_policies`] does.
    pub fn write_routes(&self, yaml: &str) {
        let dir = self
            .routes_dir
            .as_ref()
            .expect("a mesh started with Mesh::start_with has a routes directory");
        write_atomically(&dir.join(ROUTES_FILE), yaml);
    }

    fn policies_path(&self) -> PathBuf {
        self.policies_dir
            .as_ref()
            .expect("a mesh started with Mesh::start_with has a policies directory")
            .join(POLICY_FILE)
    }

    pub fn control_plane_config(&self) -> ControlPlaneConfig {
        let mut config = ControlPlaneConfig::local(self.dir.path().join("control-plane"));
        config.listen = self.control_plane_addr;
        config.cert_ttl = self.cert_ttl;
        config.bootstrap_tokens = Some(self.dir.path().join("tokens.yaml"));
        config.services = self.services_file.clone();
        config.policies = self.policies_dir.clone();
        config.routes = self.routes_dir.clone();
        if let Some(kubeconfig) = &self.kubeconfig {
            config.kubernetes = true;
            config.kubeconfig = Some(kubeconfig.clone());
        }
        config
    }

    /// Restarts the control plane with `--kubernetes` against the API server of `kubeconfig`
    /// (the files stay sources too).
    pub async fn use_kubernetes(&mut self, kubeconfig: &std::path::Path) {
        self.stop_control_plane().await;
        self.kubeconfig = Some(kubeconfig.to_owned());
        self.start_control_plane().await;
    }

    /// Starts (or restarts, on the same port and CA) the control plane.
    pub async fn start_control_plane(&mut self) {
        let running = weft_control_plane::start(self.control_plane_config())
            .await
            .expect("control plane starts");
        self.control_plane_addr = running.grpc_addr;
        self.control_plane = Some(running);
    }

    pub async fn stop_control_plane(&mut self) {
        if let Some(cp) = self.control_plane.take() {
            cp.shutdown().await;
        }
    }

    pub fn trust_bundle_path(&self) -> PathBuf {
        self.dir
            .path()
            .join("control-plane")
            .join("trust-bundle.pem")
    }

    /// The roots the control plane wrote for proxies.
    pub fn trust_bundle(&self) -> TrustBundle {
        let pem = std::fs::read(self.trust_bundle_path()).expect("the trust bundle exists");
        TrustBundle::from_pem(&pem, "trust bundle").expect("the trust bundle is valid")
    }

    /// A store for `account` trusting this mesh's roots, with no certificate yet (a proxy before
    /// its first Certify).
    pub fn uncertified_store(&self, account: &str) -> Arc<TlsStore> {
        Arc::new(
            TlsStore::new(
                identity(account),
                self.trust_bundle(),
                Arc::new(weft_certs::tls_provider()),
            )
            .expect("a store for a valid identity"),
        )
    }

    /// The flags a proxy for `account` would be started with.
    pub fn proxy_args(&self, account: &str, options: &ProxyOptions) -> ProxyArgs {
        ProxyArgs {
            identity: Some(identity(account).to_string()),
            control_plane_addr: Some(self.control_plane_addr.to_string()),
            trust_anchors: Some(self.trust_bundle_path()),
            token: Some(token(account)),
            inbound_listen: options
                .inbound_listen
                .map_or_else(|| "127.0.0.1:0".to_owned(), |a| a.to_string()),
            inbound_mode: if options.strict {
                "strict"
            } else {
                "permissive"
            }
            .to_owned(),
            inbound_app_addr: options.app.map(|a| a.to_string()),
            admin_listen: "127.0.0.1:0".to_owned(),
            forward: options
                .forwards
                .iter()
                .map(|peers| {
                    let endpoints: Vec<String> = peers
                        .iter()
                        .map(|(id, addr)| format!("{id}@{addr}"))
                        .collect();
                    format!("127.0.0.1:0={}", endpoints.join(","))
                })
                .chain(
                    options
                        .forward_services
                        .iter()
                        .map(|service| format!("127.0.0.1:0={service}")),
                )
                .collect(),
            detect_timeout: "300ms".to_owned(),
            connect_timeout: "1s".to_owned(),
            trace_collector: options.trace_collector.map(|a| a.to_string()),
            trace_sampling: options.trace_sampling.map(|r| r.to_string()),
            access_log: options.access_log.as_ref().map(|p| p.display().to_string()),
            ..ProxyArgs::default()
        }
    }

    /// `server` in front of `app`, and `client` with one forward listener leading to it.
    pub async fn sidecars(&self, client: &str, server: &str, app: SocketAddr) -> Sidecars {
        let server_proxy = self.proxy(server, ProxyOptions::app(app)).await;
        let client_proxy = self
            .proxy(
                client,
                ProxyOptions::forward_to(vec![(identity(server), server_proxy.inbound_addr)]),
            )
            .await;
        Sidecars {
            client: client_proxy,
            server: server_proxy,
        }
    }

    /// A certificate for `account` from this mesh's CA, valid for the next minute.
    pub fn client_cert(&self, account: &str) -> crate::clients::tls_probe::ClientCert {
        let now = SystemTime::now();
        crate::clients::tls_probe::mesh_cert_valid(
            &self.dir.path().join("control-plane"),
            &identity(account),
            now - Duration::from_secs(60),
            now + Duration::from_secs(60),
        )
    }

    /// Connects to a proxy's inbound `addr` as `client` (with a valid mesh certificate), offering
    /// the mesh protocol and expecting the server to prove `server`.
    pub async fn probe_as(
        &self,
        client: &str,
        addr: SocketAddr,
        server: &str,
    ) -> crate::clients::tls_probe::Answer {
        crate::clients::tls_probe::probe(
            addr,
            weft_proxy::tls::alpn::MESH_H2,
            &self.trust_bundle(),
            &identity(server),
            Some(self.client_cert(client)),
        )
        .await
    }

    /// A mutual-TLS connection to a proxy's inbound `addr` as `client` (with a valid mesh
    /// certificate), offering `alpn` and expecting the server to prove `server`: a test that
    /// then speaks as a peer proxy.
    pub async fn connect_as(
        &self,
        client: &str,
        addr: SocketAddr,
        server: &str,
        alpn: &[u8],
    ) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        crate::clients::tls_probe::connect(
            addr,
            alpn,
            &self.trust_bundle(),
            &identity(server),
            Some(self.client_cert(client)),
        )
        .await
        .unwrap_or_else(|e| panic!("mutual TLS to {addr} as {client}: {e}"))
    }

    /// Starts a proxy for `account` and waits until it holds a certificate.
    pub async fn proxy(&self, account: &str, options: ProxyOptions) -> RunningProxy {
        self.proxy_in("demo", account, options).await
    }

    /// [`Mesh::proxy`] for an account of another namespace ([`OTHER_NAMESPACE`]'s `web`).
    pub async fn proxy_in(
        &self,
        namespace: &str,
        account: &str,
        options: ProxyOptions,
    ) -> RunningProxy {
        let mut args = self.proxy_args(account, &options);
        args.identity = Some(identity_in(namespace, account).to_string());
        args.token = Some(token_in(namespace, account));
        let config = ProxyConfig::from_args(args)
            .unwrap_or_else(|errors| panic!("bad test proxy config: {errors:?}"));
        let proxy = weft_proxy::start(config, None).await.expect("proxy starts");
        wait_ready(&proxy).await;
        proxy
    }
}

/// A caller's sidecar forwarding to a server's sidecar, which fronts an app.
pub struct Sidecars {
    /// The caller's sidecar; `client.forward_addrs[0]` leads to the server.
    pub client: RunningProxy,
    pub server: RunningProxy,
}

/// Waits until `proxy` reports ready (it holds a valid certificate).
pub async fn wait_ready(proxy: &RunningProxy) {
    wait::until(
        Duration::from_secs(10),
        "the proxy to get a certificate",
        || async { proxy.store.readiness(SystemTime::now()).ok() },
    )
    .await
}

/// Writes `contents` to a temporary file beside `path` (not matching `*.yaml`), then renames it
/// over `path`: a reader sees the old contents or the new, never a mix.
pub fn write_atomically(path: &std::path::Path, contents: &str) {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    std::fs::write(&temporary, contents).expect("write the temporary file");
    std::fs::rename(&temporary, path).expect("rename over the old file");
}

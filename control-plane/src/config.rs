//! Control-plane settings: every flag has a `WEFT_` environment variable, and the defaults give a
//! working local control plane (a CA created in the data directory on first start).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use weft_api::duration::parse as parse_duration;
use weft_certs::{DEFAULT_TRUST_DOMAIN, SpiffeId};

/// Settings of `weft-control-plane`.
#[derive(Debug, Clone, clap::Args)]
pub struct ControlPlaneConfig {
    /// Address of the gRPC server (TLS) proxies request certificates from.
    #[arg(long, env = "WEFT_LISTEN", default_value = "0.0.0.0:15010")]
    pub listen: SocketAddr,

    /// Address of the admin HTTP server: /live, /ready, /metrics.
    #[arg(long, env = "WEFT_ADMIN_LISTEN", default_value = "0.0.0.0:15014")]
    pub admin_listen: SocketAddr,

    /// Where the generated CA and the trust bundle are kept between restarts.
    #[arg(long, env = "WEFT_DATA_DIR", default_value = "weft-data")]
    pub data_dir: PathBuf,

    /// The SPIFFE trust domain of every identity this control plane issues.
    #[arg(long, env = "WEFT_TRUST_DOMAIN", default_value = DEFAULT_TRUST_DOMAIN)]
    pub trust_domain: String,

    /// Lifetime of workload certificates (e.g. 1h, 90s, 1h30m). Proxies renew at about half of it.
    #[arg(long, env = "WEFT_CERT_TTL", default_value = "1h", value_parser = parse_duration)]
    pub cert_ttl: Duration,

    /// PEM file with the CA's signing certificate first, then optionally the chain up to the
    /// root. Without it, a root CA is created in the data directory (and reused on restart).
    #[arg(long, env = "WEFT_CA_CERT", requires = "ca_key")]
    pub ca_cert: Option<PathBuf>,

    /// PEM file with the private key of --ca-cert.
    #[arg(long, env = "WEFT_CA_KEY", requires = "ca_cert")]
    pub ca_key: Option<PathBuf>,

    /// PEM file of extra trusted roots (for a root rotation, or when --ca-cert has no root).
    #[arg(long, env = "WEFT_TRUST_BUNDLE")]
    pub trust_bundle: Option<PathBuf>,

    /// Lifetime of a CA this control plane creates itself.
    #[arg(long, env = "WEFT_CA_LIFETIME", default_value = "365d", value_parser = parse_duration)]
    pub ca_lifetime: Duration,

    /// YAML file of bootstrap tokens (kind: BootstrapTokens), reloaded when it changes.
    #[arg(long, env = "WEFT_BOOTSTRAP_TOKENS")]
    pub bootstrap_tokens: Option<PathBuf>,

    /// The Kubernetes service-account issuer's public keys, a JWK Set file (`kubectl get --raw
    /// /openid/v1/jwks`), reloaded when it changes: proxies may then authenticate with a
    /// projected service-account token (audience --token-audience), validated offline.
    #[arg(long, env = "WEFT_SERVICE_ACCOUNT_JWKS")]
    pub service_account_jwks: Option<PathBuf>,

    /// The issuer (`iss`) service-account tokens must name: the API server's
    /// --service-account-issuer (`kubectl get --raw /.well-known/openid-configuration`).
    #[arg(long, env = "WEFT_SERVICE_ACCOUNT_ISSUER", default_value = DEFAULT_SERVICE_ACCOUNT_ISSUER)]
    pub service_account_issuer: String,

    /// The audience (`aud`) service-account tokens must be bound to.
    #[arg(long, env = "WEFT_TOKEN_AUDIENCE", default_value = "weft")]
    pub token_audience: String,

    /// YAML file of services for discovery (kind: MeshService, one document each, separated by
    /// ---), reloaded when it changes. Without it every destination is unknown.
    #[arg(long, env = "WEFT_SERVICES")]
    pub services: Option<PathBuf>,

    /// ServicePolicy documents (kind: ServicePolicy): a YAML file, or a directory whose *.yaml
    /// and *.yml files are read (not recursively), reloaded when they change. Discovery answers
    /// carry each service's effective client policy. Without it every service gets the built-in
    /// defaults.
    #[arg(long, env = "WEFT_POLICIES")]
    pub policies: Option<PathBuf>,

    /// Gateway API routes (kind: HTTPRoute or GRPCRoute, gateway.networking.k8s.io/v1) whose
    /// parentRefs name a Service: a YAML file, or a directory whose *.yaml and *.yml files are
    /// read (not recursively), reloaded when they change. Discovery answers for a Service port
    /// carry the routes its caller gets. Without it requests go to the Service's own endpoints.
    #[arg(long, env = "WEFT_ROUTES")]
    pub routes: Option<PathBuf>,

    /// The control plane's own identity, which proxies verify when they connect (proxies read
    /// the same variable). Default: spiffe://<trust-domain>/ns/weft-system/sa/weft-control-plane.
    #[arg(long, env = "WEFT_CONTROL_PLANE_IDENTITY")]
    pub identity: Option<SpiffeId>,

    /// Learn from the Kubernetes API server (in-cluster service account, or --kubeconfig).
    #[arg(long, env = "WEFT_KUBERNETES")]
    pub kubernetes: bool,

    /// The kubeconfig file for --kubernetes (default: KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long, env = "WEFT_KUBECONFIG", requires = "kubernetes")]
    pub kubeconfig: Option<PathBuf>,

    /// How service-account tokens are checked with --kubernetes: `offline` (signature and claims
    /// against the issuer keys from /openid/v1/jwks, fetched and cached: no API request per
    /// certificate) or `token-review` (a TokenReview per request: authoritative, knows a deleted
    /// pod's token is dead). --service-account-jwks always means offline, with the file's keys.
    #[arg(
        long,
        env = "WEFT_SERVICE_ACCOUNT_VALIDATION",
        value_enum,
        default_value = "offline"
    )]
    pub service_account_validation: ServiceAccountValidation,

    /// HTTP/2 keepalive on the gRPC port: a connection silent this long gets a PING.
    #[arg(long, env = "WEFT_GRPC_KEEPALIVE_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub grpc_keepalive_interval: Duration,

    /// A PING unanswered this long closes the connection (and ends its watches): a proxy that
    /// vanished without closing is let go within interval + timeout.
    #[arg(long, env = "WEFT_GRPC_KEEPALIVE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub grpc_keepalive_timeout: Duration,

    /// The most discovery watches one caller identity may have open at once on this replica;
    /// past it a new watch is refused with RESOURCE_EXHAUSTED. Pods of one service account
    /// share the identity, so size it for all of them.
    #[arg(long, env = "WEFT_MAX_WATCHES_PER_IDENTITY", default_value_t = DEFAULT_MAX_WATCHES_PER_IDENTITY)]
    pub max_watches_per_identity: usize,

    /// HTTPS address of the sidecar-injection webhook (POST /inject): `auto` (0.0.0.0:8443 with
    /// --kubernetes, none without: a local control plane has no API server to call it), an
    /// address, or `off`.
    #[arg(long, env = "WEFT_WEBHOOK_LISTEN", default_value = "auto", value_parser = parse_webhook_listen)]
    pub webhook_listen: WebhookListen,

    /// The image of the injected weft-init and weft-proxy containers.
    #[arg(long, env = "WEFT_PROXY_IMAGE", default_value_t = crate::inject::settings::default_proxy_image())]
    pub proxy_image: String,

    /// How the proxy is injected: `native` (an init container with restartPolicy Always, Kubernetes
    /// 1.29+) or `classic` (a regular container, older clusters; see docs/kubernetes.md).
    #[arg(long, env = "WEFT_SIDECAR_MODE", value_enum, default_value = "native")]
    pub sidecar_mode: crate::inject::SidecarMode,

    /// The control plane address written into injected proxies.
    #[arg(long, env = "WEFT_INJECTED_CONTROL_PLANE_ADDR", default_value = crate::inject::settings::DEFAULT_CONTROL_PLANE_ADDR)]
    pub injected_control_plane_addr: String,

    /// The MutatingWebhookConfiguration whose caBundle the control plane keeps current with
    /// --kubernetes.
    #[arg(long, env = "WEFT_WEBHOOK_CONFIGURATION", default_value = crate::inject::ca_bundle::DEFAULT_CONFIGURATION)]
    pub webhook_configuration: String,
}

/// `--webhook-listen`: `auto`, an address, or `off` (also empty) for no webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookListen {
    Auto,
    Off,
    At(SocketAddr),
}

/// Where the webhook listens with `auto` and `--kubernetes`.
pub const DEFAULT_WEBHOOK_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 8443);

impl WebhookListen {
    /// The address to serve the webhook on, if any.
    pub fn address(self, kubernetes: bool) -> Option<SocketAddr> {
        match self {
            WebhookListen::Auto => kubernetes.then_some(DEFAULT_WEBHOOK_LISTEN),
            WebhookListen::Off => None,
            WebhookListen::At(addr) => Some(addr),
        }
    }
}

fn parse_webhook_listen(text: &str) -> Result<WebhookListen, String> {
    match text.trim() {
        "auto" => Ok(WebhookListen::Auto),
        "" | "off" => Ok(WebhookListen::Off),
        addr => addr
            .parse()
            .map(WebhookListen::At)
            .map_err(|e| format!("{e} (auto, an address like 0.0.0.0:8443, or off)")),
    }
}

/// See [`ControlPlaneConfig::service_account_validation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServiceAccountValidation {
    Offline,
    TokenReview,
}

/// `--max-watches-per-identity` when not given.
pub const DEFAULT_MAX_WATCHES_PER_IDENTITY: usize = 10_000;

impl ControlPlaneConfig {
    /// Defaults for an in-process control plane on loopback (tests, `weft demo`).
    pub fn local(data_dir: PathBuf) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            trust_domain: DEFAULT_TRUST_DOMAIN.to_owned(),
            cert_ttl: Duration::from_secs(3600),
            ca_cert: None,
            ca_key: None,
            trust_bundle: None,
            ca_lifetime: Duration::from_secs(365 * 24 * 3600),
            bootstrap_tokens: None,
            service_account_jwks: None,
            service_account_issuer: DEFAULT_SERVICE_ACCOUNT_ISSUER.to_owned(),
            token_audience: "weft".to_owned(),
            services: None,
            policies: None,
            routes: None,
            identity: None,
            kubernetes: false,
            kubeconfig: None,
            service_account_validation: ServiceAccountValidation::Offline,
            grpc_keepalive_interval: Duration::from_secs(10),
            grpc_keepalive_timeout: Duration::from_secs(10),
            max_watches_per_identity: DEFAULT_MAX_WATCHES_PER_IDENTITY,
            webhook_listen: WebhookListen::Off,
            proxy_image: crate::inject::settings::default_proxy_image(),
            sidecar_mode: crate::inject::SidecarMode::Native,
            injected_control_plane_addr: crate::inject::settings::DEFAULT_CONTROL_PLANE_ADDR
                .to_owned(),
            webhook_configuration: crate::inject::ca_bundle::DEFAULT_CONFIGURATION.to_owned(),
        }
    }

    /// What the injection webhook puts into pods.
    pub fn inject_settings(&self) -> crate::inject::InjectSettings {
        crate::inject::InjectSettings {
            proxy_image: self.proxy_image.clone(),
            mode: self.sidecar_mode,
            control_plane_addr: self.injected_control_plane_addr.clone(),
            trust_domain: self.trust_domain.clone(),
            token_audience: self.token_audience.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }

    /// The identity the control plane serves as.
    pub fn serving_identity(&self) -> anyhow::Result<SpiffeId> {
        match &self.identity {
            Some(id) => Ok(id.clone()),
            None => Ok(control_plane_identity(&self.trust_domain)?),
        }
    }
}

/// The service-account issuer of a cluster whose API server keeps the default.
pub const DEFAULT_SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// `spiffe://<trust-domain>/ns/weft-system/sa/weft-control-plane`, the default the proxy expects.
pub fn control_plane_identity(trust_domain: &str) -> Result<SpiffeId, weft_certs::IdentityError> {
    SpiffeId::new(trust_domain, "weft-system", "weft-control-plane")
}

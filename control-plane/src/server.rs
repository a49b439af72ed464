//! Wiring: configuration in, a running control plane out. The one place that builds everything.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use weft_certs::{SpiffeId, TrustBundle};

use crate::authn::brake::Brake;
use crate::authn::service_account::TokenRules;
use crate::authn::{
    Authenticator, BootstrapTokens, EitherToken, NoAuthentication, ServiceAccountTokens,
    TokenReviewer,
};
use crate::config::{ControlPlaneConfig, ServiceAccountValidation};
use crate::discovery::{self, WatchService};
use crate::identity_service::IdentityService;
use crate::metrics::Metrics;
use crate::reload::FileKind;
use crate::serving_tls::{self, ServingCert};
use crate::{admin, ca_store, grpc_server, inject, kubernetes, policy, reload, routes};

/// A control plane serving on its ports until [`RunningControlPlane::shutdown`] or drop.
pub struct RunningControlPlane {
    pub grpc_addr: SocketAddr,
    /// The injection webhook's HTTPS address (`--webhook-listen`), if it serves.
    pub webhook_addr: Option<SocketAddr>,
    pub admin_addr: SocketAddr,
    /// The roots proxies must trust; also written to `trust_bundle_path`.
    pub trust_bundle: TrustBundle,
    pub trust_bundle_path: PathBuf,
    /// The identity the control plane presents on its gRPC port.
    pub identity: SpiffeId,
    pub metrics: Arc<Metrics>,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningControlPlane {
    /// Stops accepting, closes every connection and waits for the servers to finish.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for RunningControlPlane {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Loads or creates the CA, binds its ports, writes `trust-bundle.pem` and starts serving.
pub async fn start(config: ControlPlaneConfig) -> anyhow::Result<RunningControlPlane> {
    let provider = Arc::new(weft_certs::tls_provider());
    let metrics = Arc::new(Metrics::new());
    let stop = CancellationToken::new();

    let ca = Arc::new(ca_store::load_or_create(&config)?);
    // Every Kubernetes source shares this one client (and its connection pool).
    let kube = match config.kubernetes {
        true => Some(kubernetes::connect(config.kubeconfig.as_deref()).await?),
        false => None,
    };
    metrics.ca_expiry.set(
        ca.not_after()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
    );
    let authenticator = authenticator(&config, kube.as_ref(), &metrics, &stop).await?;
    let services = discovery::Store::start(
        config.services.as_deref(),
        &config.trust_domain,
        metrics.clone(),
        &stop,
    )?;
    if let Some(client) = &kube {
        discovery::kubernetes::start(
            client.clone(),
            services.clone(),
            &config.trust_domain,
            metrics.clone(),
            &stop,
        );
    }
    let policies = policy::Store::start(config.policies.as_deref(), metrics.clone(), &stop)?;
    let routes = routes::Store::start(config.routes.as_deref(), metrics.clone(), &stop)?;
    let mut kube_tasks = Vec::new();
    if let Some(client) = &kube {
        kube_tasks.extend(policy::custom_resources::start(
            client.clone(),
            policies.clone(),
            services.clone(),
            &metrics,
            &stop,
        )?);
        kube_tasks.push(routes::cluster::start(
            client.clone(),
            routes.clone(),
            services.clone(),
            &metrics,
            stop.clone(),
        )?);
    }
    let identity = config.serving_identity()?;
    let serving = ServingCert::start(ca.clone(), identity.clone(), provider.clone())?;
    let tls = TlsAcceptor::from(Arc::new(serving_tls::server_config(
        serving,
        provider,
        ca.trust_bundle(),
    )?));

    let grpc = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen for gRPC on {}", config.listen))?;
    let admin = TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("cannot listen for admin on {}", config.admin_listen))?;
    let grpc_addr = grpc.local_addr()?;
    let admin_addr = admin.local_addr()?;

    let webhook_addr = start_webhook(&config, &ca, kube.as_ref(), &metrics, &stop).await?;
    // Every port is bound and every file checked: only now does the bundle proxies start from
    // appear, so waiting for it (or for `/ready`) never passes for a control plane that failed.
    ca_store::write_trust_bundle(&config.data_dir, &ca)?;
    let brake = Brake::new(metrics.certify_braked_sources.clone());
    brake.keep_swept(stop.clone());
    let service = IdentityService::new(
        ca.clone(),
        authenticator,
        config.cert_ttl,
        metrics.clone(),
        brake,
    );
    let discovery = WatchService::new(services, policies, metrics.clone(), stop.clone())
        .with_routes(routes)
        .with_stream_limit(config.max_watches_per_identity);
    let grpc_settings = grpc_server::GrpcSettings {
        keepalive_interval: config.grpc_keepalive_interval,
        keepalive_timeout: config.grpc_keepalive_timeout,
        trust_domain: config.trust_domain.clone(),
    };
    let mut tasks = vec![
        tokio::spawn(grpc_server::serve(
            grpc,
            tls,
            service,
            discovery,
            metrics.clone(),
            grpc_settings,
            stop.clone(),
        )),
        tokio::spawn(admin::serve(admin, metrics.clone(), stop.clone())),
    ];
    tasks.extend(kube_tasks);
    tracing::info!(
        %grpc_addr,
        %admin_addr,
        %identity,
        cert_ttl = %humantime::format_duration(config.cert_ttl),
        ca = ca.subject(),
        "control plane serving"
    );
    Ok(RunningControlPlane {
        grpc_addr,
        webhook_addr,
        admin_addr,
        trust_bundle: ca.trust_bundle().clone(),
        trust_bundle_path: ca_store::trust_bundle_path(&config.data_dir),
        identity,
        metrics,
        stop,
        tasks,
    })
}

/// The injection webhook on its own port, and with --kubernetes the caBundle upkeep.
async fn start_webhook(
    config: &ControlPlaneConfig,
    ca: &Arc<weft_certs::CertificateAuthority>,
    kube: Option<&kube::Client>,
    metrics: &Metrics,
    stop: &CancellationToken,
) -> anyhow::Result<Option<SocketAddr>> {
    let Some(listen) = config.webhook_listen.address(config.kubernetes) else {
        return Ok(None);
    };
    let provider = Arc::new(weft_certs::tls_provider());
    let cert = inject::webhook_cert::start(ca.clone(), provider.clone())?;
    let tls = TlsAcceptor::from(Arc::new(inject::webhook_cert::server_config(
        cert, provider,
    )?));
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen for the injection webhook on {listen}"))?;
    let addr = listener.local_addr()?;
    let roots = ca.trust_bundle().to_pem();
    let webhook = inject::webhook::Webhook {
        settings: config.inject_settings(),
        counter: inject::webhook::injections_counter(&metrics.registry)?,
        trust_anchors: kube.map(|kube| {
            inject::trust_anchors::TrustAnchorsWriter::new(kube.clone(), roots.clone())
        }),
    };
    tokio::spawn(inject::webhook::serve(
        listener,
        tls,
        Arc::new(webhook),
        stop.clone(),
    ));
    if let Some(kube) = kube {
        inject::ca_bundle::keep_current(
            kube.clone(),
            config.webhook_configuration.clone(),
            roots,
            stop.clone(),
        );
    }
    tracing::info!(%addr, mode = config.sidecar_mode.name(), image = %config.proxy_image, "injection webhook serving");
    Ok(Some(addr))
}

async fn authenticator(
    config: &ControlPlaneConfig,
    kube: Option<&kube::Client>,
    metrics: &Metrics,
    stop: &CancellationToken,
) -> anyhow::Result<Arc<dyn Authenticator>> {
    let bootstrap = bootstrap_tokens(config, metrics, stop)?;
    let service_accounts = match (service_account_tokens(config, metrics, stop)?, kube) {
        (Some(from_file), _) => Some(from_file),
        (None, Some(kube)) => Some(kubernetes_tokens(config, kube.clone(), stop).await),
        (None, None) => None,
    };
    if bootstrap.is_none() && service_accounts.is_none() {
        tracing::warn!(
            "neither --bootstrap-tokens, --kubernetes nor --service-account-jwks given: every certificate request will be refused as unauthenticated"
        );
        return Ok(Arc::new(NoAuthentication));
    }
    Ok(Arc::new(EitherToken {
        bootstrap,
        service_accounts,
    }))
}

fn bootstrap_tokens(
    config: &ControlPlaneConfig,
    metrics: &Metrics,
    stop: &CancellationToken,
) -> anyhow::Result<Option<Arc<dyn Authenticator>>> {
    let Some(path) = &config.bootstrap_tokens else {
        return Ok(None);
    };
    let tokens = BootstrapTokens::load(path)?;
    tracing::info!(file = %path.display(), tokens = tokens.len(), "loaded bootstrap tokens");
    keep_reloaded(
        path,
        &tokens,
        (FileKind::BootstrapTokens, "bootstrap tokens"),
        metrics,
        stop,
        BootstrapTokens::reload,
    )?;
    Ok(Some(tokens))
}

/// Service-account tokens checked with the API server's help, by the configured method.
async fn kubernetes_tokens(
    config: &ControlPlaneConfig,
    kube: kube::Client,
    stop: &CancellationToken,
) -> Arc<dyn Authenticator> {
    match config.service_account_validation {
        ServiceAccountValidation::TokenReview => {
            tracing::info!(audience = %config.token_audience, "service-account tokens are checked by TokenReview");
            Arc::new(TokenReviewer::new(
                kube,
                &config.token_audience,
                &config.trust_domain,
            ))
        }
        ServiceAccountValidation::Offline => {
            ServiceAccountTokens::from_api_server(kube, token_rules(config), stop.clone()).await
        }
    }
}

fn token_rules(config: &ControlPlaneConfig) -> TokenRules {
    TokenRules {
        issuer: config.service_account_issuer.clone(),
        audience: config.token_audience.clone(),
        trust_domain: config.trust_domain.clone(),
    }
}

fn service_account_tokens(
    config: &ControlPlaneConfig,
    metrics: &Metrics,
    stop: &CancellationToken,
) -> anyhow::Result<Option<Arc<dyn Authenticator>>> {
    let Some(path) = &config.service_account_jwks else {
        return Ok(None);
    };
    let tokens = ServiceAccountTokens::load(path, token_rules(config))?;
    tracing::info!(file = %path.display(), keys = tokens.len(), issuer = %config.service_account_issuer, "loaded the service-account issuer's keys");
    let what = (FileKind::ServiceAccountJwks, "service-account issuer keys");
    keep_reloaded(
        path,
        &tokens,
        what,
        metrics,
        stop,
        ServiceAccountTokens::reload,
    )?;
    Ok(Some(tokens))
}

/// Watches `path` and hands each change to `reload` on `loaded` (counted in
/// `weft_config_reloads_total`; a broken, empty or missing file keeps what is in force).
/// `what` is the file's kind and what it holds, for the log.
fn keep_reloaded<T: Send + Sync + 'static>(
    path: &std::path::Path,
    loaded: &Arc<T>,
    (kind, what): (FileKind, &'static str),
    metrics: &Metrics,
    stop: &CancellationToken,
    reload: fn(&T, &[u8], &std::path::Path) -> anyhow::Result<usize>,
) -> anyhow::Result<()> {
    let initial = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let reloading = loaded.clone();
    let watched = path.to_owned();
    reload::watch_file(
        path.to_owned(),
        &initial,
        metrics.reload_counters(kind),
        stop.clone(),
        move |text| reload(&reloading, text, &watched).map(|n| format!("{n} {what}")),
    );
    Ok(())
}

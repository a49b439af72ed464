//! Wiring: a checked [`ProxyConfig`] in, a running proxy out. The one place that builds and
//! connects every part, so the rest of the code never reads configuration.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admin::{Admin, LogLevelSetter};
use crate::config::{ForwardTarget, ProxyConfig};
use crate::destination::Destination;
use crate::discovery::Discovery;
use crate::http::client::app::AppClient;
use crate::identity::{IdentityClient, control_plane};
use crate::inbound::Inbound;
use crate::outbound::{Outbound, Target};
use crate::telemetry::Telemetry;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::tap::TapHub;
use crate::tls::TlsStore;
use crate::transport::{ConnectionLimit, Drain};
use crate::transport::{bind_any_family, bind_loopback_twin};

/// A proxy serving until [`RunningProxy::shutdown`] or drop.
pub struct RunningProxy {
    pub inbound_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The outbound listener for intercepted connections, if any.
    pub outbound_addr: Option<SocketAddr>,
    /// The bound address of each `--forward` listener, in order.
    pub forward_addrs: Vec<SocketAddr>,
    pub store: Arc<TlsStore>,
    pub metrics: Arc<Metrics>,
    /// Stops the listeners that carry traffic and waits for their connections.
    drain: Drain,
    /// Stops everything else (identity, discovery, the admin listener), after the drain.
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningProxy {
    /// Drains (see [`crate::transport::drain`]): stops accepting, lets open connections finish
    /// within `--shutdown-grace` and cuts the rest; then stops the admin listener, the identity
    /// client and discovery.
    pub async fn shutdown(mut self) {
        self.drain.run().await;
        self.stop.cancel();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }

    /// Stops at once, as a crash would, but in order: every listener closed and every
    /// connection dropped, without a drain. For tests of what callers see when a peer dies.
    pub async fn kill(mut self) {
        self.drain.cut_now();
        self.stop.cancel();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for RunningProxy {
    fn drop(&mut self) {
        self.drain.cut_now();
        self.stop.cancel();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
}

/// Binds every listener, starts fetching the certificate, and serves.
pub async fn start(
    config: ProxyConfig,
    log_level: Option<(LogLevelSetter, String)>,
) -> Result<RunningProxy, StartError> {
    let provider = Arc::new(weft_certs::tls_provider());
    let metrics = Arc::new(Metrics::new());
    metrics
        .connections
        .set_identity(&config.identity.to_string());
    let stop = CancellationToken::new();
    let drain = Drain::new(config.shutdown_grace);
    let summary = summary(&config);

    let store = Arc::new(
        TlsStore::new(
            config.identity.clone(),
            config.trust_anchors.clone(),
            provider,
        )
        .map_err(|e| StartError::Setup(e.to_string()))?,
    );
    let control_plane_addr = config.control_plane_addr.clone();
    let channel = control_plane::channel_with(
        &config.control_plane_addr,
        config.control_plane_identity.clone(),
        store.clone(),
        config.control_plane_keepalive,
        false,
    )
    .map_err(|e| {
        StartError::Setup(format!(
            "--control-plane-addr {}: {e}",
            config.control_plane_addr
        ))
    })?;

    let inbound_listener =
        bind_any_family(config.inbound_listen, "inbound").map_err(|source| StartError::Bind {
            what: "inbound",
            addr: config.inbound_listen,
            source,
        })?;
    let admin_listener = bind("admin", config.admin_listen).await?;
    let mut forward_listeners = Vec::with_capacity(config.forwards.len());
    for forward in config.forwards {
        forward_listeners.push((bind("forward", forward.listen).await?, forward.target));
    }
    let outbound_listener = match config.outbound_listen {
        Some(addr) => Some(bind("outbound", addr).await?),
        None => None,
    };
    let outbound_addr = outbound_listener.as_ref().map(local_addr).transpose()?;
    // The other family's loopback, where ip6tables sends the app's IPv6 connections.
    let outbound_twin = match outbound_addr {
        Some(addr) => bind_loopback_twin(addr, "outbound").map_err(|source| StartError::Bind {
            what: "outbound (the other family's loopback)",
            addr,
            source,
        })?,
        None => None,
    };
    let outbound_twin_addr = outbound_twin.as_ref().map(local_addr).transpose()?;
    let inbound_addr = local_addr(&inbound_listener)?;
    let admin_addr = local_addr(&admin_listener)?;
    let forward_addrs = forward_listeners
        .iter()
        .map(|(l, _)| local_addr(l))
        .collect::<Result<Vec<_>, _>>()?;

    // Watches present the proxy's certificate; Certify (above) stays token-only.
    let watch_channels = control_plane::watch_channels(
        &config.control_plane_addr,
        config.control_plane_identity.clone(),
        store.clone(),
        config.control_plane_keepalive,
        stop.clone(),
    )
    .map_err(|e| {
        StartError::Setup(format!(
            "--control-plane-addr {}: {e}",
            config.control_plane_addr
        ))
    })?;
    let discovery = Arc::new(Discovery::following(
        watch_channels,
        metrics.clone(),
        stop.clone(),
    ));
    let tap = Arc::new(TapHub::new(metrics.tap.clone()));
    let (telemetry, export_task) = Telemetry::start(
        &config.identity,
        &config.telemetry,
        &metrics,
        tap.clone(),
        stop.clone(),
    )
    .map_err(StartError::Setup)?;
    let telemetry = Arc::new(telemetry);
    let identity = IdentityClient::new(store.clone(), channel, config.token, metrics.clone());
    let app = Arc::new(AppClient::new(config.connect_timeout));
    let inbound = Arc::new(Inbound {
        store: store.clone(),
        mode: config.inbound_mode,
        app_addr: config.inbound_app_addr,
        connect_to: config.inbound_connect_to,
        detect_timeout: config.detect_timeout,
        handshake_timeout: config
            .connect_timeout
            .max(std::time::Duration::from_secs(5)),
        app: app.clone(),
        metrics: metrics.clone(),
        telemetry: telemetry.clone(),
        discovery: Some(discovery.clone()),
        connection_limit: ConnectionLimit::new(config.inbound_max_connections),
        http_ports: config.http_ports.clone(),
    });
    let mut outbound = Outbound::new(
        store.clone(),
        config.connect_timeout,
        config.detect_timeout,
        metrics.clone(),
        telemetry,
    );
    outbound.discovery = Some(discovery.clone());
    outbound.opaque_ports = config.opaque_ports;
    outbound.http_ports = config.http_ports;
    outbound.unknown_destinations = config.unknown_destinations;
    outbound.connection_limit = ConnectionLimit::new(config.outbound_max_connections);
    let outbound = Arc::new(outbound);
    let (forward_listeners, forward_targets): (Vec<_>, Vec<_>) = forward_listeners
        .into_iter()
        .map(|(listener, target)| {
            let target = match target {
                ForwardTarget::Fixed { name, endpoints } => Target::Fixed(Arc::new(
                    Destination::fixed(name.into(), endpoints, &metrics),
                )),
                ForwardTarget::Service(name) => Target::Discovered(discovery.answer(&name)),
            };
            (listener, target)
        })
        .unzip();
    let admin = Arc::new(Admin {
        store: store.clone(),
        metrics: metrics.clone(),
        config: summary,
        forwards: forward_targets.clone(),
        discovery: Some(discovery.clone()),
        log_level: log_level.map(|(setter, current)| (setter, Mutex::new(current))),
        tap,
        tap_allow: config.tap_allow,
        header_read_timeout: crate::admin::HEADER_READ_TIMEOUT,
        stall_timeout: crate::admin::STALL_TIMEOUT,
        draining: drain.draining(),
    });

    let mut tasks = vec![
        tokio::spawn(identity.run(stop.clone())),
        tokio::spawn(discovery.clone().forget_idle_periodically()),
        tokio::spawn(app.close_idle_periodically(stop.clone())),
        tokio::spawn(
            outbound
                .clone()
                .forget_departed_periodically(forward_targets.clone(), stop.clone()),
        ),
        tokio::spawn(inbound.serve(inbound_listener, drain.listening())),
        tokio::spawn(admin.serve(admin_listener, stop.clone())),
    ];
    tasks.extend(export_task);
    for listener in outbound_listener.into_iter().chain(outbound_twin) {
        tasks.push(tokio::spawn(
            outbound
                .clone()
                .serve_intercepted(listener, drain.listening()),
        ));
    }
    for (listener, target) in forward_listeners
        .into_iter()
        .zip(forward_targets.iter().cloned())
    {
        tasks.push(tokio::spawn(outbound.clone().serve_forward(
            listener,
            target,
            drain.listening(),
        )));
    }
    tracing::info!(
        identity = %store.identity(),
        control_plane = %control_plane_addr,
        %inbound_addr,
        %admin_addr,
        outbound_addr = %shown(outbound_addr),
        outbound_twin_addr = %shown(outbound_twin_addr),
        forwards = ?forward_addrs,
        "proxy started; requesting a certificate"
    );
    Ok(RunningProxy {
        inbound_addr,
        admin_addr,
        outbound_addr,
        forward_addrs,
        store,
        metrics,
        drain,
        stop,
        tasks,
    })
}

/// A listener's address for the log: `off` when there is none.
fn shown(addr: Option<SocketAddr>) -> String {
    addr.map_or_else(|| "off".to_owned(), |a| a.to_string())
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { what, addr, source })
}

fn local_addr(listener: &TcpListener) -> Result<SocketAddr, StartError> {
    listener
        .local_addr()
        .map_err(|e| StartError::Setup(format!("cannot read a listener's address: {e}")))
}

/// The effective configuration for `/config`, without secrets.
fn summary(config: &ProxyConfig) -> serde_json::Value {
    serde_json::json!({
        "identity": config.identity.to_string(),
        "control_plane_addr": config.control_plane_addr,
        "control_plane_identity": config.control_plane_identity.to_string(),
        "control_plane_keepalive_interval": humantime::format_duration(config.control_plane_keepalive.interval).to_string(),
        "control_plane_keepalive_timeout": humantime::format_duration(config.control_plane_keepalive.timeout).to_string(),
        "trust_anchors": config.trust_anchors.roots().len(),
        "inbound_listen": config.inbound_listen.to_string(),
        "inbound_mode": config.inbound_mode,
        "inbound_app_addr": config.inbound_app_addr.map(|a| a.to_string()),
        "admin_listen": config.admin_listen.to_string(),
        "outbound_listen": config.outbound_listen.map(|a| a.to_string()),
        "opaque_ports": config.opaque_ports,
        "http_ports": config.http_ports,
        "unknown_destinations": config.unknown_destinations,
        "forwards": config.forwards.iter().map(|f| match &f.target {
            ForwardTarget::Fixed { endpoints, .. } => serde_json::json!({
                "listen": f.listen.to_string(),
                "endpoints": endpoints.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }),
            ForwardTarget::Service(name) => serde_json::json!({
                "listen": f.listen.to_string(),
                "service": name,
            }),
        }).collect::<Vec<_>>(),
        "detect_timeout": humantime::format_duration(config.detect_timeout).to_string(),
        "connect_timeout": humantime::format_duration(config.connect_timeout).to_string(),
        "inbound_connect_to": config.inbound_connect_to,
        "shutdown_grace": humantime::format_duration(config.shutdown_grace).to_string(),
        "inbound_max_connections": config.inbound_max_connections,
        "outbound_max_connections": config.outbound_max_connections,
        "trace_collector": config.telemetry.trace_collector,
        "trace_sampling": config.telemetry.trace_sampling,
        "trace_service_name": config.telemetry.trace_service_name,
        "tap_allow": config.tap_allow.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "access_log": config.telemetry.access_log.as_ref().map(|d| match d {
            crate::telemetry::access_log::Destination::Stderr => "stderr".to_owned(),
            crate::telemetry::access_log::Destination::File(path) => path.display().to_string(),
        }),
    })
}

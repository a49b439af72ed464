//! Proxy settings: flags and `WEFT_*` environment variables in, a checked [`ProxyConfig`] out.
//!
//! Flags are taken as text and checked here rather than by clap, so a misconfigured sidecar
//! reports every bad setting in one go (a pod that crash-loops once per typo is slow to fix).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use weft_certs::{SpiffeId, TrustBundle};

use crate::destination::Endpoint;
use crate::identity::TokenSource;
use crate::identity::control_plane::{self, Keepalive};
use crate::inbound::ConnectTo;
use crate::policy::server::InboundMode;
use crate::telemetry::{TelemetryConfig, access_log};

/// `weft-proxy` flags as typed; see [`ProxyConfig::from_args`].
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ProxyArgs {
    /// This workload's SPIFFE ID, e.g. spiffe://cluster.local/ns/default/sa/web.
    #[arg(long, env = "WEFT_IDENTITY")]
    pub identity: Option<String>,

    /// The control plane's gRPC address (host:port).
    #[arg(long, env = "WEFT_CONTROL_PLANE_ADDR")]
    pub control_plane_addr: Option<String>,

    /// The identity the control plane must prove.
    /// Default: spiffe://<trust-domain>/ns/weft-system/sa/weft-control-plane.
    #[arg(long, env = "WEFT_CONTROL_PLANE_IDENTITY")]
    pub control_plane_identity: Option<String>,

    /// PEM file of the roots to trust before the control plane has sent a bundle.
    #[arg(long, env = "WEFT_TRUST_ANCHORS")]
    pub trust_anchors: Option<PathBuf>,

    /// The same roots inline, as PEM text (instead of --trust-anchors).
    #[arg(long, env = "WEFT_TRUST_ANCHORS_PEM", hide_env_values = true)]
    pub trust_anchors_pem: Option<String>,

    /// File holding the token that authenticates this workload; re-read on every renewal.
    #[arg(long, env = "WEFT_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    /// The token inline (prefer --token-file: flags are visible to other users in `ps`).
    #[arg(long, env = "WEFT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Inbound listener: mesh traffic for this pod's app. `[::]` takes IPv4 and IPv6 on one
    /// socket (falling back to 0.0.0.0 when the kernel has no IPv6).
    #[arg(long, env = "WEFT_INBOUND_LISTEN", default_value = "[::]:15006")]
    pub inbound_listen: String,

    /// permissive (accept plaintext, marked unauthenticated) or strict (mutual TLS only).
    #[arg(long, env = "WEFT_INBOUND_MODE", default_value = "permissive")]
    pub inbound_mode: String,

    /// The app's address for inbound connections that were not redirected (no interception).
    #[arg(long, env = "WEFT_INBOUND_APP_ADDR")]
    pub inbound_app_addr: Option<String>,

    /// Outbound listener for the app's intercepted connections (iptables redirects them here);
    /// `off` for none (a proxy used only through --forward listeners). On loopback, the same
    /// port of the other family's loopback (::1) is listened on too when the kernel has IPv6.
    #[arg(long, env = "WEFT_OUTBOUND_LISTEN", default_value = "127.0.0.1:15001")]
    pub outbound_listen: Option<String>,

    /// Ports whose protocol is never sniffed (server-speaks-first or binary protocols): their
    /// connections are carried as TCP at once. Comma-separated; discovery can add more.
    #[arg(
        long,
        env = "WEFT_OPAQUE_PORTS",
        default_value = "25,587,3306,4444,5432,6379,9300,11211"
    )]
    pub opaque_ports: String,

    /// Ports that always carry HTTP, on both sides (destination ports outbound, this pod's ports
    /// inbound): never spliced as opaque TCP, whatever detection sees; a request head that does
    /// not arrive within the header timeout gets 408, bytes that are not HTTP 400. Discovery
    /// declares more (MeshService `protocol: http`, Service `appProtocol` or port name, a
    /// ServicePolicy). Comma-separated.
    #[arg(long, env = "WEFT_HTTP_PORTS", default_value = "")]
    pub http_ports: String,

    /// What to do with intercepted connections to addresses no mesh service claims:
    /// passthrough (plain TCP to the original destination) or refuse (close them).
    #[arg(long, env = "WEFT_UNKNOWN_DESTINATIONS", default_value = "passthrough")]
    pub unknown_destinations: Option<String>,

    /// Admin server: /live, /ready, /metrics, /identity, /config, /log-level.
    #[arg(long, env = "WEFT_ADMIN_LISTEN", default_value = "0.0.0.0:15000")]
    pub admin_listen: String,

    /// An explicit outbound listener: LISTEN=NAME.NAMESPACE:PORT (a MeshService, resolved
    /// through discovery with its ServicePolicy) or LISTEN=IDENTITY@ADDRESS[,IDENTITY@ADDRESS...]
    /// (fixed peer proxies, built-in policy). The app connects to LISTEN; traffic goes over mTLS.
    /// Repeat the flag, or separate several with ';' in WEFT_FORWARD.
    #[arg(long, env = "WEFT_FORWARD", value_delimiter = ';')]
    pub forward: Vec<String>,

    /// How long to wait for a connection's first bytes before treating it as opaque TCP.
    #[arg(long, env = "WEFT_DETECT_TIMEOUT", default_value = "300ms")]
    pub detect_timeout: String,

    /// Timeout for connecting to a peer proxy or the app, TLS handshake included.
    #[arg(long, env = "WEFT_CONNECT_TIMEOUT", default_value = "1s")]
    pub connect_timeout: String,

    /// Where the app behind an intercepted connection is reached: pod-address (the address the
    /// caller asked for, so ports the app binds to loopback stay private) or loopback
    /// (127.0.0.1 or ::1 at the caller's port, for apps that listen on loopback only).
    #[arg(long, env = "WEFT_INBOUND_CONNECT_TO", default_value = "pod-address")]
    pub inbound_connect_to: Option<String>,
    /// On SIGTERM, how long requests and connections in flight have to finish before they are
    /// cut (keep it below the pod's terminationGracePeriodSeconds, 30s by default).
    #[arg(long, env = "WEFT_SHUTDOWN_GRACE", default_value = DEFAULT_SHUTDOWN_GRACE)]
    pub shutdown_grace: Option<String>,

    /// The most connections the inbound listener serves at once; past it, a new connection is
    /// closed at once (and counted in weft_inbound_connections_refused_total).
    #[arg(long, env = "WEFT_INBOUND_MAX_CONNECTIONS", default_value = DEFAULT_INBOUND_MAX_CONNECTIONS)]
    pub inbound_max_connections: Option<String>,

    /// The most connections the app may have open through the outbound listeners at once
    /// (intercepted and --forward together); past it, a new connection is closed at once (and
    /// counted in weft_outbound_connections_total{protocol="refused"}).
    #[arg(long, env = "WEFT_OUTBOUND_MAX_CONNECTIONS", default_value = DEFAULT_OUTBOUND_MAX_CONNECTIONS)]
    pub outbound_max_connections: Option<String>,

    /// OpenTelemetry collector for traces, HOST:PORT, OTLP over gRPC (Jaeger takes it on 4317).
    /// Without it nothing is traced and no trace header is read or written.
    #[arg(long, env = "WEFT_TRACE_COLLECTOR")]
    pub trace_collector: Option<String>,

    /// Share of requests without a caller's sampling decision that start a trace (0 to 1).
    /// A caller's decision (traceparent flags, B3 sampled) is always followed.
    #[arg(long, env = "WEFT_TRACE_SAMPLING", default_value = DEFAULT_TRACE_SAMPLING)]
    pub trace_sampling: Option<String>,

    /// `service.name` of this proxy's spans. Default: the service account of --identity.
    #[arg(long, env = "WEFT_TRACE_SERVICE_NAME")]
    pub trace_service_name: Option<String>,

    /// The pod's name, for the spans' resource (`k8s.pod.name`); from the downward API.
    #[arg(long, env = "WEFT_POD_NAME")]
    pub pod_name: Option<String>,

    /// Access log: off, stderr, or a file to append JSON lines to (one per request).
    #[arg(long, env = "WEFT_ACCESS_LOG", default_value = "off")]
    pub access_log: Option<String>,

    /// A mesh identity (SPIFFE ID) allowed to tap this proxy from outside the pod, proven by
    /// its certificate over TLS on the admin port (loopback callers may always tap). Repeat the
    /// flag, or separate several with ',' in WEFT_TAP_ALLOW.
    #[arg(long, env = "WEFT_TAP_ALLOW", value_delimiter = ',')]
    pub tap_allow: Vec<String>,

    /// HTTP/2 keepalive toward the control plane: a PING after this much silence (also while
    /// idle). A dead connection is noticed within interval + timeout, then replaced.
    #[arg(
        long,
        env = "WEFT_CONTROL_PLANE_KEEPALIVE_INTERVAL",
        default_value = "10s"
    )]
    pub control_plane_keepalive_interval: Option<String>,

    /// How long a keepalive PING to the control plane may go unanswered before the connection
    /// is closed (its watches reconnect, to another replica first).
    #[arg(
        long,
        env = "WEFT_CONTROL_PLANE_KEEPALIVE_TIMEOUT",
        default_value = "10s"
    )]
    pub control_plane_keepalive_timeout: Option<String>,
}

/// An explicit outbound listener and where its traffic goes.
#[derive(Debug)]
pub struct Forward {
    pub listen: SocketAddr,
    pub target: ForwardTarget,
}

#[derive(Debug, Clone)]
pub enum ForwardTarget {
    /// `IDENTITY@ADDRESS,...`: these peer proxies, with the built-in client policy.
    Fixed {
        name: String,
        endpoints: Vec<Endpoint>,
    },
    /// `NAME.NAMESPACE:PORT`: a MeshService, resolved through discovery with its policy.
    Service(String),
}

/// Checked settings, ready to build a proxy from.
#[derive(Debug)]
pub struct ProxyConfig {
    pub identity: SpiffeId,
    pub control_plane_addr: String,
    pub control_plane_identity: SpiffeId,
    pub trust_anchors: TrustBundle,
    pub token: TokenSource,
    pub inbound_listen: SocketAddr,
    pub inbound_mode: InboundMode,
    pub inbound_app_addr: Option<SocketAddr>,
    pub admin_listen: SocketAddr,
    pub outbound_listen: Option<SocketAddr>,
    pub opaque_ports: Vec<u16>,
    pub http_ports: Vec<u16>,
    pub unknown_destinations: UnknownDestinations,
    pub forwards: Vec<Forward>,
    pub detect_timeout: Duration,
    pub connect_timeout: Duration,
    pub inbound_connect_to: ConnectTo,
    pub shutdown_grace: Duration,
    pub inbound_max_connections: usize,
    pub outbound_max_connections: usize,
    pub telemetry: TelemetryConfig,
    /// `--control-plane-keepalive-interval` and `--control-plane-keepalive-timeout`.
    pub control_plane_keepalive: Keepalive,
    /// `--tap-allow`: identities that may tap over TLS from outside the pod.
    pub tap_allow: Vec<SpiffeId>,
}

impl ProxyConfig {
    /// Checks every setting; on failure returns one message per bad setting.
    pub fn from_args(args: ProxyArgs) -> Result<Self, Vec<String>> {
        let mut problems = Problems::default();

        let identity = problems.check(required(&args.identity, "--identity").and_then(|text| {
            text.parse::<SpiffeId>()
                .map_err(|e| format!("--identity {text:?}: {e}"))
        }));
        let control_plane_addr =
            problems.check(required(&args.control_plane_addr, "--control-plane-addr"));
        let control_plane_identity = match (&args.control_plane_identity, &identity) {
            (Some(text), _) => problems.check(
                text.parse::<SpiffeId>()
                    .map_err(|e| format!("--control-plane-identity {text:?}: {e}")),
            ),
            (None, Some(id)) => problems.check(
                SpiffeId::new(id.trust_domain(), "weft-system", "weft-control-plane")
                    .map_err(|e| e.to_string()),
            ),
            (None, None) => None,
        };
        let trust_anchors = problems.check(trust_anchors(&args));
        let token = problems.check(match (&args.token_file, &args.token) {
            (Some(path), None) => Ok(TokenSource::File(path.clone())),
            (None, Some(token)) if !token.is_empty() => Ok(TokenSource::Inline(token.clone())),
            (Some(_), Some(_)) => Err("give either --token-file or --token, not both".to_owned()),
            _ => Err("--token-file (or WEFT_TOKEN) is required: it authenticates this proxy to the control plane".to_owned()),
        });
        let inbound_listen = problems.check(socket_addr(&args.inbound_listen, "--inbound-listen"));
        let inbound_mode = problems.check(match args.inbound_mode.as_str() {
            "permissive" => Ok(InboundMode::Permissive),
            "strict" => Ok(InboundMode::Strict),
            other => Err(format!(
                "--inbound-mode {other:?}: expected permissive or strict"
            )),
        });
        let inbound_app_addr = match &args.inbound_app_addr {
            Some(text) => problems
                .check(socket_addr(text, "--inbound-app-addr"))
                .map(Some),
            None => Some(None),
        };
        let admin_listen = problems.check(socket_addr(&args.admin_listen, "--admin-listen"));
        let outbound_listen = match args.outbound_listen.as_deref().map(str::trim) {
            None | Some("off") | Some("") => Some(None),
            Some(text) => problems
                .check(socket_addr(text, "--outbound-listen"))
                .map(Some),
        };
        let opaque_ports = problems.check(ports(&args.opaque_ports, "--opaque-ports"));
        let tap_allow: Vec<SpiffeId> = args
            .tap_allow
            .iter()
            .filter_map(|text| {
                problems.check(
                    text.trim()
                        .parse::<SpiffeId>()
                        .map_err(|e| format!("--tap-allow {text:?}: {e}")),
                )
            })
            .collect();
        let http_ports = problems.check(ports(&args.http_ports, "--http-ports"));
        let unknown_destinations =
            problems.check(match args.unknown_destinations.as_deref().map(str::trim) {
                None | Some("passthrough") => Ok(UnknownDestinations::Passthrough),
                Some("refuse") => Ok(UnknownDestinations::Refuse),
                Some(other) => Err(format!(
                    "--unknown-destinations {other:?}: expected passthrough or refuse"
                )),
            });
        let forwards: Vec<Option<Forward>> = args
            .forward
            .iter()
            .map(|f| problems.check(forward(f)))
            .collect();
        let detect_timeout = problems.check(duration(&args.detect_timeout, "--detect-timeout"));
        let connect_timeout = problems.check(duration(&args.connect_timeout, "--connect-timeout"));
        let inbound_connect_to = problems.check(
            args.inbound_connect_to
                .as_deref()
                .map_or(Ok(ConnectTo::PodAddress), ConnectTo::parse),
        );
        let shutdown_grace = problems.check(duration(
            args.shutdown_grace
                .as_deref()
                .unwrap_or(DEFAULT_SHUTDOWN_GRACE),
            "--shutdown-grace",
        ));
        let inbound_max_connections = problems.check(positive(
            args.inbound_max_connections
                .as_deref()
                .unwrap_or(DEFAULT_INBOUND_MAX_CONNECTIONS),
            "--inbound-max-connections",
        ));
        let outbound_max_connections = problems.check(positive(
            args.outbound_max_connections
                .as_deref()
                .unwrap_or(DEFAULT_OUTBOUND_MAX_CONNECTIONS),
            "--outbound-max-connections",
        ));
        let telemetry = telemetry(&args, &mut problems);
        if let Some(addrs) = &control_plane_addr {
            problems.check(control_plane::check_addrs(addrs));
        }
        let control_plane_keepalive = problems.check(control_plane_keepalive(&args));

        match (
            identity,
            control_plane_addr,
            control_plane_identity,
            trust_anchors,
            token,
            inbound_listen,
            inbound_mode,
            inbound_app_addr,
            admin_listen,
            detect_timeout,
            connect_timeout,
            (
                outbound_listen,
                (opaque_ports, http_ports),
                unknown_destinations,
            ),
            (inbound_connect_to, shutdown_grace, inbound_max_connections),
            outbound_max_connections,
            telemetry,
            control_plane_keepalive,
        ) {
            (
                Some(identity),
                Some(control_plane_addr),
                Some(control_plane_identity),
                Some(trust_anchors),
                Some(token),
                Some(inbound_listen),
                Some(inbound_mode),
                Some(inbound_app_addr),
                Some(admin_listen),
                Some(detect_timeout),
                Some(connect_timeout),
                (
                    Some(outbound_listen),
                    (Some(opaque_ports), Some(http_ports)),
                    Some(unknown_destinations),
                ),
                (Some(inbound_connect_to), Some(shutdown_grace), Some(inbound_max_connections)),
                Some(outbound_max_connections),
                Some(telemetry),
                Some(control_plane_keepalive),
            ) if problems.0.is_empty() => Ok(Self {
                identity,
                control_plane_addr,
                control_plane_identity,
                trust_anchors,
                token,
                inbound_listen,
                inbound_mode,
                inbound_app_addr,
                admin_listen,
                outbound_listen,
                opaque_ports,
                http_ports,
                unknown_destinations,
                forwards: forwards.into_iter().flatten().collect(),
                detect_timeout,
                connect_timeout,
                inbound_connect_to,
                shutdown_grace,
                inbound_max_connections,
                outbound_max_connections,
                telemetry,
                control_plane_keepalive,
                tap_allow,
            }),
            _ => Err(problems.0),
        }
    }
}

/// `--shutdown-grace` when not given (also for [`ProxyArgs::default`], as in tests).
const DEFAULT_SHUTDOWN_GRACE: &str = "20s";
/// `--trace-sampling` when not given: one new trace in a hundred.
const DEFAULT_TRACE_SAMPLING: &str = "0.01";
/// `--inbound-max-connections` when not given.
const DEFAULT_INBOUND_MAX_CONNECTIONS: &str = "10000";
/// `--outbound-max-connections` when not given: an app's connections through its sidecar; each
/// carried one holds two descriptors (the app's, and the stream toward the destination).
const DEFAULT_OUTBOUND_MAX_CONNECTIONS: &str = "10000";

/// What the outbound side does with destinations that are not part of the mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownDestinations {
    /// Plain TCP to the original destination, as if there were no proxy.
    Passthrough,
    /// Close the connection: the pod may only talk to mesh services.
    Refuse,
}

/// Collects one message per bad setting.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn check<T>(&mut self, result: Result<T, String>) -> Option<T> {
        result.map_err(|e| self.0.push(e)).ok()
    }
}

fn required(value: &Option<String>, flag: &str) -> Result<String, String> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
        _ => Err(format!("{flag} is required")),
    }
}

fn socket_addr(text: &str, flag: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|e| format!("{flag} {text:?}: {e} (expected IP:PORT)"))
}

fn ports(text: &str, flag: &str) -> Result<Vec<u16>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.parse::<u16>() {
            Ok(port) if port > 0 => Ok(port),
            _ => Err(format!("{flag} {text:?}: {p:?} is not a port (1-65535)")),
        })
        .collect()
}

/// A duration flag, in weft's one duration grammar ([`weft_api::duration`]).
fn duration(text: &str, flag: &str) -> Result<Duration, String> {
    weft_api::duration::parse(text).map_err(|e| format!("{flag} {text:?}: {e}"))
}

/// `--control-plane-keepalive-interval` and `--control-plane-keepalive-timeout`, both above 0.
fn control_plane_keepalive(args: &ProxyArgs) -> Result<Keepalive, String> {
    let default = control_plane::DEFAULT_KEEPALIVE;
    let read = |text: &Option<String>, flag: &str, default: Duration| match text {
        None => Ok(default),
        Some(text) => match duration(text, flag)? {
            Duration::ZERO => Err(format!("{flag} {text:?}: must be above 0")),
            d => Ok(d),
        },
    };
    Ok(Keepalive {
        interval: read(
            &args.control_plane_keepalive_interval,
            "--control-plane-keepalive-interval",
            default.interval,
        )?,
        timeout: read(
            &args.control_plane_keepalive_timeout,
            "--control-plane-keepalive-timeout",
            default.timeout,
        )?,
    })
}

fn positive(text: &str, flag: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{flag} {text:?}: expected a whole number above 0")),
    }
}

/// `--trace-*`, `--pod-name` and `--access-log`.
fn telemetry(args: &ProxyArgs, problems: &mut Problems) -> Option<TelemetryConfig> {
    let trace_collector = match args.trace_collector.as_deref().map(str::trim) {
        None | Some("") | Some("off") => Some(None),
        Some(text) => problems
            .check(host_port(text, "--trace-collector"))
            .map(Some),
    };
    let sampling = args
        .trace_sampling
        .as_deref()
        .unwrap_or(DEFAULT_TRACE_SAMPLING)
        .trim();
    let trace_sampling = problems.check(match sampling.parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(format!(
            "--trace-sampling {sampling:?}: expected a ratio from 0 to 1 (0.01 = 1 %)"
        )),
    });
    let non_empty = |value: &Option<String>| {
        value
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    Some(TelemetryConfig {
        trace_collector: trace_collector?,
        trace_sampling: trace_sampling?,
        trace_service_name: non_empty(&args.trace_service_name),
        pod_name: non_empty(&args.pod_name),
        access_log: args
            .access_log
            .as_deref()
            .and_then(access_log::Destination::parse),
    })
}

/// `host:port` with a port; the host a name or an address (`[v6]` in brackets).
fn host_port(text: &str, flag: &str) -> Result<String, String> {
    let valid = text.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok_and(|p| p > 0)
    });
    if !valid {
        return Err(format!(
            "{flag} {text:?}: expected HOST:PORT (e.g. jaeger-collector.observability:4317)"
        ));
    }
    Ok(text.to_owned())
}

fn trust_anchors(args: &ProxyArgs) -> Result<TrustBundle, String> {
    let (text, source) = match (&args.trust_anchors, &args.trust_anchors_pem) {
        (Some(path), None) => (
            std::fs::read(path).map_err(|e| format!("--trust-anchors {}: {e}", path.display()))?,
            path.display().to_string(),
        ),
        (None, Some(pem)) => (
            pem.clone().into_bytes(),
            "WEFT_TRUST_ANCHORS_PEM".to_owned(),
        ),
        (Some(_), Some(_)) => {
            return Err(
                "give either --trust-anchors or WEFT_TRUST_ANCHORS_PEM, not both".to_owned(),
            );
        }
        (None, None) => {
            return Err(
                "--trust-anchors is required: the roots that the control plane's certificate chains to"
                    .to_owned(),
            );
        }
    };
    TrustBundle::from_pem(&text, &source).map_err(|e| format!("trust anchors: {e}"))
}

/// `LISTEN=IDENTITY@ADDRESS[,IDENTITY@ADDRESS...]` or `LISTEN=NAME.NAMESPACE:PORT`
fn forward(text: &str) -> Result<Forward, String> {
    let (listen, target) = text.split_once('=').ok_or_else(|| {
        format!("--forward {text:?}: expected LISTEN=NAME.NAMESPACE:PORT or LISTEN=IDENTITY@ADDRESS[,IDENTITY@ADDRESS...]")
    })?;
    let listen = socket_addr(listen, "--forward listen address")?;
    if !target.contains('@') {
        return Ok(Forward {
            listen,
            target: ForwardTarget::Service(
                service_name(target.trim()).map_err(|e| format!("--forward {text:?}: {e}"))?,
            ),
        });
    }
    let endpoints = target
        .split(',')
        .map(|e| e.trim().parse::<Endpoint>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--forward {text:?}: {e}"))?;
    let name = endpoints
        .first()
        .map(|e| e.identity.to_string())
        .unwrap_or_default();
    Ok(Forward {
        listen,
        target: ForwardTarget::Fixed { name, endpoints },
    })
}

/// `name.namespace:port`, each name a DNS label as Kubernetes requires.
fn service_name(text: &str) -> Result<String, String> {
    let expected =
        || format!("{text:?} is not NAME.NAMESPACE:PORT (a MeshService) nor IDENTITY@ADDRESS");
    let (names, port) = text.rsplit_once(':').ok_or_else(expected)?;
    let (name, namespace) = names.split_once('.').ok_or_else(expected)?;
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if !label(name) || !label(namespace) || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(expected());
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_every_bad_setting_at_once() {
        let args = ProxyArgs {
            identity: Some("spiffe://cluster.local/ns/Demo/sa/web".into()),
            inbound_listen: "0.0.0.0".into(),
            inbound_mode: "lenient".into(),
            admin_listen: "0.0.0.0:15000".into(),
            forward: vec!["127.0.0.1:4140=hello".into()],
            detect_timeout: "fast".into(),
            connect_timeout: "1s".into(),
            outbound_listen: Some("localhost:15001".into()),
            opaque_ports: "25,smtp".into(),
            http_ports: "http".into(),
            unknown_destinations: Some("allow".into()),
            inbound_connect_to: Some("localhost".into()),
            shutdown_grace: Some("soon".into()),
            inbound_max_connections: Some("0".into()),
            outbound_max_connections: Some("many".into()),
            trace_collector: Some("http://jaeger:4317".into()),
            trace_sampling: Some("2".into()),
            tap_allow: vec![
                "spiffe://cluster.local/ns/demo/sa/dashboard".into(),
                "admin".into(),
            ],
            ..ProxyArgs::default()
        };
        let errors = ProxyConfig::from_args(args).unwrap_err();
        let all = errors.join("\n");
        for expected in [
            "--identity \"spiffe://cluster.local/ns/Demo/sa/web\": namespace \"Demo\" contains 'D'",
            "--control-plane-addr is required",
            "--trust-anchors is required",
            "--token-file (or WEFT_TOKEN) is required",
            "--inbound-listen \"0.0.0.0\"",
            "--inbound-mode \"lenient\": expected permissive or strict",
            "--forward \"127.0.0.1:4140=hello\": \"hello\" is not NAME.NAMESPACE:PORT",
            "--detect-timeout \"fast\"",
            "--outbound-listen \"localhost:15001\"",
            "--opaque-ports \"25,smtp\": \"smtp\" is not a port",
            "--http-ports \"http\": \"http\" is not a port",
            "--unknown-destinations \"allow\": expected passthrough or refuse",
            "--inbound-connect-to \"localhost\": expected pod-address or loopback",
            "--shutdown-grace \"soon\"",
            "--inbound-max-connections \"0\": expected a whole number above 0",
            "--outbound-max-connections \"many\": expected a whole number above 0",
            "--trace-collector \"http://jaeger:4317\": expected HOST:PORT",
            "--trace-sampling \"2\": expected a ratio from 0 to 1",
            "--tap-allow \"admin\": ",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
        }
        assert_eq!(errors.len(), 19, "{all}");
    }
}

//! The gRPC channels to the control plane, over TLS verified by SPIFFE identity.
//!
//! tonic's own TLS verifies DNS names; the control plane is verified like any mesh peer (chain to
//! the trust anchors, then its SPIFFE ID), so the channel gets a connector that does exactly that.
//! Channels are lazy and reconnect by themselves: a control plane that is down makes calls fail
//! fast (the callers back off and retry), and one that comes back is reused.
//!
//! Two kinds of channel: Identity/Certify goes over one that presents no certificate (the token
//! authenticates; the first request has no certificate to present anyway), and discovery watches
//! over one that presents the proxy's current certificate ([`watch_channels`]), since the
//! control plane serves discovery to the mesh only.
//!
//! **Replicas.** `--control-plane-addr` takes one `host:port` or several, comma-separated; each
//! host is resolved on every connection attempt, and every address it resolves to counts (a
//! headless Service lists each replica). A connection tries the addresses in turn, starting
//! after the one the previous connection used (the first time at a random one), each bounded by
//! [`CONNECT_TIMEOUT`] for TCP and TLS together: when a replica dies, the next connection goes
//! to another one first. Behind one ClusterIP Service, kube-proxy picks the replica instead.
//!
//! **Dead connections.** HTTP/2 keepalive PINGs every `--control-plane-keepalive-interval` (also
//! while idle), unanswered within `--control-plane-keepalive-timeout`, close the connection: a
//! replica that vanished without closing (node lost, network cut) is noticed within interval +
//! timeout (20 s by default), its watches end and reconnect elsewhere, keeping their answers.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint, Uri};
use weft_certs::SpiffeId;

use crate::tls::{TlsStore, classify};

/// Per address tried: TCP connect and TLS handshake together.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// `--control-plane-keepalive-interval` and `--control-plane-keepalive-timeout` by default.
pub const DEFAULT_KEEPALIVE: Keepalive = Keepalive {
    interval: Duration::from_secs(10),
    timeout: Duration::from_secs(10),
};

/// HTTP/2 keepalive of a control-plane connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    pub interval: Duration,
    pub timeout: Duration,
}

/// A channel to the control plane at `addrs` (see the module doc) that accepts only a server
/// proving `identity` and presents no certificate: the one Identity/Certify uses.
pub fn channel(
    addrs: &str,
    identity: SpiffeId,
    store: Arc<TlsStore>,
) -> Result<Channel, tonic::transport::Error> {
    channel_with(addrs, identity, store, DEFAULT_KEEPALIVE, false)
}

/// [`channel`] with its keepalive, presenting the current certificate if `present_certificate`
/// (a connection attempt before the first certificate waits for it, up to [`CONNECT_TIMEOUT`]).
pub fn channel_with(
    addrs: &str,
    identity: SpiffeId,
    store: Arc<TlsStore>,
    keepalive: Keepalive,
    present_certificate: bool,
) -> Result<Channel, tonic::transport::Error> {
    // The URI only names the channel; the connector decides where connections go.
    let first = addrs.split(',').next().unwrap_or(addrs).trim();
    let endpoint = Endpoint::from_shared(format!("http://{first}"))?
        .timeout(REQUEST_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(keepalive.interval)
        .keep_alive_timeout(keepalive.timeout)
        .keep_alive_while_idle(true);
    let targets = Arc::new(Targets::new(addrs));
    let connector = tower::service_fn(move |_: Uri| {
        let (targets, identity, store) = (targets.clone(), identity.clone(), store.clone());
        async move {
            let config = match present_certificate {
                false => store.control_plane_config(&identity),
                true => {
                    let mut installed = store.subscribe();
                    let first = installed.wait_for(|generation| *generation > 0);
                    let _ = tokio::time::timeout(CONNECT_TIMEOUT, first).await;
                    store.control_plane_config_presenting(&identity)
                }
            }
            .map_err(|e| match present_certificate {
                true => io::Error::other(ConnectFailure::NoCertificate),
                false => io::Error::other(e.to_string()),
            })?;
            let tls = targets.connect(Arc::new(config)).await?;
            Ok::<_, io::Error>(TokioIo::new(tls))
        }
    });
    Ok(endpoint.connect_with_connector_lazy(connector))
}

/// The channel discovery watches use now, replaced by a new one (a new connection) with every
/// new certificate, so new watches always present the current certificate. Watches already
/// open stay on their connection until they end: the control plane ends each when the
/// certificate it was opened with expires, and the watch then reopens on the current channel.
pub fn watch_channels(
    addrs: &str,
    identity: SpiffeId,
    store: Arc<TlsStore>,
    keepalive: Keepalive,
    stop: CancellationToken,
) -> Result<watch::Receiver<Channel>, tonic::transport::Error> {
    let make = {
        let (addrs, identity, store) = (addrs.to_owned(), identity.clone(), store.clone());
        move || channel_with(&addrs, identity.clone(), store.clone(), keepalive, true)
    };
    let (tx, rx) = watch::channel(make()?);
    let mut installed = store.subscribe();
    tokio::spawn(async move {
        // The first certificate needs no new channel: the first one waits for it.
        let mut seen = 1;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = installed.changed() => if changed.is_err() { return },
            }
            let generation = *installed.borrow_and_update();
            if generation <= seen {
                continue;
            }
            seen = generation;
            match make() {
                Ok(channel) => {
                    tx.send_replace(channel);
                }
                // The address parsed once; it parses again. Keep the channel in force if not.
                Err(e) => tracing::warn!("cannot renew the discovery channel: {e}"),
            }
        }
    });
    Ok(rx)
}

/// The `host:port` entries of `--control-plane-addr`, and where the next connection starts.
#[derive(Debug)]
struct Targets {
    entries: Vec<String>,
    next: AtomicUsize,
}

impl Targets {
    fn new(addrs: &str) -> Self {
        Self {
            entries: split_addrs(addrs),
            next: AtomicUsize::new(fastrand::usize(..1 << 16)),
        }
    }

    /// A TLS connection to the first address, in turn, that completes one.
    async fn connect(&self, config: Arc<rustls::ClientConfig>) -> io::Result<TlsStream<TcpStream>> {
        let mut candidates = Vec::new();
        let mut failures = Vec::new();
        let mut untrusted = false;
        for entry in &self.entries {
            match tokio::net::lookup_host(entry.as_str()).await {
                Ok(addrs) => candidates.extend(addrs.map(|a| (entry.as_str(), a))),
                Err(e) => failures.push(format!("{entry}: cannot resolve: {e}")),
            }
        }
        let count = candidates.len();
        let start = self.next.load(Ordering::Relaxed);
        for i in 0..count {
            let index = (start + i) % count;
            let (entry, addr) = candidates[index];
            let attempt = async {
                let tcp = TcpStream::connect(addr).await.map_err(Attempt::Io)?;
                tcp.set_nodelay(true).map_err(Attempt::Io)?;
                let name = server_name(entry).map_err(Attempt::Io)?;
                TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| Attempt::Tls(classify(&e)))
            };
            match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
                Ok(Ok(tls)) => {
                    self.next.store(index + 1, Ordering::Relaxed);
                    return Ok(tls);
                }
                Ok(Err(Attempt::Tls(failure))) if UNTRUSTED.contains(&failure.reason) => {
                    untrusted = true;
                    failures.push(format!("{entry} ({addr}): {failure}"));
                }
                Ok(Err(Attempt::Tls(failure))) => {
                    failures.push(format!("{entry} ({addr}): TLS failed: {failure}"))
                }
                Ok(Err(Attempt::Io(e))) => failures.push(format!("{entry} ({addr}): {e}")),
                Err(_) => failures.push(format!(
                    "{entry} ({addr}): no TLS connection within {}",
                    weft_api::duration::format(CONNECT_TIMEOUT)
                )),
            }
        }
        Err(io::Error::other(ConnectFailure::Unreachable {
            addrs: self.entries.join(","),
            failures,
            untrusted,
        }))
    }
}

/// How one connection attempt failed.
enum Attempt {
    Io(io::Error),
    Tls(crate::tls::HandshakeFailure),
}

/// Handshake failures that mean the control plane's certificate does not chain to a root this
/// proxy trusts: its CA is not the one in `--trust-anchors`.
const UNTRUSTED: [&str; 2] = ["unknown_ca", "bad_certificate"];

/// Why the connector gave no connection. Found in the cause chain of a failed call by
/// [`ConnectFailure::in_chain`], so a log can say what happened in words: a dead address, a
/// foreign CA, or no certificate yet.
#[derive(Debug)]
pub enum ConnectFailure {
    /// A discovery connection needs this proxy's certificate, and there is none yet.
    NoCertificate,
    /// No address of the control plane completed a TLS connection.
    Unreachable {
        addrs: String,
        failures: Vec<String>,
        /// At least one address answered with a certificate this proxy does not trust.
        untrusted: bool,
    },
}

impl std::fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectFailure::NoCertificate => {
                f.write_str("this proxy has no certificate yet to present to the control plane")
            }
            ConnectFailure::Unreachable {
                failures,
                untrusted: true,
                ..
            } => write!(
                f,
                "the control plane's CA does not match --trust-anchors: {}",
                failures.join("; ")
            ),
            ConnectFailure::Unreachable {
                addrs, failures, ..
            } => write!(
                f,
                "cannot connect to the control plane at {addrs}: {}",
                failures.join("; ")
            ),
        }
    }
}

impl std::error::Error for ConnectFailure {}

impl ConnectFailure {
    /// Whether a control plane answered with a certificate from a CA this proxy does not trust.
    pub fn untrusted(&self) -> bool {
        matches!(
            self,
            ConnectFailure::Unreachable {
                untrusted: true,
                ..
            }
        )
    }

    /// The connector's failure somewhere in `error`'s causes (an `io::Error` wraps it).
    pub fn in_chain<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Self> {
        let mut next = Some(error);
        while let Some(e) = next {
            if let Some(found) = e.downcast_ref::<Self>() {
                return Some(found);
            }
            let wrapped = e
                .downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<Self>());
            if wrapped.is_some() {
                return wrapped;
            }
            next = e.source();
        }
        None
    }
}

/// The entries of a comma-separated `--control-plane-addr`, trimmed, empty ones dropped.
pub fn split_addrs(addrs: &str) -> Vec<String> {
    addrs
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Checks `--control-plane-addr`: one or more `host:port`, comma-separated.
pub fn check_addrs(addrs: &str) -> Result<(), String> {
    let entries = split_addrs(addrs);
    if entries.is_empty() {
        return Err(format!(
            "--control-plane-addr {addrs:?}: expected host:port, or several comma-separated"
        ));
    }
    for entry in entries {
        let port = entry.rsplit_once(':').map(|(_, port)| port.parse::<u16>());
        if !matches!(port, Some(Ok(p)) if p > 0) {
            return Err(format!(
                "--control-plane-addr: {entry:?} is not host:port (e.g. weft-control-plane.weft-system.svc:15010)"
            ));
        }
    }
    Ok(())
}

fn server_name(target: &str) -> io::Result<ServerName<'static>> {
    let host = target
        .rsplit_once(':')
        .map(|(host, _port)| host)
        .unwrap_or(target)
        .trim_start_matches('[')
        .trim_end_matches(']');
    ServerName::try_from(host.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{target}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_one_or_more_host_ports() {
        assert_eq!(split_addrs(" a:1, b:2 ,,"), ["a:1", "b:2"]);
        assert!(check_addrs("127.0.0.1:15010").is_ok());
        assert!(check_addrs("cp-0.cp:15010,cp-1.cp:15010,[::1]:15010").is_ok());
        for bad in ["", ",", "cp", "cp:0", "cp:x", "a:1,b"] {
            assert!(check_addrs(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_connection_moves_on_from_a_dead_address_and_starts_after_the_last_used() {
        use tokio::net::TcpListener;
        // Nothing listens on the first; the second accepts TCP (TLS then fails: no server).
        let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead_addr = dead.local_addr().unwrap();
        drop(dead);
        let live = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live_addr = live.local_addr().unwrap();
        let targets = Targets::new(&format!("{dead_addr},{live_addr}"));
        targets.next.store(0, Ordering::Relaxed);
        let accepting = tokio::spawn(async move {
            let (conn, _) = live.accept().await.unwrap();
            drop(conn);
        });
        let store = TlsStore::new(
            SpiffeId::new("cluster.local", "demo", "web").unwrap(),
            weft_certs::CertificateAuthority::generate("cluster.local", Duration::from_secs(60))
                .unwrap()
                .trust_bundle()
                .clone(),
            Arc::new(weft_certs::tls_provider()),
        )
        .unwrap();
        let config = store
            .control_plane_config(&SpiffeId::new("cluster.local", "weft-system", "cp").unwrap())
            .unwrap();
        let err = targets
            .connect(Arc::new(config))
            .await
            .unwrap_err()
            .to_string();
        accepting.await.unwrap();
        assert!(
            err.contains(&format!("{dead_addr} ({dead_addr}): ")),
            "{err}"
        );
        assert!(
            err.contains(&format!("{live_addr} ({live_addr}): TLS failed")),
            "{err}"
        );
    }
}

//! The outbound side: connections from the local app to other services.
//!
//! A connection's destination comes from an explicit `--forward` listener, or, for connections
//! iptables redirected to the outbound listener, from the original destination resolved through
//! discovery. Addresses no mesh service claims pass through as plain TCP (or are refused); for
//! mesh services, HTTP is detected and carried over the pooled HTTP/2 connection to a balanced
//! endpoint's peer proxy, and anything else (or any port declared opaque) as an opaque stream
//! over its own mutual-TLS connection. That connection is opened at once on a declared opaque
//! port (server-speaks-first protocols), and otherwise only once the app has sent a byte: an idle
//! connection costs its descriptor, not a handshake at both ends and a connection to the
//! server's app. `--outbound-max-connections` bounds the app's connections over all listeners.

mod by_name;
mod describe;
mod http;
mod mirror;
mod peer;
pub mod request;
mod routed;
mod target;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::config::UnknownDestinations;
use crate::destination::Destination;
use crate::discovery::{Discovery, Resolution};
use crate::http::client::h2_pool::H2Pool;
use crate::http::server::HEADER_READ_TIMEOUT;
use crate::telemetry::Telemetry;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::metrics::connections::{Direction, TlsStatus, UNAUTHENTICATED};
use crate::tls::alpn;
use crate::transport::detect;
use crate::transport::port_protocol::HttpVersion;
use crate::transport::port_protocol::{self, Plan, PortProtocol};
use crate::transport::{
    ConnectionLimit, CountedIo, Listening, OrigDstAddr, PrefixedIo, accept_draining, original_dst,
    splice,
};
pub use describe::destinations;
use peer::PeerConnector;
pub use target::Target;

/// How often pooled connections to departed endpoints are looked for.
const POOL_SWEEP: Duration = Duration::from_secs(10);

/// The connection bound of an `Outbound` built without `--outbound-max-connections`.
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// The longest wait for a connection outside the mesh (or to an unmeshed endpoint).
const PASSTHROUGH_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Outbound {
    pub(crate) pool: H2Pool<PeerConnector>,
    detect_timeout: Duration,
    metrics: Arc<Metrics>,
    telemetry: Arc<Telemetry>,
    /// Resolves intercepted destinations.
    pub discovery: Option<Arc<Discovery>>,
    /// Ports carried as TCP without detection.
    pub opaque_ports: Vec<u16>,
    /// Ports that always carry HTTP (never spliced as opaque), whatever discovery says.
    pub http_ports: Vec<u16>,
    pub unknown_destinations: UnknownDestinations,
    /// `--outbound-max-connections`, over every outbound listener: past it a new connection is
    /// closed at once.
    pub connection_limit: ConnectionLimit,
    /// Gateway API mirrors' copies in flight, per mirror Service.
    mirrors: mirror::InFlight,
}

impl Outbound {
    pub fn new(
        store: Arc<crate::tls::TlsStore>,
        connect_timeout: Duration,
        detect_timeout: Duration,
        metrics: Arc<Metrics>,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        Self {
            pool: H2Pool::new(PeerConnector {
                store,
                timeout: connect_timeout,
                metrics: metrics.clone(),
            }),
            detect_timeout,
            metrics,
            telemetry,
            discovery: None,
            opaque_ports: Vec::new(),
            http_ports: Vec::new(),
            unknown_destinations: UnknownDestinations::Passthrough,
            connection_limit: ConnectionLimit::new(DEFAULT_MAX_CONNECTIONS),
            mirrors: mirror::InFlight::default(),
        }
    }

    /// Accepts the app's connections that iptables redirected, routing each by its original
    /// destination.
    pub async fn serve_intercepted(self: Arc<Self>, listener: TcpListener, listening: Listening) {
        let stop = listening.draining();
        accept_draining(listener, "outbound", listening, move |tcp, client| {
            // Taken here, in the accept loop, so that the limit holds however fast the app
            // connects.
            let slot = self.connection_limit.try_acquire();
            let (outbound, stop) = (self.clone(), stop.clone());
            async move {
                let Some(_slot) = slot else {
                    return outbound.refuse_over_limit(tcp, client);
                };
                outbound.intercepted(tcp, client, stop).await
            }
        })
        .await
    }

    /// Closes a connection past `--outbound-max-connections` at once, so the app fails fast
    /// instead of every connection it opens costing this proxy (and the destination) one more.
    fn refuse_over_limit(&self, tcp: TcpStream, client: SocketAddr) {
        drop(tcp);
        self.refuse("connection_limit");
        self.connection_limit
            .warn_refused(client, "outbound", "--outbound-max-connections");
    }

    async fn intercepted(
        self: Arc<Self>,
        tcp: TcpStream,
        client: SocketAddr,
        stop: CancellationToken,
    ) {
        let Some(orig) = original_dst(&tcp) else {
            self.refuse("not_redirected");
            tracing::warn!(%client, "a connection reached the outbound listener without being redirected by iptables (it has no original destination); closing it");
            return;
        };
        let Some(discovery) = &self.discovery else {
            return self.unknown(tcp, client, orig).await;
        };
        let answer = match discovery.resolve(orig.0).await {
            Ok(answer) => answer,
            Err(e) => {
                self.refuse("discovery_unavailable");
                tracing::warn!(%client, destination = %orig, "closing the connection: {e}");
                return;
            }
        };
        let resolution = answer.borrow().clone();
        let Some(Resolution::Known(destination)) = resolution else {
            return self.unknown(tcp, client, orig).await;
        };
        if let Some(addr) = destination.pick_unmeshed() {
            self.count("unmeshed");
            return self
                .passthrough(PrefixedIo::new(Bytes::new(), tcp), client, addr)
                .await;
        }
        let protocol = self.port_protocol(&destination, orig.0.port());
        if protocol == PortProtocol::Opaque {
            self.count("opaque");
            let io = PrefixedIo::new(Bytes::new(), tcp);
            // Boxed, as in `handle`: every intercepted connection's task would otherwise carry the
            // mesh connect of this one (4.3 KiB instead of 1.2).
            return Box::pin(self.forward_opaque(io, client, &destination)).await;
        }
        self.handle(tcp, client, Target::Discovered(answer), protocol, stop)
            .await
    }

    /// What `destination`'s `port` carries, the flags' declarations included.
    fn port_protocol(&self, destination: &Destination, port: u16) -> PortProtocol {
        destination
            .protocol
            .with_flags(port, &self.opaque_ports, &self.http_ports)
    }

    /// A destination that is not a mesh service.
    async fn unknown(&self, tcp: TcpStream, client: SocketAddr, orig: OrigDstAddr) {
        match self.unknown_destinations {
            UnknownDestinations::Passthrough => {
                self.count("passthrough");
                self.passthrough(PrefixedIo::new(Bytes::new(), tcp), client, orig.0)
                    .await
            }
            UnknownDestinations::Refuse => {
                self.refuse("unknown_destination");
                tracing::info!(%client, destination = %orig, "refused a connection to an address outside the mesh (--unknown-destinations refuse)");
            }
        }
    }

    /// Plain TCP to `target`, as if there were no proxy. The wait for the connection is the
    /// kernel's, bounded by [`PASSTHROUGH_CONNECT_TIMEOUT`]: the destination may be far away,
    /// and the app has already seen its connect succeed.
    async fn passthrough(&self, io: PrefixedIo<TcpStream>, client: SocketAddr, target: SocketAddr) {
        let connect = TcpStream::connect(target);
        match tokio::time::timeout(PASSTHROUGH_CONNECT_TIMEOUT, connect).await {
            Ok(Ok(upstream)) => {
                let _ = upstream.set_nodelay(true);
                let connection = self.metrics.connections.opened(
                    Direction::Outbound,
                    TlsStatus::Plaintext,
                    UNAUTHENTICATED,
                );
                splice(io, CountedIo::new(upstream, connection)).await;
            }
            Ok(Err(e)) => {
                self.error("passthrough_connect");
                tracing::info!(%client, "cannot connect to {target}: {e}");
            }
            Err(_) => {
                self.error("passthrough_connect");
                tracing::info!(%client, "cannot connect to {target}: timed out");
            }
        }
    }

    /// Accepts app connections on `listener`, all bound for `target`.
    pub async fn serve_forward(
        self: Arc<Self>,
        listener: TcpListener,
        target: Target,
        listening: Listening,
    ) {
        let stop = listening.draining();
        accept_draining(listener, "outbound", listening, move |tcp, client| {
            let slot = self.connection_limit.try_acquire();
            let (outbound, target, stop) = (self.clone(), target.clone(), stop.clone());
            async move {
                let Some(_slot) = slot else {
                    return outbound.refuse_over_limit(tcp, client);
                };
                target
                    .wait_ready(crate::discovery::FIRST_ANSWER_TIMEOUT)
                    .await;
                // A forward listener names its destination: only what discovery declares counts
                // (the flags speak of intercepted destination ports).
                let protocol = target
                    .current()
                    .map_or(PortProtocol::Detect, |d| d.protocol);
                outbound.handle(tcp, client, target, protocol, stop).await
            }
        })
        .await
    }

    /// Detects the protocol and carries the connection to `target`'s endpoints; on a port that
    /// carries HTTP, only as HTTP (see [`crate::transport::port_protocol`]).
    async fn handle(
        self: Arc<Self>,
        tcp: TcpStream,
        client: SocketAddr,
        target: Target,
        port: PortProtocol,
        stop: CancellationToken,
    ) {
        let wait = port.detect_wait(self.detect_timeout, HEADER_READ_TIMEOUT);
        let Some((protocol, io)) = detect::accepted(tcp, wait, "outbound", &self.metrics).await
        else {
            return;
        };
        match port.plan(&protocol, io.prefix()) {
            Plan::Http(version) => {
                self.count(match version {
                    HttpVersion::Http1 => "http1",
                    HttpVersion::Http2 => "http2",
                });
                http::serve(self, Box::new(io), version, target, stop).await
            }
            Plan::Opaque => {
                self.count("opaque");
                let declared = port == PortProtocol::Opaque;
                if !declared && io.prefix().is_empty() && !first_byte(&io, &stop).await {
                    tracing::debug!(%client, "the app closed an opaque connection before sending anything: no upstream was opened");
                    return;
                }
                // Boxed, as is the refusal below: a task is as large as its largest state, and
                // every HTTP connection's task would otherwise carry the mesh connect of this one.
                match target.current() {
                    Some(destination) => {
                        Box::pin(self.forward_opaque(io, client, &destination)).await;
                    }
                    None => self.error("no_endpoints"),
                }
            }
            Plan::Refuse(refusal) => {
                self.refuse(refusal.reason());
                tracing::info!(%client, reason = refusal.reason(), "refused a connection to an HTTP port before any request");
                Box::pin(port_protocol::send_refusal(io, refusal)).await;
            }
        }
    }

    async fn forward_opaque(
        &self,
        io: PrefixedIo<TcpStream>,
        client: SocketAddr,
        destination: &Destination,
    ) {
        let Ok((endpoint, _)) = destination.pick(None) else {
            self.error("no_endpoints");
            tracing::warn!(%client, destination = %destination.name, "no endpoint to forward to");
            return;
        };
        let in_flight = endpoint.load.start();
        match self.pool_connector().open(endpoint, alpn::MESH_TCP).await {
            Ok(tls) => {
                destination.record(endpoint, false);
                // In flight for as long as the connection is open, for the balancer.
                splice(io, tls).await;
                drop(in_flight);
            }
            Err(e) => {
                // This proxy's own failures (out of descriptors, too busy) are not the endpoint's.
                if !e.is_local() {
                    destination.record(endpoint, true);
                }
                self.error(e.reason());
            }
        }
    }

    /// Forgets pooled connections to endpoints that no destination has any more (they left
    /// discovery), every [`POOL_SWEEP`] until `stop`; their connections close once idle.
    pub async fn forget_departed_periodically(
        self: Arc<Self>,
        forwards: Vec<Target>,
        stop: CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(POOL_SWEEP);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let mut live = std::collections::HashSet::new();
            let discovered = self
                .discovery
                .as_ref()
                .map(|d| d.answers())
                .unwrap_or_default();
            let current = forwards.iter().filter_map(Target::current).chain(
                discovered
                    .into_iter()
                    .filter_map(|(_, answer)| match answer {
                        Some(Resolution::Known(destination)) => Some(destination),
                        _ => None,
                    }),
            );
            for destination in current {
                live.extend(destination.endpoints().iter().map(|e| e.addr));
            }
            self.pool.retain(|endpoint| live.contains(&endpoint.addr));
        }
    }

    fn pool_connector(&self) -> &PeerConnector {
        self.pool.connector()
    }

    fn count(&self, protocol: &str) {
        self.metrics
            .proxy
            .outbound_connections
            .with_label_values(&[protocol])
            .inc();
    }

    /// Counts a connection closed without being carried anywhere.
    fn refuse(&self, reason: &str) {
        self.count("refused");
        self.error(reason);
    }

    fn error(&self, reason: &str) {
        self.metrics
            .proxy
            .proxy_errors
            .with_label_values(&["outbound", reason])
            .inc();
    }
}

/// Waits for an opaque connection's first byte before anything is opened for it: detection
/// calls a connection opaque when nothing arrived in time, and an idle connection (a pool's
/// spare, a port scan, a flood) must not cost an upstream connection and a mutual-TLS handshake
/// at both ends. Server-speaks-first protocols send nothing first: their ports are declared
/// opaque (`--opaque-ports`, or the service's `opaque`), and those connections never come here.
/// Returns `false` if the app closed the connection (or the proxy began draining) first.
async fn first_byte(io: &PrefixedIo<TcpStream>, stop: &CancellationToken) -> bool {
    let mut byte = [0u8; 1];
    tokio::select! {
        peeked = io.get_ref().peek(&mut byte) => matches!(peeked, Ok(n) if n > 0),
        () = stop.cancelled() => false,
    }
}

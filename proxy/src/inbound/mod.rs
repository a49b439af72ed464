//! The inbound listener: traffic for this pod's app, from peer proxies and from outside the mesh.
//!
//! The first bytes decide: a TLS ClientHello offering a weft protocol (ALPN) is a peer proxy and
//! gets mutual TLS; the caller's SPIFFE ID is read from its certificate and handed to the app.
//! Everything else is "plaintext" from the mesh's point of view (including TLS the app terminates
//! itself): accepted and marked unauthenticated in permissive mode, refused in strict mode.
//!
//! Before any of that, the connection's port is looked up in the server policy (see
//! [`crate::policy::server`]): its `mtls` setting overrides `--inbound-mode`, and its
//! authorization, rate limits and fault drills apply to every request (and opaque connection)
//! that follows — always as the policy is now, so an edit reaches open connections too.
//!
//! ```text
//! connection (--inbound-max-connections; original destination: which port of the app)
//!  └─ port policy (the server policy's port, or none; mtls overrides --inbound-mode)
//!      └─ detect (first bytes, within the detect or header timeout)
//!          ├─ mesh TLS: handshake, the caller's identity from its certificate
//!          │   ├─ HTTP (ALPN) ──────────────┐
//!          │   └─ opaque: authorization of the connection, then splice to the app
//!          ├─ plaintext: refused in strict mode, else unauthenticated
//!          │   ├─ HTTP (detected, or the port carries HTTP) ──┐
//!          │   └─ opaque: splice to the app
//!          └─ HTTP server (http.rs), per request:
//!              route → authorization → rate limit → fault drill (admission.rs)
//!               └─ identity headers, the caller's version (crate::http::headers)
//!                   └─ the app (crate::http::client::app: HTTP/1.1 pool, HTTP/2, upgrade)
//!                       → response, counted, traced and logged (crate::telemetry)
//! ```

mod admission;
mod app_target;
mod http;
mod port_policy;
mod refuse;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use weft_certs::SpiffeId;

use crate::discovery::Discovery;
use crate::http::client::app::AppClient;
use crate::http::server::HEADER_READ_TIMEOUT;
use crate::policy::server::InboundMode;
use crate::telemetry::Telemetry;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::metrics::connections::{Direction, TlsStatus, UNAUTHENTICATED};
use crate::tls::{TlsStore, alpn, classify, peer_identity};
use crate::transport::detect::{self, Protocol};
use crate::transport::port_protocol::HttpVersion;
use crate::transport::port_protocol::{self, Plan, PortProtocol};
use crate::transport::{
    ConnectionLimit, CountedIo, Listening, PrefixedIo, accept_draining, original_dst, splice,
};
use admission::Caller;

pub use app_target::ConnectTo;
pub use port_policy::PortPolicy;

pub struct Inbound {
    pub store: Arc<TlsStore>,
    pub mode: InboundMode,
    /// Where the app listens when connections arrive without an original destination (an
    /// intercepted connection goes where [`Self::connect_to`] says).
    pub app_addr: Option<SocketAddr>,
    /// Which address reaches the app behind an intercepted connection.
    pub connect_to: ConnectTo,
    pub detect_timeout: Duration,
    pub handshake_timeout: Duration,
    pub app: Arc<AppClient>,
    pub metrics: Arc<Metrics>,
    pub telemetry: Arc<Telemetry>,
    /// Where the server policy of each port comes from; `None` enforces nothing.
    pub discovery: Option<Arc<Discovery>>,
    /// `--inbound-max-connections`: connections past it are closed at once.
    pub connection_limit: ConnectionLimit,
    /// `--http-ports`: local ports that always carry HTTP, whatever discovery says.
    pub http_ports: Vec<u16>,
}

impl Inbound {
    pub async fn serve(self: Arc<Self>, listener: TcpListener, listening: Listening) {
        let stop = listening.draining();
        accept_draining(listener, "inbound", listening, move |tcp, client| {
            // Taken here, in the accept loop, so that the limit holds however fast callers come.
            let slot = self.connection_limit.try_acquire();
            let (inbound, stop) = (self.clone(), stop.clone());
            async move {
                let Some(_slot) = slot else {
                    return inbound.refuse_over_limit(tcp, client);
                };
                inbound.handle(tcp, client, stop).await
            }
        })
        .await
    }

    /// Closes a connection past `--inbound-max-connections` at once, so its caller fails fast.
    fn refuse_over_limit(&self, tcp: TcpStream, client: SocketAddr) {
        drop(tcp);
        self.refuse("connection_limit");
        self.connection_limit
            .warn_refused(client, "inbound", "--inbound-max-connections");
    }

    async fn handle(self: Arc<Self>, tcp: TcpStream, client: SocketAddr, stop: CancellationToken) {
        let orig = original_dst(&tcp);
        let intercepted = orig.map(|orig| self.connect_to.app_target(orig));
        let Some(target) = intercepted.or(self.app_addr) else {
            self.count_connection("refused");
            tracing::warn!(%client, "no app address: the connection was not redirected and --inbound-app-addr is not set");
            return;
        };
        // The address the caller dialled, as MeshService endpoints list it.
        let port_addr = orig.map(|o| o.0).or_else(|| tcp.local_addr().ok());
        let Some(policy) = self.port_policy(port_addr, client).await else {
            return;
        };
        let mode = policy.mtls().unwrap_or(self.mode);
        let port = self.port_protocol(&policy, port_addr);
        let wait = port.detect_wait(self.detect_timeout, HEADER_READ_TIMEOUT);
        let Some((protocol, io)) = detect::accepted(tcp, wait, "inbound", &self.metrics).await
        else {
            return;
        };
        let from_peer_proxy =
            matches!(&protocol, Protocol::Tls { alpn } if alpn::is_mesh(&as_slices(alpn)));
        if from_peer_proxy
            || (mode == InboundMode::Strict && matches!(protocol, Protocol::Tls { .. }))
        {
            return self
                .serve_mtls(io, client, target, policy, port, stop)
                .await;
        }
        if mode == InboundMode::Strict {
            self.refuse("plaintext");
            return refuse::plaintext(io, client, protocol).await;
        }
        let plan = port.plan(&protocol, io.prefix());
        if let Plan::Refuse(refusal) = plan {
            return self.refuse_before_request(io, client, refusal).await;
        }
        let io = self.counted(io, TlsStatus::Plaintext, UNAUTHENTICATED);
        // TLS the proxy does not terminate (the app's own) passes through.
        let secured = match protocol {
            Protocol::Tls { .. } => "passthrough",
            _ => "plaintext",
        };
        self.count_connection(secured);
        match plan {
            Plan::Http(version) => {
                let io = Box::new(io);
                http::serve(self, io, version, None, target, policy, stop).await
            }
            _ => self.forward_opaque(io, client, target, None, &policy).await,
        }
    }

    /// What the port `addr` carries: discovery's declaration, or `--http-ports`.
    fn port_protocol(&self, policy: &PortPolicy, addr: Option<SocketAddr>) -> PortProtocol {
        let declared = policy.protocol();
        match addr {
            Some(addr) => declared.with_flags(addr.port(), &[], &self.http_ports),
            None => declared,
        }
    }

    /// Closes a connection to an HTTP port that sent no parseable request head in time (`408`)
    /// or spoke something that is not HTTP, counted under the refusal's reason.
    async fn refuse_before_request<I: AsyncWrite + Unpin>(
        &self,
        io: I,
        client: SocketAddr,
        refusal: port_protocol::Refusal,
    ) {
        self.refuse(refusal.reason());
        self.metrics
            .proxy
            .proxy_errors
            .with_label_values(&["inbound", refusal.reason()])
            .inc();
        tracing::info!(%client, reason = refusal.reason(), "refused a connection to an HTTP port before any request");
        port_protocol::send_refusal(io, refusal).await;
    }

    /// The server policy of the port `addr`, waiting (bounded) for the control plane's first
    /// answer about a port not seen before. Without one in time the connection is served as
    /// without a server policy until the answer arrives (each request reads it afresh), so a
    /// control plane outage does not take down ports that had no traffic yet; it is logged and
    /// counted (`weft_inbound_policy_unknown_total`).
    async fn port_policy(
        &self,
        addr: Option<SocketAddr>,
        client: SocketAddr,
    ) -> Option<PortPolicy> {
        let (Some(discovery), Some(addr)) = (&self.discovery, addr) else {
            return Some(PortPolicy::none());
        };
        match discovery.inbound(addr).await {
            Ok(answer) => Some(PortPolicy::new(answer)),
            Err((answer, e)) => {
                self.metrics.proxy.inbound_policy_unknown.inc();
                tracing::warn!(%client, "serving a connection to {addr} without its server policy: {e}");
                Some(PortPolicy::new(answer))
            }
        }
    }

    async fn serve_mtls(
        self: Arc<Self>,
        io: PrefixedIo<TcpStream>,
        client: SocketAddr,
        target: SocketAddr,
        policy: PortPolicy,
        port: PortProtocol,
        stop: CancellationToken,
    ) {
        let Some(credentials) = self.store.current() else {
            self.refuse("no_certificate");
            tracing::warn!(%client, "refused a mesh connection: this proxy has no certificate yet");
            return;
        };
        let acceptor = TlsAcceptor::from(credentials.server_config());
        let handshake = acceptor.accept(io.reading_ahead());
        let tls = match tokio::time::timeout(self.handshake_timeout, handshake).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                let failure = classify(&e);
                self.refuse_handshake(client, failure.reason, &failure.detail);
                return;
            }
            Err(_) => {
                self.refuse_handshake(
                    client,
                    "timeout",
                    "the TLS handshake did not finish in time",
                );
                return;
            }
        };
        let identity = match peer_identity(tls.get_ref().1) {
            Ok(identity) => identity,
            Err(why) => {
                self.refuse_handshake(client, "no_identity", &why);
                return;
            }
        };
        self.count_connection("mtls");
        self.metrics.connections.handshake(Direction::Inbound);
        tracing::debug!(%client, %identity, "accepted mesh connection");
        let tls = self.counted(tls, TlsStatus::Mtls, &identity.to_string());
        let version = match tls.get_ref().get_ref().1.alpn_protocol() {
            Some(p) if p == alpn::MESH_H2 || p == b"h2" => Some(HttpVersion::Http2),
            Some(p) if p == alpn::MESH_HTTP1 || p == b"http/1.1" => Some(HttpVersion::Http1),
            _ => None,
        };
        let identity = Some(identity);
        match version {
            Some(version) => {
                let io = Box::new(tls);
                http::serve(self, io, version, identity, target, policy, stop).await
            }
            // An opaque stream from a peer whose own view of the port differs (a `--forward`
            // without discovery, its own `--opaque-ports`): on an HTTP port it is still parsed.
            None if port == PortProtocol::Http => {
                let mut tls = tls;
                let wait = port.detect_wait(self.detect_timeout, HEADER_READ_TIMEOUT);
                let Ok((protocol, prefix)) = detect::detect(&mut tls, wait).await else {
                    return;
                };
                let io = PrefixedIo::new(prefix, tls);
                match port.plan(&protocol, io.prefix()) {
                    Plan::Http(version) => {
                        let io = Box::new(io);
                        http::serve(self, io, version, identity, target, policy, stop).await
                    }
                    Plan::Refuse(refusal) => self.refuse_before_request(io, client, refusal).await,
                    // Never planned on an HTTP port; were it, the bytes would still not pass.
                    Plan::Opaque => {
                        let refusal = port_protocol::Refusal::NotHttp;
                        self.refuse_before_request(io, client, refusal).await
                    }
                }
            }
            None => {
                self.forward_opaque(tls, client, target, identity.as_ref(), &policy)
                    .await
            }
        }
    }

    /// Splices an opaque connection to the app, if the server policy admits its caller.
    async fn forward_opaque<I>(
        &self,
        io: I,
        client: SocketAddr,
        target: SocketAddr,
        identity: Option<&SpiffeId>,
        policy: &PortPolicy,
    ) where
        I: AsyncRead + AsyncWrite + Unpin,
    {
        if let Some(policy) = policy.current() {
            let label = client_label(identity);
            let identity = identity.map(ToString::to_string);
            let caller = Caller {
                identity: identity.as_deref(),
                label: &label,
            };
            if !admission::admit_connection(&policy, &caller, &self.metrics) {
                self.refuse("unauthorized");
                tracing::debug!(%client, "closed the opaque connection of {label}");
                return;
            }
        }
        match TcpStream::connect(target).await {
            Ok(app) => {
                let _ = app.set_nodelay(true);
                splice(io, app).await;
            }
            Err(e) => {
                self.metrics
                    .proxy
                    .proxy_errors
                    .with_label_values(&["inbound", "app_unreachable"])
                    .inc();
                tracing::warn!(%client, "cannot connect to the app at {target}: {e}");
            }
        }
    }

    /// Counts a connection refused before reaching the app.
    fn refuse(&self, reason: &str) {
        self.count_connection("refused");
        self.metrics
            .proxy
            .inbound_refused
            .with_label_values(&[reason])
            .inc();
    }

    fn refuse_handshake(&self, client: SocketAddr, reason: &'static str, detail: &str) {
        self.refuse("handshake");
        self.metrics
            .connections
            .tls_handshake_errors
            .with_label_values(&["inbound", reason])
            .inc();
        tracing::info!(%client, reason, "refused mesh connection: {detail}");
    }

    /// `io`, counted in `weft_tcp_*` as an inbound connection from `peer` until dropped.
    fn counted<I>(&self, io: I, tls: TlsStatus, peer: &str) -> CountedIo<I> {
        let connection = self
            .metrics
            .connections
            .opened(Direction::Inbound, tls, peer);
        CountedIo::new(io, connection)
    }

    fn count_connection(&self, tls: &str) {
        self.metrics
            .proxy
            .inbound_connections
            .with_label_values(&[tls])
            .inc();
    }
}

fn as_slices(protocols: &[Vec<u8>]) -> Vec<&[u8]> {
    protocols.iter().map(Vec::as_slice).collect()
}

/// The label for a caller in metrics and logs.
pub fn client_label(identity: Option<&SpiffeId>) -> String {
    identity
        .map(ToString::to_string)
        .unwrap_or_else(|| UNAUTHENTICATED.to_owned())
}

//! The gRPC port: a TCP accept loop that completes TLS handshakes off the accept path and hands
//! finished connections to tonic, which serves the identity and discovery services on them.
//!
//! Handshakes run in their own tasks with a deadline, so a client that connects and sends nothing
//! (or garbage) costs one task for a few seconds, is counted, and never delays anyone else.
//!
//! Every connection gets HTTP/2 keepalive PINGs (`--grpc-keepalive-interval`, answered within
//! `--grpc-keepalive-timeout`), so a proxy that vanished without closing (node lost, network
//! cut) has its connection and watches released within interval + timeout.
//!
//! The whole `weft.discovery.v1.Discovery` service needs the caller's mesh certificate: the
//! router authenticates each call ([`crate::discovery::caller`]) and refuses the others with
//! `UNAUTHENTICATED`, counted in `weft_discovery_refusals_total{reason}`.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service};
use tonic::server::NamedService;
use weft_api::discovery::discovery_server::DiscoveryServer;
use weft_api::identity::identity_server::IdentityServer;

use crate::discovery::{WatchService, caller};
use crate::identity_service::IdentityService;
use crate::metrics::Metrics;
use crate::peer;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How the gRPC port treats connections and callers.
#[derive(Debug, Clone)]
pub struct GrpcSettings {
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    /// Discovery callers must hold an identity of this trust domain.
    pub trust_domain: String,
}

pub async fn serve(
    listener: TcpListener,
    tls: TlsAcceptor,
    identity: IdentityService,
    discovery: WatchService,
    metrics: Arc<Metrics>,
    settings: GrpcSettings,
    stop: CancellationToken,
) {
    let (tx, rx) = mpsc::channel::<std::io::Result<TlsStream<TcpStream>>>(64);
    let accept_stop = stop.clone();
    let accept_metrics = metrics.clone();
    // Joined before `serve` returns: the listener is closed once shutdown is over, so a
    // control plane restarted on the same address can bind it.
    let accepting = tokio::spawn(async move {
        let metrics = accept_metrics;
        loop {
            let accepted = tokio::select! {
                _ = accept_stop.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!("accept failed on the gRPC port: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let (tls, tx, metrics) = (tls.clone(), tx.clone(), metrics.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => {
                        metrics.tls_handshake_errors.inc();
                        let why = handshake_failure(&e);
                        tracing::info!(%peer, "TLS handshake failed on the gRPC port: {why}");
                    }
                    Err(_) => {
                        metrics.tls_handshake_errors.inc();
                        tracing::info!(%peer, "TLS handshake timed out on the gRPC port");
                    }
                }
            });
        }
    });

    // Discovery streams end themselves on `stop`, so the graceful shutdown does not wait on them.
    let routes = Routes {
        identity: IdentityServer::new(identity),
        discovery: DiscoveryServer::new(discovery),
        trust_domain: Arc::from(settings.trust_domain.as_str()),
        metrics,
    };
    let result = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(settings.keepalive_interval))
        .http2_keepalive_timeout(Some(settings.keepalive_timeout))
        .serve_with_incoming_shutdown(routes, ReceiverStream::new(rx), stop.cancelled_owned())
        .await;
    if let Err(e) = result {
        tracing::error!("gRPC server stopped: {e}");
    }
    let _ = accepting.await;
}

/// The services of the gRPC port, chosen by the first segment of the request path
/// (`/weft.identity.v1.Identity/Certify`). tonic's own router would bring in axum for this.
#[derive(Clone)]
struct Routes {
    identity: IdentityServer<IdentityService>,
    discovery: DiscoveryServer<WatchService>,
    trust_domain: Arc<str>,
    metrics: Arc<Metrics>,
}

impl Service<http::Request<Body>> for Routes {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Generated tonic servers are always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let service = request
            .uri()
            .path()
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default();
        if service == IdentityServer::<IdentityService>::NAME {
            Box::pin(self.identity.call(request))
        } else if service == DiscoveryServer::<WatchService>::NAME {
            match caller::authenticate(request.extensions(), &self.trust_domain, SystemTime::now())
            {
                Ok(caller) => {
                    request.extensions_mut().insert(caller);
                    Box::pin(self.discovery.call(request))
                }
                Err(refusal) => {
                    self.metrics
                        .discovery_refusals
                        .with_label_values(&[refusal.reason()])
                        .inc();
                    let peer = peer::remote_addr(request.extensions());
                    tracing::info!(%peer, "refused a discovery call: {refusal}");
                    let status = tonic::Status::unauthenticated(refusal.to_string());
                    Box::pin(std::future::ready(Ok(status.into_http())))
                }
            }
        } else {
            let status = tonic::Status::unimplemented(format!("no service {service:?} here"));
            Box::pin(std::future::ready(Ok(status.into_http())))
        }
    }
}

/// A failed handshake in words. The usual one is a proxy refusing this control plane's
/// certificate: its `--trust-anchors` do not hold this control plane's CA.
fn handshake_failure(e: &std::io::Error) -> String {
    use rustls::AlertDescription as A;
    let alert = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .and_then(|tls| match tls {
            rustls::Error::AlertReceived(alert) => Some(*alert),
            _ => None,
        });
    match alert {
        Some(A::UnknownCA | A::BadCertificate) => {
            "the client does not trust this control plane's certificate (its --trust-anchors do not hold this control plane's CA)".to_owned()
        }
        _ => e.to_string(),
    }
}

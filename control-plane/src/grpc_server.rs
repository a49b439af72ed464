//! The gRPC port: a TCP accept loop that completes TLS handshakes off the accept path and hands
//! finished connections to tonic, which serves the identity and discovery services on them.
//!
//! Handshakes run in their own tasks with a deadline, so a client that connects and sends nothing
//! (or garbage) costs one task for a few seconds, is counted, and never delays anyone else.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

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

use crate::discovery::WatchService;
use crate::identity_service::IdentityService;
use crate::metrics::Metrics;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn serve(
    listener: TcpListener,
    tls: TlsAcceptor,
    identity: IdentityService,
    discovery: WatchService,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let (tx, rx) = mpsc::channel::<std::io::Result<TlsStream<TcpStream>>>(64);
    let accept_stop = stop.clone();
    tokio::spawn(async move {
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
                        tracing::info!(%peer, "TLS handshake failed on the gRPC port: {e}");
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
    };
    let result = tonic::transport::Server::builder()
        .serve_with_incoming_shutdown(routes, ReceiverStream::new(rx), stop.cancelled_owned())
        .await;
    if let Err(e) = result {
        tracing::error!("gRPC server stopped: {e}");
    }
}

/// The services of the gRPC port, chosen by the first segment of the request path
/// (`/weft.identity.v1.Identity/Certify`). tonic's own router would bring in axum for this.
#[derive(Clone)]
struct Routes {
    identity: IdentityServer<IdentityService>,
    discovery: DiscoveryServer<WatchService>,
}

impl Service<http::Request<Body>> for Routes {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Generated tonic servers are always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
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
            Box::pin(self.discovery.call(request))
        } else {
            let status = tonic::Status::unimplemented(format!("no service {service:?} here"));
            Box::pin(std::future::ready(Ok(status.into_http())))
        }
    }
}

/// The caller's address for logs. Connections arrive over TLS, so the TCP details sit inside the
/// TLS connect info.
pub fn peer_of<T>(request: &tonic::Request<T>) -> String {
    request
        .extensions()
        .get::<tonic::transport::server::TlsConnectInfo<tonic::transport::server::TcpConnectInfo>>()
        .and_then(|info| info.get_ref().remote_addr())
        .map(|a| a.to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}

//! The gRPC port: a TCP accept loop that completes TLS handshakes off the accept path and hands
//! finished connections to tonic.
//!
//! Handshakes run in their own tasks with a deadline, so a client that connects and sends nothing
//! (or garbage) costs one task for a few seconds, is counted, and never delays anyone else.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use weft_api::identity::identity_server::IdentityServer;

use crate::identity_service::IdentityService;
use crate::metrics::Metrics;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn serve(
    listener: TcpListener,
    tls: TlsAcceptor,
    identity: IdentityService,
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

    let result = tonic::transport::Server::builder()
        .serve_with_incoming_shutdown(
            IdentityServer::new(identity),
            ReceiverStream::new(rx),
            stop.cancelled_owned(),
        )
        .await;
    if let Err(e) = result {
        tracing::error!("gRPC server stopped: {e}");
    }
}

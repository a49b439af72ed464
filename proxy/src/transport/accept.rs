//! The accept loop every listener shares: accept until told to stop, turn off Nagle, and run each
//! connection in its own task, tracked so a drain can wait for it and dropped when it is cut
//! (see [`super::drain`]).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::drain::Listening;

/// Accepts on `listener` until `stop`, running `handle(stream, peer)` for each connection until
/// it ends or `stop` fires. For listeners outside the drain (the admin port).
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    what: &'static str,
    stop: CancellationToken,
    handle: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    accept_draining(listener, what, Listening::until(stop), handle).await
}

/// Accepts on `listener` until `listening` stops accepting, then drops (closes) the listener,
/// so new connections are refused. Each connection runs `handle(stream, peer)` until it ends or
/// is cut. Accept errors (such as running out of file descriptors) are logged and retried
/// shortly.
pub async fn accept_draining<F, Fut>(
    listener: TcpListener,
    what: &'static str,
    listening: Listening,
    handle: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let (tcp, peer) = tokio::select! {
            _ = listening.stop_accepting.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!("{what} accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        // Boxed: an async block keeps the slot of each future it captures even after moving it
        // into `select!`, so an unboxed connection future would take its size twice in every
        // connection's task (a task of 8.9 KiB instead of 4.4 for each app connection of the
        // client sidecar, 21 KiB instead of 10.5 for each peer connection of the inbound side).
        let connection = Box::pin(handle(tcp, peer));
        let cut = listening.cut.clone();
        listening.connections.spawn(async move {
            tokio::select! {
                _ = cut.cancelled() => {}
                _ = connection => {}
            }
        });
    }
}

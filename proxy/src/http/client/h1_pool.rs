//! Keep-alive HTTP/1.1 connections to the local app.
//!
//! An HTTP/1.1 connection carries one request at a time, so the pool keeps a stack of idle
//! connections per app address: a request takes the most recently used one (or opens a new one),
//! and the connection goes back on the stack when the response body is dropped, which hyper does
//! once the body has been sent on. A connection the app closed in the meantime is noticed before
//! use; a request that such a connection refused before sending is retried once on a new one.
//!
//! A connect runs in a task of its own: when the request that wanted it is gone by the time it
//! completes (its caller reset the stream, or hung up), the connection goes on the idle stack for
//! the next request, so a flood of requests cancelled at once leaves no connect to the app wasted
//! per request.
//!
//! A connection idle for [`IDLE_TIMEOUT`] is closed ([`H1Pool::close_idle`], run periodically, and
//! whenever a connection is checked in), so a burst of traffic does not leave hundreds of
//! connections open to the app for good.
//!
//! A pool of its own rather than hyper-util's general-purpose one: the proxy needs none of its
//! bookkeeping (checkout futures, keyed waiters, idle timers), which is paid on every request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::http::BoxError;
use crate::http::error::{ProxyError, error_chain};

/// Idle connections kept per app address; more are closed when their response is done. It must
/// not be below the concurrency the app sees: every connection over it is closed after one
/// response and a new one opened for the next, and a closed connection to the pod's own address
/// (the default `--inbound-connect-to`) waits in TIME_WAIT, which Linux reuses only for loopback
/// addresses (`tcp_tw_reuse = 2`), so with a lower cap a few hundred concurrent requests run out
/// of ephemeral ports and stall. Idle connections still close after [`IDLE_TIMEOUT`].
const MAX_IDLE_PER_TARGET: usize = 4096;

/// How long an unused connection to the app stays open.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection waiting for its next request, and since when.
struct Idle<B> {
    sender: SendRequest<B>,
    since: Instant,
}

pub struct H1Pool<B> {
    /// Per app address, the most recently used connection last.
    idle: Mutex<HashMap<SocketAddr, Vec<Idle<B>>>>,
    connect_timeout: Duration,
}

/// Puts a connection back in the pool when the response body that used it is dropped.
pub struct CheckIn<B> {
    sender: Option<SendRequest<B>>,
    pool: Weak<H1Pool<B>>,
    target: SocketAddr,
}

impl<B> std::fmt::Debug for CheckIn<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckIn")
            .field("target", &self.target)
            .finish()
    }
}

impl<B> Drop for CheckIn<B> {
    fn drop(&mut self) {
        if let (Some(sender), Some(pool)) = (self.sender.take(), self.pool.upgrade()) {
            pool.check_in(self.target, sender);
        }
    }
}

impl<B> H1Pool<B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    pub fn new(connect_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            idle: Mutex::new(HashMap::new()),
            connect_timeout,
        })
    }

    /// Sends `req` to the app at `target`; the response body returns the connection when dropped.
    pub async fn send(
        self: &Arc<Self>,
        target: SocketAddr,
        req: Request<B>,
    ) -> Result<(Response<Incoming>, CheckIn<B>), ProxyError> {
        let mut sender = self.sender(target).await?;
        let response = match sender.try_send_request(req).await {
            Ok(response) => response,
            Err(mut refused) => match refused.take_message() {
                // The app closed the connection before the request went out: a new one.
                Some(req) => {
                    sender = self.connect_detached(target).await?;
                    sender
                        .send_request(req)
                        .await
                        .map_err(|e| app_http_error(target, &e))?
                }
                None => return Err(app_http_error(target, &refused.into_error())),
            },
        };
        Ok(self.returning(target, sender, response))
    }

    fn returning(
        self: &Arc<Self>,
        target: SocketAddr,
        sender: SendRequest<B>,
        response: Response<Incoming>,
    ) -> (Response<Incoming>, CheckIn<B>) {
        let check_in = CheckIn {
            sender: Some(sender),
            pool: Arc::downgrade(self),
            target,
        };
        (response, check_in)
    }

    /// An idle connection that is ready for a request, or a new one.
    async fn sender(self: &Arc<Self>, target: SocketAddr) -> Result<SendRequest<B>, ProxyError> {
        while let Some(mut sender) = self.check_out(target) {
            if sender.is_ready() {
                return Ok(sender);
            }
            // Checked in as its response ended; the connection task may not have caught up.
            if sender.ready().await.is_ok() {
                return Ok(sender);
            }
        }
        self.connect_detached(target).await
    }

    /// A new connection, from a connect that finishes even if this caller gives up: the
    /// connection then waits on the idle stack for the next request.
    async fn connect_detached(
        self: &Arc<Self>,
        target: SocketAddr,
    ) -> Result<SendRequest<B>, ProxyError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let pool = self.clone();
        tokio::spawn(async move {
            if let Err(Ok(sender)) = tx.send(pool.connect(target).await) {
                pool.check_in(target, sender);
            }
        });
        rx.await.unwrap_or_else(|_| {
            Err(ProxyError::AppConnect {
                addr: target,
                detail: "the connect task ended".to_owned(),
            })
        })
    }

    async fn connect(&self, target: SocketAddr) -> Result<SendRequest<B>, ProxyError> {
        let connect_error = |detail: String| ProxyError::AppConnect {
            addr: target,
            detail,
        };
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(target))
            .await
            .map_err(|_| connect_error(format!("timed out after {:?}", self.connect_timeout)))?
            .map_err(|e| connect_error(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| app_http_error(target, &e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(app = %target, "app connection ended: {e}");
            }
        });
        Ok(sender)
    }
}

impl<B> H1Pool<B> {
    fn check_out(&self, target: SocketAddr) -> Option<SendRequest<B>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let stack = idle.get_mut(&target)?;
        while let Some(Idle { sender, since }) = stack.pop() {
            if !sender.is_closed() && since.elapsed() < IDLE_TIMEOUT {
                return Some(sender);
            }
        }
        None
    }

    fn check_in(&self, target: SocketAddr, sender: SendRequest<B>) {
        if sender.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let stack = idle.entry(target).or_default();
        // The least recently used are at the bottom: age them out as the stack turns over.
        if stack
            .first()
            .is_some_and(|oldest| now.duration_since(oldest.since) >= IDLE_TIMEOUT)
        {
            stack.retain(|c| now.duration_since(c.since) < IDLE_TIMEOUT);
        }
        if stack.len() < MAX_IDLE_PER_TARGET {
            stack.push(Idle { sender, since: now });
        }
    }

    /// Closes connections unused for [`IDLE_TIMEOUT`]; returns how many stay open.
    pub fn close_idle(&self) -> usize {
        self.close_idle_for(IDLE_TIMEOUT)
    }

    /// Closes connections unused for `longest`; returns how many stay open.
    fn close_idle_for(&self, longest: Duration) -> usize {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|_, stack| {
            stack.retain(|c| !c.sender.is_closed() && now.duration_since(c.since) < longest);
            !stack.is_empty()
        });
        idle.values().map(Vec::len).sum()
    }
}

fn app_http_error(target: SocketAddr, error: &hyper::Error) -> ProxyError {
    ProxyError::AppHttp {
        addr: target,
        detail: error_chain(error),
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::http::body::Body;

    #[tokio::test]
    async fn an_idle_connection_is_kept_then_closed() {
        let app = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = app.local_addr().unwrap();
        let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut tcp, _) = app.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0);
            tcp.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            // The next read ends when the pool closes the connection.
            let end = tcp.read(&mut buf).await.unwrap_or(0);
            let _ = closed_tx.send(end);
        });
        let pool = H1Pool::new(Duration::from_secs(1));
        let req = Request::get("/").body(crate::http::body::full("")).unwrap();
        let (response, check_in) = pool.send(target, req).await.unwrap();
        let response = response.map(|incoming| Body::Pooled(incoming, check_in));
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
        // The body is gone: the connection is back in the pool, and kept while young.
        assert_eq!(pool.close_idle_for(Duration::from_secs(3600)), 1);
        assert_eq!(pool.close_idle_for(Duration::ZERO), 0);
        let end = tokio::time::timeout(Duration::from_secs(5), closed_rx)
            .await
            .expect("the app saw its idle connection closed")
            .unwrap();
        assert_eq!(end, 0, "the app read end-of-stream");
    }
}

//! Keep-alive HTTP/1.1 connections to the local app, spoken with weft's own codec.
//!
//! An HTTP/1.1 connection carries one request at a time, so the pool keeps a stack of idle
//! connections per app address: a request takes the most recently used one (or opens a new one)
//! and runs its [`Exchange`] on it from the request's own task; the connection goes back on the
//! stack the moment both messages are complete ([`H1Response`] checks it in as the last byte of
//! the answer is read). An idle connection holds its socket and no buffer.
//!
//! A connection the app closed while it was idle is noticed before use. A request that such a
//! connection refused before any answer (the app timed it out as the request went out) is sent
//! once more on a new connection when that is safe: an idempotent method whose body has not
//! started.
//!
//! A connect runs in a task of its own: when the request that wanted it is gone by the time it
//! completes (its caller reset the stream, or hung up), the connection goes on the idle stack for
//! the next request, so a flood of requests cancelled at once leaves no connect to the app wasted
//! per request.
//!
//! A connection idle for [`IDLE_TIMEOUT`] is closed ([`H1Pool::close_idle`], run periodically, and
//! whenever a connection is checked in), so a burst of traffic does not leave hundreds of
//! connections open to the app for good.

pub mod exchange;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Frame, SizeHint};
use tokio::net::TcpStream;

use crate::http::BoxError;
use crate::http::error::ProxyError;
use crate::http::h1::Framing;
use crate::http::h1::head::ResponseHead;
use crate::http::spare_headers;
pub use exchange::Exchange;

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
    exchange: Box<Exchange<B>>,
    since: Instant,
}

pub struct H1Pool<B> {
    /// Per app address, the most recently used connection last.
    idle: Mutex<HashMap<SocketAddr, Vec<Idle<B>>>>,
    connect_timeout: Duration,
}

impl<B> H1Pool<B>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    pub fn new(connect_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            idle: Mutex::new(HashMap::new()),
            connect_timeout,
        })
    }

    /// Sends `req` to the app at `target`; the connection goes back to the pool once the answer
    /// has been read whole.
    pub async fn send(
        self: &Arc<Self>,
        target: SocketAddr,
        req: Request<B>,
    ) -> Result<Response<H1Response<B>>, ProxyError> {
        let (parts, body) = req.into_parts();
        let framing = request_framing(&parts, &body);
        let mut exchange = match self.check_out(target) {
            Some(exchange) => exchange,
            None => self.connect_detached(target).await?,
        };
        exchange.start(&parts, body, framing);
        let head = match std::future::poll_fn(|cx| exchange.poll_head(cx)).await {
            Ok(head) => head,
            Err(e) => match (exchange.stale(), exchange.take_unsent_body()) {
                (true, Some(body)) => {
                    exchange = self.connect_detached(target).await?;
                    exchange.start(&parts, body, framing);
                    std::future::poll_fn(|cx| exchange.poll_head(cx))
                        .await
                        .map_err(|e| app_http_error(target, &e))?
                }
                _ => return Err(app_http_error(target, &e)),
            },
        };
        spare_headers::give_back_map(parts.headers);
        Ok(self.answer(target, exchange, head))
    }

    fn answer(
        self: &Arc<Self>,
        target: SocketAddr,
        exchange: Box<Exchange<B>>,
        head: ResponseHead,
    ) -> Response<H1Response<B>> {
        let mut body = H1Response {
            exchange: Some(exchange),
            pool: Arc::downgrade(self),
            target,
        };
        body.check_in_if_done();
        head.into_response(body)
    }

    async fn connect_detached(
        self: &Arc<Self>,
        target: SocketAddr,
    ) -> Result<Box<Exchange<B>>, ProxyError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let pool = self.clone();
        tokio::spawn(async move {
            if let Err(Ok(mut exchange)) = tx.send(pool.connect(target).await) {
                exchange.reused = true;
                pool.check_in(target, exchange);
            }
        });
        rx.await.unwrap_or_else(|_| {
            Err(ProxyError::AppConnect {
                addr: target,
                detail: "the connect task ended".to_owned(),
            })
        })
    }

    async fn connect(&self, target: SocketAddr) -> Result<Box<Exchange<B>>, ProxyError> {
        let connect_error = |detail: String| ProxyError::AppConnect {
            addr: target,
            detail,
        };
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(target))
            .await
            .map_err(|_| connect_error(format!("timed out after {:?}", self.connect_timeout)))?
            .map_err(|e| connect_error(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        Ok(Box::new(Exchange::new(Box::new(tcp))))
    }
}

impl<B> H1Pool<B> {
    fn check_out(&self, target: SocketAddr) -> Option<Box<Exchange<B>>>
    where
        B: http_body::Body<Data = Bytes> + Unpin,
        B::Error: Into<BoxError>,
    {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let stack = idle.get_mut(&target)?;
        while let Some(Idle {
            mut exchange,
            since,
        }) = stack.pop()
        {
            if since.elapsed() < IDLE_TIMEOUT && !exchange.closed_while_idle() {
                return Some(exchange);
            }
        }
        None
    }

    fn check_in(&self, target: SocketAddr, exchange: Box<Exchange<B>>) {
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
            stack.push(Idle {
                exchange,
                since: now,
            });
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
            stack.retain(|c| now.duration_since(c.since) < longest);
            !stack.is_empty()
        });
        idle.values().map(Vec::len).sum()
    }
}

/// How a request body is framed for the app: no body, its exact length when known (from the
/// body, or the `Content-Length` the caller sent, which HTTP/2 holds the stream to), or chunked.
pub fn request_framing<B: http_body::Body>(parts: &http::request::Parts, body: &B) -> Framing {
    if body.is_end_stream() {
        return Framing::Empty;
    }
    let declared = || {
        parts
            .headers
            .get(http::header::CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .parse()
            .ok()
    };
    match body.size_hint().exact().or_else(declared) {
        Some(0) => Framing::Empty,
        Some(length) => Framing::Length(length),
        None => Framing::Chunked,
    }
}

/// The body of an answer from the app: read off its connection, which goes back to the pool
/// when the body is complete (or is closed if the body is dropped before).
pub struct H1Response<B> {
    exchange: Option<Box<Exchange<B>>>,
    pool: Weak<H1Pool<B>>,
    target: SocketAddr,
}

impl<B> H1Response<B> {
    /// The body of an answer on a connection that belongs to no pool (an upgrade's).
    pub fn unpooled(exchange: Box<Exchange<B>>, target: SocketAddr) -> Self {
        Self {
            exchange: Some(exchange),
            pool: Weak::new(),
            target,
        }
    }
}

impl<B> std::fmt::Debug for H1Response<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Response")
            .field("target", &self.target)
            .finish()
    }
}

impl<B> H1Response<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    fn check_in_if_done(&mut self) {
        let Some(mut exchange) = self.exchange.take_if(|e| e.is_end_stream()) else {
            return;
        };
        if let (true, Some(pool)) = (exchange.finish(), self.pool.upgrade()) {
            pool.check_in(self.target, exchange);
        }
    }
}

impl<B> http_body::Body for H1Response<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let Some(exchange) = this.exchange.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = exchange.poll_body(cx);
        match &frame {
            Poll::Ready(Some(Err(_))) => this.exchange = None,
            Poll::Ready(_) => this.check_in_if_done(),
            Poll::Pending => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.exchange.as_ref().is_none_or(|e| e.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.exchange
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |e| e.size_hint())
    }
}

fn app_http_error(target: SocketAddr, error: &BoxError) -> ProxyError {
    ProxyError::AppHttp {
        addr: target,
        detail: crate::http::error::error_chain(error.as_ref()),
    }
}

#[cfg(test)]
mod tests;

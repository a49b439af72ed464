//! The receiving proxy's clients for its own app on loopback.
//!
//! HTTP/1.x goes through a pool of keep-alive connections ([`H1Pool`]); HTTP/2 (gRPC) through a
//! multiplexed connection, which keeps the caller's `:authority` intact.
//!
//! The HTTP/2 connections are per caller: every inbound connection (a peer proxy's, or a
//! plaintext caller's) has its own ([`AppH2`]), closed when it closes, rather than all callers
//! sharing one. On a shared connection one caller could starve the others: streams it holds open
//! without reading their answers (a zero flow-control window) count against the app's
//! `MAX_CONCURRENT_STREAMS` and the connection's receive window, and a plaintext caller holding
//! 100 such streams made unrelated requests through the mesh time out. On a connection of its own
//! it only holds up itself, as it would talking to the app directly. A peer proxy's connection
//! carries the requests of every app of its pod, so the app sees one connection per calling pod.

use std::net::SocketAddr;
use std::time::Duration;

use std::sync::Arc;

use http::{Request, Response, Version};
use tokio::net::TcpStream;

use crate::http::body::Body;
use crate::http::client::h1_pool::H1Pool;
use crate::http::client::h2_pool::{Connector, H2Pool};
use crate::http::error::{ProxyError, error_chain};
use crate::http::upgrade;

/// Where the app listens.
#[derive(Debug, Clone)]
pub struct AppTarget {
    pub addr: SocketAddr,
}

impl AppTarget {
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr }
    }
}

pub struct AppClient {
    http1: Arc<H1Pool<Body>>,
    connect_timeout: Duration,
}

/// The HTTP/2 connections to the app of one inbound connection (see the module doc); they close
/// once it is dropped and their streams are done.
pub struct AppH2(H2Pool<AppConnector>);

impl AppClient {
    /// Closes idle HTTP/1.1 connections to the app every few seconds until `stop`.
    pub async fn close_idle_periodically(
        self: Arc<Self>,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(crate::http::client::h1_pool::IDLE_TIMEOUT / 3);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            self.http1.close_idle();
        }
    }

    pub fn new(connect_timeout: Duration) -> Self {
        Self {
            http1: H1Pool::new(connect_timeout),
            connect_timeout,
        }
    }

    /// HTTP/2 connections to the app for the requests of one inbound connection.
    pub fn h2_for_caller(&self) -> AppH2 {
        AppH2(H2Pool::new(AppConnector {
            connect_timeout: self.connect_timeout,
        }))
    }

    /// Sends `req` to the app at `target` in `version` (what the original client spoke); HTTP/2
    /// on the caller's own connections `h2`.
    pub async fn send(
        &self,
        target: &AppTarget,
        version: Version,
        mut req: Request<Body>,
        h2: &AppH2,
    ) -> Result<Response<Body>, ProxyError> {
        if version >= Version::HTTP_2 {
            *req.version_mut() = Version::HTTP_2;
            return h2.0.send(&target.addr, Box::new(req)).await;
        }
        // The encoder writes the target in origin form and the authority as `Host` if the
        // request has none (HTTP/1 servers expect that; some, like Python's http.server,
        // misread an absolute URI).
        *req.version_mut() = version;
        let response = self.http1.send(target.addr, req).await?;
        Ok(response.map(Body::H1))
    }

    /// Sends an HTTP/1.1 upgrade request on a connection of its own (see [`upgrade`]).
    pub async fn upgrade(
        &self,
        target: &AppTarget,
        mut req: Request<Body>,
        caller: upgrade::OnUpgrade,
    ) -> Result<Response<Body>, ProxyError> {
        *req.version_mut() = Version::HTTP_11;
        let connector = AppConnector {
            connect_timeout: self.connect_timeout,
        };
        let tcp = connector.connect(&target.addr).await?;
        upgrade::forward(Box::new(tcp), target.addr, req, caller)
            .await
            .map_err(|e| ProxyError::AppHttp {
                addr: target.addr,
                detail: error_chain(e.as_ref()),
            })
    }
}

struct AppConnector {
    connect_timeout: Duration,
}

impl Connector for AppConnector {
    type Key = SocketAddr;
    type Io = TcpStream;

    async fn connect(&self, addr: &SocketAddr) -> Result<TcpStream, ProxyError> {
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ProxyError::AppConnect {
                addr: *addr,
                detail: format!("timed out after {:?}", self.connect_timeout),
            })?
            .map_err(|e| ProxyError::AppConnect {
                addr: *addr,
                detail: e.to_string(),
            })?;
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }

    fn http_error(&self, addr: &SocketAddr, error: h2::Error) -> ProxyError {
        ProxyError::AppHttp {
            addr: *addr,
            detail: error_chain(&error),
        }
    }

    fn unreachable(
        &self,
        addr: &SocketAddr,
        _reason: &'static str,
        detail: String,
        retry_in: Duration,
    ) -> ProxyError {
        ProxyError::AppConnect {
            addr: *addr,
            detail: format!("{detail} (next connect in {retry_in:?})"),
        }
    }
}

//! The receiving proxy's clients for its own app on loopback.
//!
//! HTTP/1.x goes through a pool of keep-alive connections ([`H1Pool`]); HTTP/2 (gRPC) through one
//! multiplexed connection per app port, which keeps the caller's `:authority` intact.

use std::net::SocketAddr;
use std::time::Duration;

use std::sync::Arc;

use http::uri::Authority;
use http::{Request, Response, Version};
use tokio::net::TcpStream;

use crate::body::Body;
use crate::errors::ProxyError;
use crate::h1_pool::H1Pool;
use crate::headers;
use crate::pool::{Connector, H2Pool};

/// Where the app listens, with its address pre-parsed for request URIs.
#[derive(Debug, Clone)]
pub struct AppTarget {
    pub addr: SocketAddr,
    authority: Authority,
}

impl AppTarget {
    pub fn new(addr: SocketAddr) -> Self {
        // A socket address always formats as a valid authority.
        let authority = Authority::try_from(addr.to_string())
            .expect("a socket address is a valid URI authority");
        Self { addr, authority }
    }
}

pub struct AppClient {
    http1: Arc<H1Pool>,
    http2: H2Pool<AppConnector>,
}

impl AppClient {
    pub fn new(connect_timeout: Duration) -> Self {
        Self {
            http1: H1Pool::new(connect_timeout),
            http2: H2Pool::new(AppConnector { connect_timeout }),
        }
    }

    /// Sends `req` to the app at `target` in `version` (what the original client spoke).
    pub async fn send(
        &self,
        target: &AppTarget,
        version: Version,
        mut req: Request<Body>,
    ) -> Result<Response<Body>, ProxyError> {
        if version >= Version::HTTP_2 {
            *req.version_mut() = Version::HTTP_2;
            let response = self.http2.send(&target.addr, req).await?;
            return Ok(response.map(Body::Stream));
        }
        // The app sees the original Host header; the URI is only for the request line.
        *req.uri_mut() = headers::with_authority(req.uri().clone(), target.authority.clone())
            .map_err(|e| ProxyError::BadRequest(e.to_string()))?;
        *req.version_mut() = version;
        self.http1.send(target.addr, req).await
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

    fn http_error(&self, addr: &SocketAddr, error: hyper::Error) -> ProxyError {
        ProxyError::AppHttp {
            addr: *addr,
            detail: error_chain(&error),
        }
    }
}

/// An error and its causes on one line: hyper's top-level messages alone are vague.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

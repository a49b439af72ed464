//! The receiving proxy's clients for its own app on loopback.
//!
//! HTTP/1.x goes through hyper-util's pooled client (keep-alive connections, reused once a
//! response is finished); HTTP/2 (gRPC) through one multiplexed connection per app port, which
//! keeps the caller's `:authority` intact.

use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::net::TcpStream;

use crate::body::Body;
use crate::errors::ProxyError;
use crate::pool::{Connector, H2Pool};

const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

pub struct AppClient {
    http1: Client<HttpConnector, Body>,
    http2: H2Pool<AppConnector>,
}

impl AppClient {
    pub fn new(connect_timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(connect_timeout));
        let http1 = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Self {
            http1,
            http2: H2Pool::new(AppConnector { connect_timeout }),
        }
    }

    /// Sends `req` to the app at `target` in `version` (what the original client spoke).
    pub async fn send(
        &self,
        target: SocketAddr,
        version: Version,
        mut req: Request<Body>,
    ) -> Result<Response<Incoming>, ProxyError> {
        if version >= Version::HTTP_2 {
            *req.version_mut() = Version::HTTP_2;
            return self.http2.send(&target, req).await;
        }
        // The URI picks the pooled connection; the app sees the original Host header.
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        *req.uri_mut() = Uri::builder()
            .scheme("http")
            .authority(target.to_string())
            .path_and_query(path)
            .build()
            .map_err(|e| ProxyError::BadRequest(e.to_string()))?;
        *req.version_mut() = version;
        self.http1.request(req).await.map_err(|e| {
            if e.is_connect() {
                ProxyError::AppConnect {
                    addr: target,
                    detail: error_chain(&e),
                }
            } else {
                ProxyError::AppHttp {
                    addr: target,
                    detail: error_chain(&e),
                }
            }
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

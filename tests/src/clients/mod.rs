//! Clients that play the local app's part: plain HTTP/1.1 and HTTP/2 requests and raw bytes
//! ([`raw_exchange`]) here, background load in [`traffic`], and clients that break the rules on
//! purpose ([`raw_h2`] frame by frame, [`tls_probe`] with a missing, foreign or expired
//! certificate).

pub mod raw_h2;
pub mod tls_probe;
pub mod traffic;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response read to the end.
#[derive(Debug)]
pub struct Reply {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub async fn read(response: Response<Incoming>) -> Reply {
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("response body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// One HTTP/1.1 GET on a fresh connection to `addr`, with `Host: host`.
pub async fn get(addr: SocketAddr, path: &str, host: &str) -> Result<Reply, hyper::Error> {
    get_with_headers(addr, path, host, &[]).await
}

/// [`get`] with more request headers.
pub async fn get_with_headers(
    addr: SocketAddr,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
) -> Result<Reply, hyper::Error> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let mut req = Request::get(path).header("host", host);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(Empty::<Bytes>::new()).unwrap();
    Ok(read(sender.send_request(req).await?).await)
}

/// Writes `request` on a fresh connection to `addr` (ignoring a write the server cut short by
/// closing) and reads until the server closes, or `within` passes: what a client that breaks
/// the rules, or pipelines, receives.
pub async fn raw_exchange(addr: SocketAddr, request: Vec<u8>, within: Duration) -> String {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut read, mut write) = tcp.into_split();
    let writer = tokio::spawn(async move {
        let _ = write.write_all(&request).await;
        write
    });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(within, read.read_to_end(&mut answer)).await;
    drop(writer.await);
    String::from_utf8_lossy(&answer).into_owned()
}

/// A keep-alive HTTP/1.1 client, as an app would use.
pub fn keep_alive_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An HTTP/2 (prior knowledge) connection to `addr`, without Nagle as gRPC clients connect (a
/// request's HEADERS and DATA frames leave at once), sending bodies of type `B`.
pub async fn h2<B>(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<B>
where
    B: hyper::body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("TCP_NODELAY");
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    sender
}

pub fn h2_get(
    authority: &str,
    path: &str,
) -> Request<http_body_util::combinators::BoxBody<Bytes, hyper::Error>> {
    Request::get(format!("http://{authority}{path}"))
        .version(Version::HTTP_2)
        .body(
            Empty::<Bytes>::new()
                .map_err(|never| match never {})
                .boxed(),
        )
        .unwrap()
}

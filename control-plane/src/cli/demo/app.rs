//! The demo's app: answers every request and says which caller identity its sidecar vouched for.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub async fn start() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|req: Request<Incoming>| async move {
                    let caller = req
                        .headers()
                        .get("weft-client-identity")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("(unauthenticated)")
                        .to_owned();
                    let response = Response::builder()
                        .header("x-caller-identity", caller.as_str())
                        .body(Full::new(Bytes::from(format!("hello, {caller}\n"))))
                        .expect("valid response");
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

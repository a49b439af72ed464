//! The pool against a raw socket app: what it keeps, and when it lets go.

use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::http::body::Body;
use crate::http::write_count::WriteCounted;

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
    let response = pool.send(target, req).await.unwrap();
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

/// A request body that is ready when the exchange starts (an upload that came with its head)
/// leaves with the head, in one write: one system call, and the app reads it whole.
#[tokio::test]
async fn a_head_and_the_body_ready_with_it_leave_in_one_write() {
    let (near, mut app) = tokio::io::duplex(64 * 1024);
    let (io, writes) = WriteCounted::new(near);
    let mut exchange: Exchange<Body> = Exchange::new(Box::new(io));
    let (parts, body) = Request::post("/upload")
        .body(crate::http::body::full("hello"))
        .unwrap()
        .into_parts();
    let framing = request_framing(&parts, &body);
    assert_eq!(framing, Framing::Length(5));
    exchange.start(&parts, body, framing);
    // Polled once: the request goes out, and the exchange waits for the answer.
    let waits = std::future::poll_fn(|cx| Poll::Ready(exchange.poll_head(cx).is_pending())).await;
    assert!(waits, "no answer yet");
    assert_eq!(writes.get(), 1, "the head and the body in one write");
    let mut got = vec![0u8; 4096];
    let n = app.read(&mut got).await.unwrap();
    let got = String::from_utf8_lossy(&got[..n]);
    assert!(got.starts_with("POST /upload HTTP/1.1\r\n"), "{got}");
    assert!(got.ends_with("\r\n\r\nhello"), "{got}");
}

//! One caller cannot starve the others on the server sidecar's HTTP/2 connections to its app.
//!
//! A plaintext HTTP/2 caller opens many streams to an HTTP/2 app with a small
//! `MAX_CONCURRENT_STREAMS` and never reads their answers (its flow-control window is 0): the
//! streams stay open at the app, and their unread answers fill the receive window of the
//! connection they travel on. When every caller shared one connection to the app, unrelated
//! requests through the mesh queued behind them and timed out; each caller now has its own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use weft_tests::mesh::Sidecars;
use weft_tests::{Mesh, clients, clients::raw_h2, wait};

const HOUR: Duration = Duration::from_secs(3600);
/// The app's `SETTINGS_MAX_CONCURRENT_STREAMS`.
const APP_STREAMS: u32 = 10;
/// Streams the attacker holds open, ten times what the app allows on a connection.
const HELD: u32 = 100;
/// Unrelated requests through the mesh while the attacker holds its streams.
const UNRELATED: usize = 19;
/// Far above what an unrelated request takes on an idle loopback mesh.
const EACH_WITHIN: Duration = Duration::from_secs(5);
/// More than a connection's receive window at the server sidecar takes in.
const BIG: usize = 2 * 1024 * 1024;

/// An HTTP/2-only (prior knowledge) app: `/big` answers [`BIG`] bytes, anything else `ok`.
/// Counts the `/big` requests it received.
async fn h2_app() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let big_requests = Arc::new(AtomicUsize::new(0));
    let counter = big_requests.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let counter = counter.clone();
                    async move {
                        let body = if req.uri().path() == "/big" {
                            counter.fetch_add(1, Ordering::SeqCst);
                            Bytes::from(vec![b'x'; BIG])
                        } else {
                            Bytes::from_static(b"ok")
                        };
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(body)))
                    }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .max_concurrent_streams(APP_STREAMS)
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    (addr, big_requests)
}

#[tokio::test]
async fn a_caller_holding_streams_without_reading_does_not_starve_others() {
    let mesh = Mesh::start(HOUR).await;
    let (app, big_requests) = h2_app().await;
    let Sidecars { client, server } = mesh.sidecars("web", "hello", app).await;

    // The attacker: plaintext HTTP/2 to the server sidecar's inbound listener (permissive), a
    // window of 0, and HELD streams asking for a big answer. It reads what comes (so the
    // server's writes never block) and never opens its window.
    let mut attacker = TcpStream::connect(server.inbound_addr).await.unwrap();
    let mut flood = raw_h2::PREFACE.to_vec();
    flood.extend(raw_h2::settings_initial_window(0));
    for i in 0..HELD {
        flood.extend(raw_h2::get_path(2 * i + 1, "hello.demo:8080", "/big"));
    }
    attacker.write_all(&flood).await.unwrap();
    let (mut reader, _writer) = attacker.into_split();
    tokio::spawn(async move { while let Ok(Some(_)) = raw_h2::read_frame(&mut reader).await {} });
    wait::until(
        Duration::from_secs(10),
        "the app to take up as many of the attacker's streams as it allows",
        || async { (big_requests.load(Ordering::SeqCst) >= APP_STREAMS as usize).then_some(()) },
    )
    .await;

    // Unrelated HTTP/2 requests through the mesh, all at once, each given EACH_WITHIN.
    let h2 = clients::h2(client.forward_addrs[0]).await;
    let requests: Vec<_> = (0..UNRELATED)
        .map(|_| {
            let mut h2 = h2.clone();
            tokio::spawn(async move {
                let exchange = async {
                    let response = h2
                        .send_request(clients::h2_get("hello.demo:8080", "/small"))
                        .await
                        .map_err(|e| e.to_string())?;
                    let status = response.status();
                    let body = response.into_body().collect().await;
                    let body = body.map_err(|e| e.to_string())?.to_bytes();
                    Ok::<_, String>((status, body))
                };
                tokio::time::timeout(EACH_WITHIN, exchange).await
            })
        })
        .collect();
    let mut failed = Vec::new();
    for (n, request) in requests.into_iter().enumerate() {
        match request.await.unwrap() {
            Ok(Ok((status, body))) if status == 200 && &body[..] == b"ok" => {}
            Ok(Ok((status, body))) => failed.push(format!("{n}: {status} {body:?}")),
            Ok(Err(e)) => failed.push(format!("{n}: {e}")),
            Err(_) => failed.push(format!("{n}: no answer within {EACH_WITHIN:?}")),
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {UNRELATED} unrelated requests failed while one caller held {HELD} streams: {failed:?}",
        failed.len()
    );
}

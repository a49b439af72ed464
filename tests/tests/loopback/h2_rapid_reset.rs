//! HTTP/2 "rapid reset" floods (streams opened and cancelled at once, faster than the server takes
//! them up): only a peer proxy, proven by its mesh certificate, may reset many streams on one
//! connection; plaintext callers and the local app keep h2's strict limit (20) and are sent
//! `GOAWAY` with `ENHANCE_YOUR_CALM`, which is counted. A peer's allowance is higher, not
//! unlimited: a longer flood ends the same way.
//!
//! h2 counts a reset only for a stream still waiting to be taken up by the server, so the short
//! floods go out in one write: the server reads it in one go, before it takes up any stream.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use weft_proxy::RunningProxy;
use weft_proxy::tls::alpn;
use weft_tests::apps::fault_app::FaultApp;
use weft_tests::clients::raw_h2::{self, ENHANCE_YOUR_CALM, Ending};
use weft_tests::mesh::Sidecars;
use weft_tests::wait;
use weft_tests::{Mesh, ProxyOptions};

const HOUR: Duration = Duration::from_secs(3600);
/// Well above h2's default limit (20), well below a peer proxy's (1024).
const RESETS: u32 = 100;
const DEADLINE: Duration = Duration::from_secs(10);

async fn too_many_resets(proxy: &RunningProxy, direction: &str) -> u64 {
    proxy
        .metrics
        .proxy
        .proxy_errors
        .with_label_values(&[direction, "too_many_resets"])
        .get()
}

/// Waits for the refusal to be counted (the count follows the connection's end).
async fn wait_counted(proxy: &RunningProxy, direction: &str) {
    wait::until(DEADLINE, "the refusal to be counted", || async {
        (too_many_resets(proxy, direction).await == 1).then_some(())
    })
    .await
}

#[tokio::test]
async fn a_plaintext_caller_flooding_resets_is_sent_goaway() {
    let mesh = Mesh::start(HOUR).await;
    let app = FaultApp::start("hello").await;
    let server = mesh.proxy("hello", ProxyOptions::app(app.addr)).await;

    let mut tcp = TcpStream::connect(server.inbound_addr).await.unwrap();
    let (flood, last) = raw_h2::rapid_reset_then_get(RESETS, "hello.demo:8080");
    tcp.write_all(&flood).await.unwrap();
    let ending = raw_h2::ending(&mut tcp, last, DEADLINE).await;
    assert!(
        matches!(
            ending,
            Ending::GoAway {
                code: ENHANCE_YOUR_CALM,
                ..
            }
        ),
        "{ending:?}"
    );
    wait_counted(&server, "inbound").await;
}

#[tokio::test]
async fn a_peer_proxy_may_reset_as_many_streams() {
    let mesh = Mesh::start(HOUR).await;
    let app = FaultApp::start("hello").await;
    let server = mesh.proxy("hello", ProxyOptions::app(app.addr)).await;

    let mut tls = mesh
        .connect_as("web", server.inbound_addr, "hello", alpn::MESH_H2)
        .await;
    let (flood, last) = raw_h2::rapid_reset_then_get(RESETS, "hello.demo:8080");
    tls.write_all(&flood).await.unwrap();
    tls.flush().await.unwrap();
    let ending = raw_h2::ending(&mut tls, last, DEADLINE).await;
    assert_eq!(ending, Ending::Answered { status: 200 });
    assert_eq!(too_many_resets(&server, "inbound").await, 0);
}

#[tokio::test]
async fn the_local_app_flooding_resets_is_sent_goaway() {
    let mesh = Mesh::start(HOUR).await;
    let app = FaultApp::start("hello").await;
    let Sidecars {
        client,
        server: _server,
    } = mesh.sidecars("web", "hello", app.addr).await;

    let mut tcp = TcpStream::connect(client.forward_addrs[0]).await.unwrap();
    let (flood, last) = raw_h2::rapid_reset_then_get(RESETS, "hello.demo:8080");
    tcp.write_all(&flood).await.unwrap();
    let ending = raw_h2::ending(&mut tcp, last, DEADLINE).await;
    assert!(
        matches!(
            ending,
            Ending::GoAway {
                code: ENHANCE_YOUR_CALM,
                ..
            }
        ),
        "{ending:?}"
    );
    wait_counted(&client, "outbound").await;
}

/// An app that answers every request at once, without reading its body (as nginx does for
/// `return 200`, or any server refusing an upload early).
async fn early_answering_app() -> std::net::SocketAddr {
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                        bytes::Bytes::from_static(b"early\n"),
                    )))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    addr
}

/// When the app answers before it has read the request body, the server sidecar ends the stream
/// (`RST_STREAM NO_ERROR`) while the rest of the body may still be on its way from the peer
/// proxy. Those late frames are no fault of the peer: h2 remembers only the last 50 reset streams
/// and used to count every later one as an error, closing the connection after 1,024 over its
/// whole life (`GOAWAY ENHANCE_YOUR_CALM`), which failed every request multiplexed on it
/// (tests/bench/pods.sh's POST scenario: tens of thousands of 502 and 503 in ten seconds).
#[tokio::test]
async fn a_peer_proxys_body_arriving_after_the_answer_never_closes_the_connection() {
    // Batches of streams: each batch is answered and reset within a second, more than h2 keeps
    // track of (50), and the batches together bring more late frames than its old limit (1,024).
    const BATCHES: u32 = 30;
    const BATCH: u32 = 100;
    let mesh = Mesh::start(HOUR).await;
    let app = early_answering_app().await;
    let server = mesh.proxy("hello", ProxyOptions::app(app)).await;

    let mut tls = mesh
        .connect_as("web", server.inbound_addr, "hello", alpn::MESH_H2)
        .await;
    let mut start = raw_h2::PREFACE.to_vec();
    start.extend(raw_h2::frame(raw_h2::SETTINGS, 0, 0, &[]));
    tls.write_all(&start).await.unwrap();
    for batch in 0..BATCHES {
        let streams: Vec<u32> = (0..BATCH).map(|i| 2 * (batch * BATCH + i) + 1).collect();
        let posts: Vec<u8> = streams
            .iter()
            .flat_map(|&stream| raw_h2::post(stream, "hello.demo:8080"))
            .collect();
        tls.write_all(&posts).await.unwrap();
        tls.flush().await.unwrap();
        // Every stream answered, then reset by the server: its body has not been sent.
        let mut open = streams.len();
        let resets = async {
            while open > 0 {
                match raw_h2::read_frame(&mut tls).await.unwrap() {
                    Some(f) if f.kind == raw_h2::RST_STREAM => open -= 1,
                    Some(f) if f.kind == raw_h2::GOAWAY => {
                        panic!(
                            "GOAWAY in batch {batch}: {:?}",
                            String::from_utf8_lossy(&f.payload)
                        )
                    }
                    Some(_) => {}
                    None => panic!("the connection closed in batch {batch}"),
                }
            }
        };
        tokio::time::timeout(DEADLINE, resets)
            .await
            .unwrap_or_else(|_| {
                panic!("batch {batch}: not every stream was reset in {DEADLINE:?}")
            });
        // The bodies, late.
        let late: Vec<u8> = streams
            .iter()
            .flat_map(|&stream| raw_h2::last_data(stream, b"late body"))
            .collect();
        tls.write_all(&late).await.unwrap();
    }
    let last = 2 * BATCHES * BATCH + 1;
    tls.write_all(&raw_h2::get(last, "hello.demo:8080"))
        .await
        .unwrap();
    tls.flush().await.unwrap();
    assert_eq!(
        raw_h2::ending(&mut tls, last, DEADLINE).await,
        Ending::Answered { status: 200 }
    );
    assert_eq!(too_many_resets(&server, "inbound").await, 0);
}

/// An HTTP/1.1 + HTTP/2 app answering `ok`, counting the TCP connections it accepted and the
/// requests it received.
async fn counting_app() -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (connections, received) = (accepted.clone(), requests.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            connections.fetch_add(1, Ordering::SeqCst);
            let received = received.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_req| {
                    received.fetch_add(1, Ordering::SeqCst);
                    async {
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            bytes::Bytes::from_static(b"ok\n"),
                        )))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    (addr, accepted, requests)
}

/// A peer proxy's higher allowance is not unlimited: 10,000 streams opened and reset on one
/// connection, a small batch every other millisecond and their resets a millisecond later (so
/// that they do not pile up before the server takes them up, which is all h2's own limit counts;
/// a peer met no limit at that pace),
/// end in `GOAWAY ENHANCE_YOUR_CALM`, counted. And the streams reset before their request reached
/// the app leave no connect to the app behind each: the app sees at most one connection per
/// request it received (an HTTP/1.1 connection whose request was abandoned is not reused), and
/// two more.
async fn a_peer_flooding_resets_is_cut_off(header: Option<(&'static str, &'static str)>) {
    const FLOOD: u32 = 10_000;
    const BATCH: u32 = 10;
    const PACE: Duration = Duration::from_millis(1);
    const SPARE_CONNECTS: usize = 2;
    let mesh = Mesh::start(HOUR).await;
    let (app, accepted, received) = counting_app().await;
    let server = mesh.proxy("hello", ProxyOptions::app(app)).await;
    let request = move |stream: u32| match header {
        Some((name, value)) => raw_h2::get_with_header(stream, "hello.demo:8080", name, value),
        None => raw_h2::get(stream, "hello.demo:8080"),
    };

    let tls = mesh
        .connect_as("web", server.inbound_addr, "hello", alpn::MESH_H2)
        .await;
    let (mut reader, mut writer) = tokio::io::split(tls);
    let mut start = raw_h2::PREFACE.to_vec();
    start.extend(raw_h2::frame(raw_h2::SETTINGS, 0, 0, &[]));
    writer.write_all(&start).await.unwrap();
    // The flood, until the server's GOAWAY (a write after it could reset the connection before
    // the GOAWAY is read); then one more GET, answered only if the server still serves.
    let stopped = Arc::new(AtomicBool::new(false));
    let stop_writing = stopped.clone();
    let flooding = tokio::spawn(async move {
        let mut sent = 0;
        while sent < FLOOD && !stop_writing.load(Ordering::SeqCst) {
            // Each batch's streams, then their resets: streams taken up before their reset came
            // have started their requests (and maybe a connect to the app).
            let streams: Vec<u32> = (sent..sent + BATCH).map(|i| 2 * i + 1).collect();
            let opened: Vec<u8> = streams.iter().flat_map(|&s| request(s)).collect();
            let reset: Vec<u8> = streams
                .iter()
                .flat_map(|&s| raw_h2::rst_stream(s, raw_h2::CANCEL))
                .collect();
            let mut failed = false;
            for frames in [opened, reset] {
                failed = failed
                    || writer.write_all(&frames).await.is_err()
                    || writer.flush().await.is_err();
                tokio::time::sleep(PACE).await;
            }
            if failed {
                break;
            }
            sent += BATCH;
        }
        if !stop_writing.load(Ordering::SeqCst) {
            let _ = writer.write_all(&request(2 * FLOOD + 1)).await;
            let _ = writer.flush().await;
        }
        (sent, writer)
    });
    let ending = raw_h2::ending(&mut reader, 2 * FLOOD + 1, Duration::from_secs(30)).await;
    stopped.store(true, Ordering::SeqCst);
    let (sent, _writer) = flooding.await.unwrap();
    let (connects, requests) = (
        accepted.load(Ordering::SeqCst),
        received.load(Ordering::SeqCst),
    );
    let app_saw =
        format!("the app accepted {connects} TCP connections and received {requests} requests");
    assert!(
        matches!(
            ending,
            Ending::GoAway {
                code: ENHANCE_YOUR_CALM,
                ..
            }
        ),
        "after {sent} streams opened and reset ({app_saw}): {ending:?}"
    );
    wait_counted(&server, "inbound").await;
    assert!(
        connects <= requests + SPARE_CONNECTS,
        "{app_saw} for {sent} streams reset by the peer"
    );
}

/// The app gets the requests in HTTP/2, as the peer's own caller spoke it: all on one connection.
#[tokio::test]
async fn a_peer_proxy_flooding_resets_is_sent_goaway_and_costs_an_http2_app_no_connect_per_stream()
{
    a_peer_flooding_resets_is_cut_off(None).await;
}

/// The app gets the requests in HTTP/1.1 (the peer says its caller spoke it): a connection per
/// request in flight.
#[tokio::test]
async fn a_peer_proxy_flooding_resets_is_sent_goaway_and_costs_an_http1_app_no_connect_per_stream()
{
    a_peer_flooding_resets_is_cut_off(Some(("weft-orig-proto", "HTTP/1.1"))).await;
}

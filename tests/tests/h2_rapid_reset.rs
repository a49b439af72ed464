//! HTTP/2 "rapid reset" floods (streams opened and cancelled at once, faster than the server takes
//! them up): only a peer proxy, proven by its mesh certificate, may reset many streams on one
//! connection; plaintext callers and the local app keep hyper's strict limit (20) and are sent
//! `GOAWAY` with `ENHANCE_YOUR_CALM`, which is counted.
//!
//! h2 counts a reset only for a stream still waiting to be taken up by the server, so the whole
//! flood goes out in one write: the server reads it in one go, before it takes up any stream.

#![allow(clippy::unwrap_used)] // a failed step fails the test, with its message

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use weft_proxy::RunningProxy;
use weft_proxy::tls::alpn;
use weft_tests::fault_app::FaultApp;
use weft_tests::mesh::Sidecars;
use weft_tests::raw_h2::{self, ENHANCE_YOUR_CALM, Ending};
use weft_tests::wait;
use weft_tests::{Mesh, ProxyOptions};

const HOUR: Duration = Duration::from_secs(3600);
/// Well above hyper's default limit (20), well below a peer proxy's (1024).
const RESETS: u32 = 100;
const DEADLINE: Duration = Duration::from_secs(10);

async fn too_many_resets(proxy: &RunningProxy, direction: &str) -> u64 {
    proxy
        .metrics
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
    assert_eq!(ending, Ending::Answered);
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

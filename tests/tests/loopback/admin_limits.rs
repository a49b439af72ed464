//! The admin server's limits, on real loopback sockets against an in-process `Admin` with short
//! timeouts: a slow request head, an idle kept-alive connection and a stalled request body are
//! closed and counted; `PUT /log-level` is refused from outside loopback.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use weft_certs::CertificateAuthority;
use weft_proxy::admin::{Admin, LogLevelSetter};
use weft_proxy::telemetry::metrics::Metrics;
use weft_proxy::telemetry::tap::TapHub;
use weft_proxy::tls::TlsStore;
use weft_tests::mesh::identity;

const SHORT: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(60);
const DEADLINE: Duration = Duration::from_secs(5);

/// An admin server with the given timeouts, and the log levels its setter was given.
struct Running {
    admin: Arc<Admin>,
    addr: SocketAddr,
    levels: Arc<Mutex<Vec<String>>>,
    _stop: tokio_util::sync::DropGuard,
}

async fn start(header_read_timeout: Duration, stall_timeout: Duration) -> Running {
    let ca = CertificateAuthority::generate("cluster.local", Duration::from_secs(3600)).unwrap();
    let store = TlsStore::new(
        identity("web"),
        ca.trust_bundle().clone(),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .unwrap();
    let levels = Arc::new(Mutex::new(Vec::new()));
    let recorded = levels.clone();
    let setter: LogLevelSetter = Arc::new(move |level: &str| {
        recorded.lock().unwrap().push(level.to_owned());
        Ok(())
    });
    let metrics = Arc::new(Metrics::new());
    let admin = Arc::new(Admin {
        store: Arc::new(store),
        tap: Arc::new(TapHub::new(metrics.tap.clone())),
        tap_allow: Vec::new(),
        metrics,
        config: serde_json::json!({}),
        forwards: Vec::new(),
        discovery: None,
        log_level: Some((setter, Mutex::new("info".to_owned()))),
        header_read_timeout,
        stall_timeout,
        draining: CancellationToken::new(),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(admin.clone().serve(listener, stop.clone()));
    Running {
        admin,
        addr,
        levels,
        _stop: stop.drop_guard(),
    }
}

impl Running {
    fn closed(&self, reason: &str) -> u64 {
        self.admin
            .metrics
            .admin
            .connections_closed
            .with_label_values(&[reason])
            .get()
    }
}

/// Reads until the server closes the connection; returns everything read and when it closed.
async fn read_to_close(tcp: &mut TcpStream) -> (String, Instant) {
    let mut all = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(DEADLINE, read)
        .await
        .expect("the server closes the connection");
    (String::from_utf8_lossy(&all).into_owned(), Instant::now())
}

/// Reads until `wanted` has arrived.
async fn read_until(tcp: &mut TcpStream, wanted: &str) -> String {
    let mut all = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&all).contains(wanted) {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "closed before {wanted:?}: {}",
                String::from_utf8_lossy(&all)
            );
            all.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(DEADLINE, read)
        .await
        .unwrap_or_else(|_| panic!("no {wanted:?} in {DEADLINE:?}"));
    String::from_utf8_lossy(&all).into_owned()
}

#[tokio::test]
async fn a_request_head_sent_too_slowly_is_closed_after_the_header_timeout() {
    let admin = start(SHORT, LONG).await;
    let mut tcp = TcpStream::connect(admin.addr).await.unwrap();
    let connected = Instant::now();
    tcp.write_all(b"GET /live HTTP/1.1\r\nhost: admin\r\n")
        .await
        .unwrap();
    let (answer, closed) = read_to_close(&mut tcp).await;
    assert_eq!(answer, "", "no answer to half a head");
    let after = closed - connected;
    assert!(after >= SHORT - SHORT / 4, "closed after {after:?}");
    assert_eq!(admin.closed("header_timeout"), 1);
    assert_eq!(admin.closed("idle"), 0);

    // A whole head in time is answered.
    let mut tcp = TcpStream::connect(admin.addr).await.unwrap();
    tcp.write_all(b"GET /live HTTP/1.1\r\nhost: admin\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until(&mut tcp, "live\n").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_header_timeout() {
    let admin = start(SHORT, LONG).await;
    let mut tcp = TcpStream::connect(admin.addr).await.unwrap();
    tcp.write_all(b"GET /live HTTP/1.1\r\nhost: admin\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until(&mut tcp, "live\n").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let answered = Instant::now();
    let (more, closed) = read_to_close(&mut tcp).await;
    assert_eq!(more, "");
    let after = closed - answered;
    assert!(after >= SHORT / 2, "closed after {after:?}");
    assert_eq!(admin.closed("idle"), 1);

    // A connection that never sends a request is idle too.
    let mut tcp = TcpStream::connect(admin.addr).await.unwrap();
    let (answer, _) = read_to_close(&mut tcp).await;
    assert_eq!(answer, "");
    assert_eq!(admin.closed("idle"), 2);
    assert_eq!(admin.closed("header_timeout"), 0);
}

#[tokio::test]
async fn a_request_body_that_stops_coming_is_closed_after_the_stall_timeout() {
    let admin = start(LONG, SHORT).await;
    let mut tcp = TcpStream::connect(admin.addr).await.unwrap();
    tcp.write_all(b"PUT /log-level HTTP/1.1\r\nhost: admin\r\ncontent-length: 5\r\n\r\nde")
        .await
        .unwrap();
    let sent = Instant::now();
    let (answer, closed) = read_to_close(&mut tcp).await;
    assert_eq!(answer, "", "no answer to half a body");
    let after = closed - sent;
    assert!(after >= SHORT - SHORT / 4, "closed after {after:?}");
    assert_eq!(admin.closed("stalled"), 1);
    assert!(admin.levels.lock().unwrap().is_empty());
}

#[tokio::test]
async fn put_log_level_is_refused_from_outside_loopback() {
    let admin = start(LONG, LONG).await;
    let put = b"PUT /log-level HTTP/1.1\r\nhost: admin\r\ncontent-length: 5\r\n\r\ndebug";

    // The same bytes on a real socket, served as if they came from the pod network: every
    // 127/8 address is loopback, so the peer address is what the test chooses.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut tcp = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (accepted, _) = listener.accept().await.unwrap();
    let outside: SocketAddr = "10.1.2.3:40000".parse().unwrap();
    tokio::spawn(admin.admin.clone().serve_connection(accepted, outside));
    tcp.write_all(put).await.unwrap();
    let answer = read_until(&mut tcp, "loopback\n").await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(admin.levels.lock().unwrap().is_empty());
    assert_eq!(
        admin
            .admin
            .metrics
            .admin
            .requests_refused
            .with_label_values(&["not_loopback"])
            .get(),
        1
    );

    // From loopback it is applied.
    let mut tcp = TcpStream::connect(admin.addr).await.unwrap();
    tcp.write_all(put).await.unwrap();
    let answer = read_until(&mut tcp, "debug\n").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(*admin.levels.lock().unwrap(), ["debug"]);
}

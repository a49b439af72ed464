//! The fault app itself, hit directly (no proxy): the resilience tests trust what it says it did,
//! so each reply kind is checked against a real client here — scripts consumed in order, delays
//! under tokio's clock, resets that are TCP resets, bodies cut short, gRPC trailers, and the
//! record of requests whose caller gave up.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weft_tests::apps::fault_app::{FaultApp, Outcome, Reply, grpc_frame, times};
use weft_tests::{clients, wait};

/// An HTTP/1.1 connection to `addr`.
async fn h1(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

fn request(method: Method, path: &str, version: Version, body: Bytes) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(format!("http://app{path}"))
        .version(version)
        .header("host", "app")
        .header("weft-attempt", "1")
        .body(Full::new(body))
        .unwrap()
}

fn get(path: &str) -> Request<Full<Bytes>> {
    request(Method::GET, path, Version::HTTP_11, Bytes::new())
}

/// Writes a raw HTTP/1.1 GET and reads until the peer closes: `(bytes read, how it ended)`.
async fn raw_get(addr: SocketAddr) -> (Vec<u8>, std::io::Result<()>) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /raw HTTP/1.1\r\nhost: app\r\n\r\n")
        .await
        .unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) => return Err(e),
            }
        }
    })
    .await
    .expect("the app ends the connection within 5 s");
    (received, end)
}

#[tokio::test]
async fn scripted_replies_are_consumed_in_order_then_the_default() {
    let app = FaultApp::start("fault").await;
    app.script(
        "/",
        [
            Reply::status(503).header("retry-after", "1"),
            Reply::status(502),
            Reply::ok().body("third"),
        ],
    );
    app.script("/other", [Reply::status(500)]);
    app.set_default(Reply::status(204));
    let mut client = h1(app.addr).await;

    let mut statuses = Vec::new();
    for _ in 0..4 {
        let response = client.send_request(get("/flaky")).await.unwrap();
        statuses.push((
            response.status().as_u16(),
            response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned()),
        ));
        let body = response.into_body().collect().await.unwrap().to_bytes();
        if statuses.len() == 3 {
            assert_eq!(body, "third");
        }
    }
    assert_eq!(
        statuses,
        [
            (503, Some("1".to_owned())),
            (502, None),
            (200, None),
            (204, None)
        ],
        "the script in order, then the default"
    );
    // "/" was scripted first and is now empty; "/other" still has its reply.
    let other = client.send_request(get("/other")).await.unwrap();
    assert_eq!(other.status(), 500);
    assert_eq!(app.pending_replies(), 0);

    let seen = app.seen();
    assert_eq!(seen.len(), 5);
    assert!(seen.iter().all(|r| r.method == Method::GET));
    assert_eq!(seen[0].path, "/flaky");
    assert_eq!(seen[4].path, "/other");
    assert_eq!(seen[0].attempt(), Some(1), "headers are recorded");
    assert!(seen.windows(2).all(|w| w[0].at <= w[1].at));
    assert!(
        seen.iter()
            .all(|r| matches!(r.outcome, Outcome::Answered(_))),
        "{seen:?}"
    );
    assert_eq!(app.seen_path("/other").len(), 1);
}

#[tokio::test]
async fn request_bodies_are_measured_over_both_protocols() {
    let app = FaultApp::start("fault").await;
    let body = Bytes::from(vec![7u8; 100 * 1024]);
    let response = h1(app.addr)
        .await
        .send_request(request(
            Method::POST,
            "/create",
            Version::HTTP_11,
            body.clone(),
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = clients::h2::<Full<Bytes>>(app.addr)
        .await
        .send_request(request(Method::POST, "/create", Version::HTTP_2, body))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = app.seen();
    assert_eq!(seen[0].version, Version::HTTP_11);
    assert_eq!(seen[1].version, Version::HTTP_2);
    for r in &seen {
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.body_len, Some(100 * 1024));
    }
}

#[tokio::test(start_paused = true)]
async fn a_delay_is_honoured_under_tokio_time() {
    let app = FaultApp::start("fault").await;
    app.script("/", [Reply::ok().after(Duration::from_secs(5))]);
    let real = std::time::Instant::now();
    let started = tokio::time::Instant::now();
    let response = h1(app.addr).await.send_request(get("/")).await.unwrap();
    assert_eq!(response.status(), 200);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(5),
        "answered after {waited:?}"
    );
    assert!(
        real.elapsed() < Duration::from_secs(3),
        "the paused clock skipped the wait, real time {:?}",
        real.elapsed()
    );
    let Outcome::Answered(at) = app.seen()[0].outcome else {
        panic!("not answered: {:?}", app.seen()[0])
    };
    assert!(at - app.seen()[0].at >= Duration::from_secs(5));
}

#[tokio::test]
async fn reset_is_a_tcp_reset_and_close_is_a_fin() {
    let app = FaultApp::start("fault").await;
    app.script("/", [Reply::Reset, Reply::Close]);
    let (received, end) = raw_get(app.addr).await;
    assert!(
        received.is_empty(),
        "no answer before the reset: {received:?}"
    );
    let error = end.expect_err("a reset, not an orderly close");
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}");

    let (received, end) = raw_get(app.addr).await;
    assert!(
        received.is_empty(),
        "no answer before the close: {received:?}"
    );
    end.expect("an orderly close (FIN), not a reset");
    assert_eq!(app.count(), 2);
}

#[tokio::test]
async fn reset_stream_resets_one_http2_stream_and_keeps_the_connection() {
    let app = FaultApp::start("fault").await;
    app.script("/", [Reply::ResetStream]);
    let mut client = clients::h2::<Full<Bytes>>(app.addr).await;
    let failed = client
        .send_request(request(Method::GET, "/", Version::HTTP_2, Bytes::new()))
        .await
        .expect_err("the stream is reset");
    let text = format!("{failed:?}");
    assert!(
        text.contains("INTERNAL_ERROR") || text.to_lowercase().contains("reset"),
        "{text}"
    );
    let next = client
        .send_request(request(Method::GET, "/", Version::HTTP_2, Bytes::new()))
        .await
        .expect("the same connection still serves");
    assert_eq!(next.status(), 200);
}

#[tokio::test]
async fn truncated_bodies_break_off_after_the_declared_length_is_promised() {
    let app = FaultApp::start("fault").await;
    app.script(
        "/",
        [Reply::Truncated {
            status: 200,
            declared: 1000,
            sent: 10,
        }],
    );
    let (received, end) = raw_get(app.addr).await;
    let text = String::from_utf8_lossy(&received).to_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(text.contains("content-length: 1000"), "{text}");
    let body = text.split("\r\n\r\n").nth(1).unwrap();
    assert_eq!(body, "x".repeat(10), "only the first bytes");
    let _ = end; // a FIN or a reset: either way the body never completes

    app.script(
        "/",
        [Reply::Truncated {
            status: 200,
            declared: 1000,
            sent: 10,
        }],
    );
    let response = clients::h2::<Full<Bytes>>(app.addr)
        .await
        .send_request(request(Method::GET, "/", Version::HTTP_2, Bytes::new()))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response
        .into_body()
        .collect()
        .await
        .expect_err("the HTTP/2 body is reset before its end");
}

#[tokio::test]
async fn grpc_replies_carry_a_frame_and_the_status_in_trailers() {
    let app = FaultApp::start("fault").await;
    app.script(
        "/test.Greeter/",
        [
            Reply::grpc_error(14).header("grpc-retry-pushback-ms", "10"),
            Reply::grpc_ok("hi"),
        ],
    );
    let mut client = clients::h2::<Full<Bytes>>(app.addr).await;
    let call = || {
        Request::post("http://app/test.Greeter/Say")
            .version(Version::HTTP_2)
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(grpc_frame(b"ping")))
            .unwrap()
    };
    let mut results = Vec::new();
    for _ in 0..2 {
        let response = client.send_request(call()).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/grpc");
        let collected = response.into_body().collect().await.unwrap();
        let trailers = collected.trailers().cloned().expect("trailers arrive");
        results.push((collected.to_bytes(), trailers));
    }
    let (data, trailers) = &results[0];
    assert!(data.is_empty());
    assert_eq!(trailers["grpc-status"], "14");
    assert_eq!(trailers["grpc-retry-pushback-ms"], "10");
    let (data, trailers) = &results[1];
    assert_eq!(data, &grpc_frame(b"hi"), "one length-prefixed message");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(app.seen()[0].body_len, Some(grpc_frame(b"ping").len()));
}

#[tokio::test]
async fn a_caller_giving_up_is_recorded_as_cancelled() {
    let app = FaultApp::start("fault").await;
    app.set_default(Reply::ok().after(Duration::from_secs(5)));

    // HTTP/1.1: the caller closes its connection.
    let mut client = h1(app.addr).await;
    let gave_up = tokio::time::Instant::now();
    let _ = tokio::time::timeout(Duration::from_millis(100), client.send_request(get("/h1"))).await;
    drop(client);
    // HTTP/2: the caller drops the request (hyper resets the stream), the connection stays.
    let mut client = clients::h2::<Full<Bytes>>(app.addr).await;
    let _ = tokio::time::timeout(
        Duration::from_millis(100),
        client.send_request(request(Method::GET, "/h2", Version::HTTP_2, Bytes::new())),
    )
    .await;

    let seen = wait::until(
        Duration::from_secs(3),
        "both requests cancelled",
        || async {
            let seen = app.seen();
            seen.iter()
                .all(|r| matches!(r.outcome, Outcome::Cancelled(_)))
                .then_some(seen)
        },
    )
    .await;
    assert_eq!(seen.len(), 2);
    for r in &seen {
        let Outcome::Cancelled(at) = r.outcome else {
            unreachable!()
        };
        assert!(
            at - gave_up < Duration::from_secs(1),
            "{} cancelled {:?} after the caller gave up",
            r.path,
            at - gave_up
        );
    }
}

#[tokio::test]
async fn stop_closes_the_listener_and_drops_connections() {
    let app = FaultApp::start("fault").await;
    app.set_default(Reply::ok().after(Duration::from_secs(5)));
    let mut client = h1(app.addr).await;
    let in_flight = tokio::spawn(async move { client.send_request(get("/")).await });
    wait::until(Duration::from_secs(3), "the request to arrive", || async {
        (app.count() == 1).then_some(())
    })
    .await;
    app.stop().await;
    let answer = tokio::time::timeout(Duration::from_secs(1), in_flight)
        .await
        .expect("the connection is dropped at once, not after the delay")
        .unwrap();
    assert!(answer.is_err(), "no answer from a stopped app: {answer:?}");
    let refused = TcpStream::connect(app.addr).await;
    assert!(refused.is_err(), "the listener is closed");
    assert!(matches!(app.seen()[0].outcome, Outcome::Cancelled(_)));
}

#[test]
fn times_repeats_a_reply() {
    assert_eq!(times(3, Reply::status(503)).len(), 3);
}

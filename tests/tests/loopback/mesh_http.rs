//! Requests through a client proxy and a server proxy to an app, on loopback.

use std::time::Duration;

use weft_tests::apps::HttpApp;
use weft_tests::mesh::identity;
use weft_tests::{Mesh, ProxyOptions, clients};

#[tokio::test]
async fn http1_request_reaches_the_app_and_the_app_learns_the_callers_identity() {
    let mesh = Mesh::start(Duration::from_secs(3600)).await;
    let app = HttpApp::start("hello").await;
    let weft_tests::mesh::Sidecars { client, server } =
        mesh.sidecars("web", "hello", app.addr).await;

    let reply = clients::get(client.forward_addrs[0], "/greet", "hello.demo:8080")
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, "hello from hello\n");
    assert_eq!(
        reply.header("weft-server-identity"),
        Some("spiffe://cluster.local/ns/demo/sa/hello")
    );

    let seen = app.last_seen();
    assert_eq!(seen.path, "/greet");
    assert_eq!(seen.version, http::Version::HTTP_11);
    assert_eq!(seen.host.as_deref(), Some("hello.demo:8080"));
    assert_eq!(
        seen.client_identity.as_deref(),
        Some("spiffe://cluster.local/ns/demo/sa/web")
    );
    assert!(!seen.headers.contains_key("weft-orig-proto"));

    let metrics = server.metrics.render();
    let series = r#"weft_requests_total{direction="inbound",source_identity="spiffe://cluster.local/ns/demo/sa/web",destination_identity="spiffe://cluster.local/ns/demo/sa/hello",status_code="200",answered_by="app"}"#;
    assert_eq!(
        weft_tests::observe::metrics::metric_in(&metrics, series),
        1.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn http2_keeps_authority_and_streams_both_ways_with_trailers() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, StreamBody};
    use hyper::body::Frame;

    let mesh = Mesh::start(Duration::from_secs(3600)).await;
    let app = HttpApp::start("grpc").await;
    let weft_tests::mesh::Sidecars {
        client,
        server: _server,
    } = mesh.sidecars("client", "server", app.addr).await;

    let mut h2 = clients::h2(client.forward_addrs[0]).await;
    let reply = clients::read(
        h2.send_request(clients::h2_get("grpc.demo:50051", "/pkg.Greeter/Hello"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 200);
    let seen = app.last_seen();
    assert_eq!(seen.version, http::Version::HTTP_2);
    assert_eq!(seen.authority.as_deref(), Some("grpc.demo:50051"));
    assert_eq!(
        seen.client_identity.as_deref(),
        Some("spiffe://cluster.local/ns/demo/sa/client")
    );

    // A request body fed one message at a time; each echo must come back before the next
    // message is sent, which only works if both directions stream through both proxies.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, hyper::Error>>(1);
    let body = StreamBody::new(tokio_stream_from(rx)).boxed();
    let req = http::Request::post("http://grpc.demo:50051/echo")
        .version(http::Version::HTTP_2)
        .header("content-type", "application/grpc")
        .body(body)
        .unwrap();
    let response = h2.send_request(req);
    tx.send(Ok(Frame::data(Bytes::from_static(b"ping-1"))))
        .await
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(5), response)
        .await
        .expect("response headers arrive while the request is still open")
        .unwrap();
    let mut body = response.into_body();
    for i in 1..=3 {
        if i > 1 {
            tx.send(Ok(Frame::data(Bytes::from(format!("ping-{i}")))))
                .await
                .unwrap();
        }
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("the echo arrives before the next message is sent")
            .unwrap()
            .unwrap();
        assert_eq!(frame.into_data().unwrap(), format!("ping-{i}"));
    }
    drop(tx);
    let trailers = loop {
        let frame = body.frame().await.unwrap().unwrap();
        if let Ok(trailers) = frame.into_trailers() {
            break trailers;
        }
    };
    assert_eq!(trailers["x-echo-trailer"], "done");
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn many_app_connections_share_one_mesh_connection() {
    let mesh = Mesh::start(Duration::from_secs(3600)).await;
    let app = HttpApp::start("hello").await;
    let weft_tests::mesh::Sidecars { client, server } =
        mesh.sidecars("web", "hello", app.addr).await;
    let target = client.forward_addrs[0];
    let replies = futures_util::future::join_all(
        (0..40).map(|i| async move { clients::get(target, &format!("/{i}"), "hello.demo").await }),
    )
    .await;
    assert!(replies.iter().all(|r| r.as_ref().unwrap().status == 200));
    assert_eq!(app.requests(), 40);
    let metrics = server.metrics.render();
    assert!(
        metrics.contains(r#"weft_inbound_connections_total{tls="mtls"} 1"#),
        "40 app connections should share one mTLS connection:\n{metrics}"
    );
    let outbound = client.metrics.render();
    assert!(
        outbound.contains(r#"weft_outbound_connections_total{protocol="http1"} 40"#),
        "{outbound}"
    );
}

#[tokio::test]
async fn opaque_tcp_travels_through_the_mesh() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mesh = Mesh::start(Duration::from_secs(3600)).await;
    let echo = weft_tests::apps::TcpEcho::start().await;
    let weft_tests::mesh::Sidecars { client, server } = mesh.sidecars("web", "db", echo.addr).await;

    let mut conn = tokio::net::TcpStream::connect(client.forward_addrs[0])
        .await
        .unwrap();
    // Binary that is neither HTTP nor TLS.
    let message: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    conn.write_all(&message).await.unwrap();
    let mut echoed = vec![0u8; message.len()];
    tokio::time::timeout(Duration::from_secs(5), conn.read_exact(&mut echoed))
        .await
        .expect("echo within 5s")
        .unwrap();
    assert_eq!(echoed, message);
    let metrics = server.metrics.render();
    assert!(
        metrics.contains(r#"weft_inbound_connections_total{tls="mtls"} 1"#),
        "{metrics}"
    );
    assert!(
        client
            .metrics
            .render()
            .contains(r#"weft_outbound_connections_total{protocol="opaque"} 1"#)
    );
}

#[tokio::test]
async fn a_grpc_caller_gets_a_grpc_status_when_the_peer_is_down() {
    let mesh = Mesh::start(Duration::from_secs(3600)).await;
    // Nothing listens at the peer address.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client = mesh
        .proxy(
            "web",
            ProxyOptions::forward_to(vec![(identity("hello"), dead)]),
        )
        .await;
    let mut h2 = clients::h2(client.forward_addrs[0]).await;
    let mut req = clients::h2_get("hello.demo", "/pkg.Svc/Call");
    req.headers_mut()
        .insert("content-type", "application/grpc".parse().unwrap());
    let reply = clients::read(h2.send_request(req).await.unwrap()).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("grpc-status"), Some("14"));
    assert_eq!(reply.header("weft-error"), Some("connect_failed"));
    assert!(
        reply
            .header("grpc-message")
            .unwrap()
            .contains("cannot connect to"),
        "{reply:?}"
    );
}

/// Many concurrent uploads larger than a stream's flow-control window (1 MiB), each echoed back by
/// the app, on the one pooled HTTP/2 connection between the proxies: every byte comes back, in
/// order, on the right stream, with the trailer after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_large_bodies_stream_both_ways_intact() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};

    const STREAMS: usize = 12;
    const SIZE: usize = 1536 * 1024;
    let mesh = Mesh::start(Duration::from_secs(3600)).await;
    let app = HttpApp::start("hello").await;
    let weft_tests::mesh::Sidecars { client, server } =
        mesh.sidecars("web", "hello", app.addr).await;
    let forward = client.forward_addrs[0];
    // Every stream's bytes differ, and differ along the body: a mix-up or a reordering shows.
    // Made before connecting: a connection that sends nothing for the detection timeout (300 ms
    // here) would be carried as opaque TCP instead.
    let bodies: Vec<Vec<u8>> = (0..STREAMS)
        .map(|i| (0..SIZE).map(|n| (n / 1000 + i * 7) as u8).collect())
        .collect();
    let echoes = futures_util::future::join_all(bodies.into_iter().map(|body| async move {
        let mut h2 = clients::h2(forward).await;
        let req = http::Request::post("http://echo.demo:8080/echo")
            .version(http::Version::HTTP_2)
            .body(
                Full::new(Bytes::from(body.clone()))
                    .map_err(|never| match never {})
                    .boxed(),
            )
            .unwrap();
        let response = tokio::time::timeout(Duration::from_secs(30), h2.send_request(req))
            .await
            .expect("an answer within 30 s")
            .unwrap();
        assert_eq!(response.status(), 200);
        let collected = tokio::time::timeout(Duration::from_secs(30), response.collect())
            .await
            .expect("the whole echo within 30 s")
            .unwrap();
        let trailers = collected.trailers().cloned();
        (body, collected.to_bytes(), trailers)
    }))
    .await;
    for (i, (sent, echoed, trailers)) in echoes.into_iter().enumerate() {
        assert_eq!(echoed.len(), sent.len(), "stream {i}: length");
        assert!(
            echoed == sent,
            "stream {i}: the echo differs from what was sent"
        );
        assert_eq!(
            trailers.as_ref().map(|t| t["x-echo-trailer"].clone()),
            Some(http::HeaderValue::from_static("done")),
            "stream {i}: trailer"
        );
    }
    let metrics = server.metrics.render();
    assert!(
        metrics.contains(r#"weft_inbound_connections_total{tls="mtls"} 1"#),
        "the uploads should share one mTLS connection:\n{metrics}"
    );
}

/// A caller that gives up in the middle of an upload: the stream between the proxies is reset,
/// so the app sees its request end (not a body left hanging), and the connection carries on.
#[tokio::test]
async fn an_upload_abandoned_mid_body_ends_at_the_app_and_the_connection_serves_on() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, StreamBody};
    use hyper::body::Frame;
    use weft_tests::apps::fault_app::FaultApp;

    let mesh = Mesh::start(Duration::from_secs(3600)).await;
    let app = FaultApp::start("hello").await;
    let weft_tests::mesh::Sidecars { client, server } =
        mesh.sidecars("web", "hello", app.addr).await;
    let forward = client.forward_addrs[0];

    let mut h2 = clients::h2(forward).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, hyper::Error>>(1);
    let req = http::Request::post("http://upload.demo:8080/upload")
        .version(http::Version::HTTP_2)
        .body(StreamBody::new(tokio_stream_from(rx)).boxed())
        .unwrap();
    let pending = tokio::spawn(h2.send_request(req));
    tx.send(Ok(Frame::data(Bytes::from(vec![b'x'; 64 * 1024]))))
        .await
        .unwrap();
    // The app has the request (and is reading its body) before the caller gives up.
    weft_tests::wait::until(
        Duration::from_secs(10),
        "the upload to reach the app",
        || async { (app.count() == 1).then_some(()) },
    )
    .await;
    pending.abort();
    drop(tx);
    drop(h2);
    let seen = weft_tests::wait::until(
        Duration::from_secs(10),
        "the app to see the upload end",
        || async {
            let seen = app.seen();
            (seen[0].outcome != weft_tests::apps::fault_app::Outcome::Pending).then_some(seen)
        },
    )
    .await;
    assert_eq!(
        seen[0].body_len, None,
        "the app never got a whole body: {seen:?}"
    );
    let reply = clients::get(forward, "/after", "upload.demo:8080")
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    let metrics = server.metrics.render();
    assert!(
        metrics.contains(r#"weft_inbound_connections_total{tls="mtls"} 1"#),
        "the same mTLS connection serves on:\n{metrics}"
    );
}

/// Connection churn beside pipelining: 300 app connections that each send one request and close
/// (thirty at a time), while one keep-alive connection pipelines 51 requests. Every answer is the
/// one for its own request (the app names the path it served), the pipelined answers come back in
/// the order asked, all of it rides one mTLS connection, and no app connection stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_churn_and_pipelining_keep_every_answer_with_its_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const WAVES: usize = 10;
    const PER_WAVE: usize = 30;
    const PIPELINED: usize = 50;
    let mesh = Mesh::start(Duration::from_secs(3600)).await;
    let app = HttpApp::start("hello").await;
    let weft_tests::mesh::Sidecars { client, server } =
        mesh.sidecars("web", "hello", app.addr).await;
    let forward = client.forward_addrs[0];
    // The socket count at the end sees a keep-alive connection that is open (so its zero there
    // means something).
    let mut held = tokio::net::TcpStream::connect(forward).await.unwrap();
    held.write_all(b"GET /held HTTP/1.1\r\nhost: hello.demo\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 12];
    held.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    assert!(
        sockets_on(forward.port()) >= 1,
        "an open app connection is not seen"
    );
    drop(held);
    let pipelined = tokio::spawn(async move {
        let mut requests: String = (0..PIPELINED)
            .map(|i| format!("GET /pipelined/{i} HTTP/1.1\r\nhost: hello.demo\r\n\r\n"))
            .collect();
        requests += "GET /pipelined/last HTTP/1.1\r\nhost: hello.demo\r\nconnection: close\r\n\r\n";
        let mut tcp = tokio::net::TcpStream::connect(forward).await.unwrap();
        tcp.write_all(requests.as_bytes()).await.unwrap();
        let mut answers = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), tcp.read_to_end(&mut answers))
            .await
            .expect("the pipelined answers within 30 s")
            .unwrap();
        String::from_utf8(answers).unwrap()
    });
    for wave in 0..WAVES {
        let replies = futures_util::future::join_all((0..PER_WAVE).map(|i| async move {
            let path = format!("/churn/{wave}/{i}");
            let reply = clients::get(forward, &path, "hello.demo").await.unwrap();
            (path, reply)
        }))
        .await;
        for (path, reply) in replies {
            assert_eq!(reply.status, 200, "{path}: {reply:?}");
            assert_eq!(reply.header("x-app-path"), Some(path.as_str()), "{reply:?}");
        }
    }
    let answers = pipelined.await.unwrap();
    let served: Vec<&str> = answers
        .lines()
        .filter_map(|line| line.strip_prefix("x-app-path: "))
        .collect();
    let asked: Vec<String> = (0..PIPELINED)
        .map(|i| format!("/pipelined/{i}"))
        .chain(std::iter::once("/pipelined/last".to_owned()))
        .collect();
    assert_eq!(served, asked, "pipelined answers out of order:\n{answers}");
    assert_eq!(
        answers.matches("HTTP/1.1 200 OK\r\n").count(),
        PIPELINED + 1,
        "{answers}"
    );
    assert_eq!(app.requests(), 1 + WAVES * PER_WAVE + PIPELINED + 1);
    let metrics = server.metrics.render();
    assert!(
        metrics.contains(r#"weft_inbound_connections_total{tls="mtls"} 1"#),
        "the churn should share one mTLS connection:\n{metrics}"
    );
    // The client sidecar closed its side of every app connection: none of the sockets on its
    // listener is still established or half-closed (`CLOSE_WAIT`), which a leaked connection
    // task would leave.
    weft_tests::wait::until(
        Duration::from_secs(10),
        "every app connection closed by the client sidecar",
        || async { (sockets_on(forward.port()) == 0).then_some(()) },
    )
    .await;
}

/// Loopback TCP sockets with local port `port` that are established or in `CLOSE_WAIT`, from
/// /proc/net/tcp (states 01 and 08).
fn sockets_on(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let local = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() > 3
                && fields[1].ends_with(&local)
                && (fields[3] == "01" || fields[3] == "08")
        })
        .count()
}

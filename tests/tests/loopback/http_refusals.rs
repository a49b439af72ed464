//! What a client that breaks HTTP/1.1 receives, on a raw socket, from the client sidecar (the
//! app's outbound listener) and from the server sidecar (a plaintext caller of the inbound
//! listener): the status RFC 9110/9112 give, and each refusal counted in
//! `weft_proxy_errors_total{direction,reason}`.

use std::net::SocketAddr;
use std::time::Duration;

use weft_proxy::RunningProxy;
use weft_tests::Mesh;
use weft_tests::apps::HttpApp;
use weft_tests::clients::raw_exchange as exchange;
use weft_tests::mesh::Sidecars;
use weft_tests::observe::metrics::metric_in;

const HOUR: Duration = Duration::from_secs(3600);
/// The proxy's HTTP/1 header read timeout (`http_server::HEADER_READ_TIMEOUT`), and a margin.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const MARGIN: Duration = Duration::from_secs(5);

fn refused(proxy: &RunningProxy, direction: &str, reason: &str) -> u64 {
    let series = format!(r#"weft_proxy_errors_total{{direction="{direction}",reason="{reason}"}}"#);
    metric_in(&proxy.metrics.render(), &series) as u64
}

/// Both sidecars' HTTP/1 listeners, each with the direction its metrics say.
async fn listeners(mesh: &Mesh, app: &HttpApp) -> (Sidecars, [(SocketAddr, &'static str); 2]) {
    let sidecars = mesh.sidecars("web", "hello", app.addr).await;
    let both = [
        (sidecars.client.forward_addrs[0], "outbound"),
        (sidecars.server.inbound_addr, "inbound"),
    ];
    (sidecars, both)
}

fn proxy<'a>(sidecars: &'a Sidecars, direction: &str) -> &'a RunningProxy {
    match direction {
        "outbound" => &sidecars.client,
        _ => &sidecars.server,
    }
}

#[tokio::test]
async fn a_malformed_or_oversized_request_head_gets_400_or_431_and_is_counted() {
    let mesh = Mesh::start(HOUR).await;
    let app = HttpApp::start("hello").await;
    let (sidecars, listeners) = listeners(&mesh, &app).await;
    for (addr, direction) in listeners {
        // A request line detection takes for HTTP/1, then a header line without a colon.
        let malformed = b"GET / HTTP/1.1\r\nhost: hello\r\nnot a header\r\n\r\n".to_vec();
        let answer = exchange(addr, malformed, MARGIN).await;
        assert!(
            answer.starts_with("HTTP/1.1 400 "),
            "{direction}: a malformed head is a bad request, got {answer:?}"
        );
        assert_eq!(
            refused(
                proxy(&sidecars, direction),
                direction,
                "malformed_request_head"
            ),
            1,
            "{direction}: the 400 is counted"
        );

        // A head over the 64 KiB limit.
        let mut large = b"GET / HTTP/1.1\r\nhost: hello\r\nx-large: ".to_vec();
        large.extend(std::iter::repeat_n(b'a', 80 * 1024));
        large.extend(b"\r\n\r\n");
        let answer = exchange(addr, large, MARGIN).await;
        assert!(
            answer.starts_with("HTTP/1.1 431 "),
            "{direction}: an oversized head is 431, got {answer:?}"
        );
        assert_eq!(
            refused(
                proxy(&sidecars, direction),
                direction,
                "request_head_too_large"
            ),
            1,
            "{direction}: the 431 is counted"
        );
    }
    assert_eq!(app.requests(), 0, "no refused request reaches the app");
}

#[tokio::test]
async fn a_request_head_too_slow_gets_408_and_an_idle_connection_is_only_closed() {
    let mesh = Mesh::start(HOUR).await;
    let app = HttpApp::start("hello").await;
    let (sidecars, listeners) = listeners(&mesh, &app).await;
    let within = HEADER_TIMEOUT + MARGIN;
    let slow = listeners.map(|(addr, _)| {
        // Half a head, then nothing: the slowloris pattern.
        let partial = b"GET / HTTP/1.1\r\nhost: hello\r\nx-slow: 1\r\n".to_vec();
        tokio::spawn(exchange(addr, partial, within))
    });
    let idle = listeners.map(|(addr, _)| {
        // A whole request answered, then a kept-alive connection left idle: no 408 may follow
        // the answer (a client could take it for the answer to its next request).
        let whole = b"GET /one HTTP/1.1\r\nhost: hello\r\n\r\n".to_vec();
        tokio::spawn(exchange(addr, whole, within))
    });
    for ((answer, idle), (_, direction)) in slow.into_iter().zip(idle).zip(listeners) {
        let answer = answer.await.unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{direction}: a late head is answered 408, got {answer:?}"
        );
        assert!(
            answer.contains("weft-error: request_header_timeout"),
            "{answer}"
        );
        let idle = idle.await.unwrap();
        assert!(idle.starts_with("HTTP/1.1 200 "), "{direction}: {idle:?}");
        assert!(
            !idle.contains("408"),
            "{direction}: an idle connection gets no 408: {idle:?}"
        );
        let proxy = proxy(&sidecars, direction);
        assert_eq!(
            refused(proxy, direction, "request_header_timeout"),
            1,
            "{direction}: the late head is counted, the idle connection is not"
        );
    }
    assert_eq!(app.requests(), 2, "only the whole requests reached the app");
}

#[tokio::test]
async fn a_malformed_chunked_body_from_a_plaintext_caller_gets_400_and_is_counted() {
    let mesh = Mesh::start(HOUR).await;
    let app = HttpApp::start("hello").await;
    let server = mesh
        .proxy("hello", weft_tests::ProxyOptions::app(app.addr))
        .await;
    // A chunk size that is not hexadecimal (RFC 9112 7.1).
    let malformed = b"POST /upload HTTP/1.1\r\nhost: hello\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n";
    let answer = exchange(server.inbound_addr, malformed.to_vec(), MARGIN).await;
    assert!(
        answer.starts_with("HTTP/1.1 400 "),
        "the caller's malformed body is its bad request, not the app's failure: {answer:?}"
    );
    // Refused with the head, under the codec's reason (as `http1::smuggling_*` counts it).
    assert!(answer.contains("weft-error: invalid_chunk"), "{answer}");
    assert_eq!(refused(&server, "inbound", "invalid_chunk"), 1);
    assert_eq!(refused(&server, "inbound", "app_http_error"), 0);
}

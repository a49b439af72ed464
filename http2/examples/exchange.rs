//! Instructions per request of the proxy link's HTTP/2, both ends in one process: weft-http2's
//! connections against each other, or the `h2` crate's client and server over an in-memory pipe.
//! Each request is a GET with the heads the benchmark's requests carry between sidecars, answered
//! with 612 bytes (nginx's page), four requests in flight at a time; each side turns the fields
//! it receives into an `http::HeaderMap`, as the proxy does.
//!
//!   cargo build --release -p weft-http2 --example exchange
//!   valgrind --tool=callgrind target/release/examples/exchange weft 20000
//!   valgrind --tool=callgrind target/release/examples/exchange h2 20000
//!
//! callgrind's total / the count is one request's cost for both ends of the link together (h2's
//! includes the tokio tasks it needs; the proxy's use of weft-http2 will add its own).

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};
use weft_http2::connection::{Config, Connection, Event, HeadKind, Role};

const IN_FLIGHT: usize = 4;
const REQUEST: [(&str, &str); 5] = [
    ("user-agent", "h2load nghttp2/1.52.0"),
    ("accept", "*/*"),
    ("weft-orig-proto", "HTTP/1.1"),
    (
        "weft-client-identity",
        "spiffe://cluster.local/ns/demo/sa/web",
    ),
    (
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
    ),
];
const ANSWER: [(&str, &str); 5] = [
    ("server", "nginx/1.22.1"),
    ("date", "Mon, 07 Dec 2026 08:00:00 GMT"),
    ("content-type", "text/html"),
    ("content-length", "612"),
    (
        "weft-server-identity",
        "spiffe://cluster.local/ns/demo/sa/hello",
    ),
];

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "weft".into());
    let count: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let body = Bytes::from(vec![b'x'; 612]);
    match which.as_str() {
        "weft" => weft(count, body),
        "h2" => h2_pair(count, body),
        other => panic!("weft or h2, not {other}"),
    }
}

fn config(role: Role) -> Config {
    Config {
        role,
        max_concurrent_streams: 1024,
        stream_window: 1 << 20,
        connection_window: 4 << 20,
        max_header_list_size: 65_536,
    }
}

fn header_map(conn: &mut Connection) -> HeaderMap {
    let mut map = HeaderMap::new();
    for field in conn.take_fields() {
        if field.name.first() == Some(&b':') {
            continue;
        }
        let name = HeaderName::from_bytes(&field.name).expect("name");
        let value = HeaderValue::from_maybe_shared(field.value).expect("value");
        map.append(name, value);
    }
    map
}

/// Moves what `from` wrote into `to`'s input.
fn carry(from: &mut Connection, to: &mut BytesMut) {
    from.flush();
    let mut chunks = Vec::new();
    from.take_output(&mut chunks);
    for chunk in chunks {
        to.extend_from_slice(&chunk);
    }
}

fn weft(count: usize, body: Bytes) {
    let mut client = Connection::new(config(Role::Client));
    let mut server = Connection::new(config(Role::Server));
    let (mut to_server, mut to_client) = (BytesMut::new(), BytesMut::new());
    let mut done = 0;
    let mut bytes = 0;
    while done < count {
        for _ in 0..IN_FLIGHT {
            let stream = client.open_stream().expect("a stream");
            client.send_headers(stream, true, |w| {
                w.field(b":method", b"GET");
                w.field(b":scheme", b"http");
                w.field(b":authority", b"hello.demo:8080");
                w.field(b":path", b"/");
                for (name, value) in REQUEST {
                    w.field(name.as_bytes(), value.as_bytes());
                }
            });
        }
        carry(&mut client, &mut to_server);
        while let Some(event) = server.receive(&mut to_server).expect("server") {
            if let Event::Headers { stream, .. } = event {
                let head = header_map(&mut server);
                assert!(head.contains_key("traceparent"));
                server.send_headers(stream, false, |w| {
                    w.field(b":status", b"200");
                    for (name, value) in ANSWER {
                        w.field(name.as_bytes(), value.as_bytes());
                    }
                });
                server.send_data(stream, body.clone(), true);
            }
        }
        carry(&mut server, &mut to_client);
        while let Some(event) = client.receive(&mut to_client).expect("client") {
            match event {
                Event::Headers {
                    kind: HeadKind::Head,
                    ..
                } => {
                    let head = header_map(&mut client);
                    assert!(head.contains_key("date"));
                }
                Event::Data {
                    stream,
                    data,
                    end_stream,
                } => {
                    bytes += data.len();
                    client.release(stream, data.len());
                    done += usize::from(end_stream);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        carry(&mut client, &mut to_server);
    }
    assert_eq!(bytes, count * 612);
}

fn h2_pair(count: usize, body: Bytes) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let (client_io, server_io) = tokio::io::duplex(256 * 1024);
        tokio::spawn(async move {
            let mut server = h2::server::Builder::new()
                .initial_window_size(1 << 20)
                .initial_connection_window_size(4 << 20)
                .max_concurrent_streams(1024)
                .handshake::<_, Bytes>(server_io)
                .await
                .expect("handshake");
            while let Some(request) = server.accept().await {
                let (request, mut respond) = request.expect("request");
                assert!(request.headers().contains_key("traceparent"));
                let mut answer = http::Response::builder().status(200);
                for (name, value) in ANSWER {
                    answer = answer.header(name, value);
                }
                let mut send = respond
                    .send_response(answer.body(()).expect("answer"), false)
                    .expect("send");
                send.send_data(body.clone(), true).expect("data");
            }
        });
        let (mut client, connection) = h2::client::Builder::new()
            .initial_window_size(1 << 20)
            .initial_connection_window_size(4 << 20)
            .handshake::<_, Bytes>(client_io)
            .await
            .expect("handshake");
        tokio::spawn(connection);
        let mut done = 0;
        while done < count {
            let mut answers = Vec::with_capacity(IN_FLIGHT);
            for _ in 0..IN_FLIGHT {
                let mut request = http::Request::get("http://hello.demo:8080/");
                for (name, value) in REQUEST {
                    request = request.header(name, value);
                }
                client = client.ready().await.expect("ready");
                let (answer, _) = client
                    .send_request(request.body(()).expect("request"), true)
                    .expect("send");
                answers.push(answer);
            }
            for answer in answers {
                let answer = answer.await.expect("answer");
                assert!(answer.headers().contains_key("date"));
                let mut recv = answer.into_body();
                while let Some(data) = recv.data().await {
                    let data = data.expect("data");
                    recv.flow_control()
                        .release_capacity(data.len())
                        .expect("release");
                }
                done += 1;
            }
        }
    });
}

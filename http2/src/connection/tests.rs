//! The connection against the `h2` crate (a peer nobody here wrote) in both roles, over an
//! in-memory pipe, and against hand-made frames for the rules a well-behaved peer never breaks.

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;
use crate::frame::Frame;

fn config(role: Role) -> Config {
    Config {
        role,
        max_concurrent_streams: 4,
        stream_window: 65_535,
        connection_window: 65_535,
        max_header_list_size: 16_384,
    }
}

/// Drives a [`Connection`] over one end of a pipe, as the proxy will over a socket.
struct Driver {
    conn: Connection,
    io: DuplexStream,
    input: BytesMut,
}

impl Driver {
    async fn write_out(&mut self) {
        self.conn.flush();
        let mut chunks = Vec::new();
        self.conn.take_output(&mut chunks);
        for chunk in chunks {
            self.io.write_all(&chunk).await.expect("write");
        }
    }

    /// The next event; `None` when the peer closed.
    async fn next(&mut self) -> Option<Event> {
        loop {
            self.write_out().await;
            match self.conn.receive(&mut self.input) {
                Ok(Some(event)) => return Some(event),
                Ok(None) => {
                    if self.io.read_buf(&mut self.input).await.expect("read") == 0 {
                        return None;
                    }
                }
                Err(e) => {
                    self.write_out().await;
                    panic!("connection error: {e}");
                }
            }
        }
    }

    fn fields(&mut self) -> Vec<(String, String)> {
        self.conn
            .take_fields()
            .map(|f| {
                (
                    String::from_utf8_lossy(&f.name).into_owned(),
                    String::from_utf8_lossy(&f.value).into_owned(),
                )
            })
            .collect()
    }
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// An `h2` client sends a 200 KB upload with trailers (more than every window: the server must
/// give window back as it reads); the server answers with the body echoed and gRPC-style trailers.
#[tokio::test]
async fn a_server_echoes_an_upload_to_an_h2_client() {
    let (ours, theirs) = tokio::io::duplex(16 * 1024);
    let body: Bytes = (0..200_000u32)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    let sent = body.clone();
    let client = tokio::spawn(async move {
        let (mut client, connection) = h2::client::handshake(theirs).await.expect("handshake");
        tokio::spawn(connection);
        let request = http::Request::post("http://hello.demo:8080/echo")
            .header("x-test", "upload")
            .body(())
            .expect("request");
        let (answer, mut upload) = client.send_request(request, false).expect("send");
        let writer = tokio::spawn(async move {
            upload.reserve_capacity(sent.len());
            let mut rest = sent;
            while !rest.is_empty() {
                let room = std::future::poll_fn(|cx| upload.poll_capacity(cx))
                    .await
                    .expect("capacity")
                    .expect("capacity");
                let piece = rest.split_to(room.min(rest.len()));
                upload.send_data(piece, false).expect("data");
            }
            let mut trailers = http::HeaderMap::new();
            trailers.insert("x-checksum", "abc".parse().expect("value"));
            upload.send_trailers(trailers).expect("trailers");
        });
        let answer = answer.await.expect("answer");
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.headers()["x-answered-by"], "weft-http2");
        let mut recv = answer.into_body();
        let mut echoed = BytesMut::new();
        while let Some(data) = recv.data().await {
            let data = data.expect("data");
            recv.flow_control()
                .release_capacity(data.len())
                .expect("release");
            echoed.extend_from_slice(&data);
        }
        let trailers = recv.trailers().await.expect("trailers").expect("some");
        writer.await.expect("writer");
        (echoed.freeze(), trailers)
    });

    let mut server = Driver {
        conn: Connection::new(config(Role::Server)),
        io: ours,
        input: BytesMut::new(),
    };
    let Some(Event::Headers {
        stream,
        kind: HeadKind::Head,
        end_stream: false,
    }) = server.next().await
    else {
        panic!("a request head first");
    };
    let fields = server.fields();
    assert_eq!(field(&fields, ":method"), Some("POST"));
    assert_eq!(field(&fields, ":path"), Some("/echo"));
    assert_eq!(field(&fields, ":authority"), Some("hello.demo:8080"));
    assert_eq!(field(&fields, "x-test"), Some("upload"));
    server.conn.send_headers(stream, false, |w| {
        w.field(b":status", b"200");
        w.field(b"x-answered-by", b"weft-http2");
    });
    let mut received = 0;
    loop {
        match server.next().await {
            Some(Event::Data {
                stream: s,
                data,
                end_stream,
            }) => {
                assert_eq!(s, stream);
                assert!(!end_stream, "the upload ends with trailers");
                received += data.len();
                server.conn.release(stream, data.len());
                server.conn.send_data(stream, data, false);
            }
            Some(Event::Headers {
                kind: HeadKind::Trailers,
                end_stream: true,
                ..
            }) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(field(&server.fields(), "x-checksum"), Some("abc"));
    assert_eq!(received, body.len());
    server.conn.send_trailers(stream, |w| {
        w.field(b"grpc-status", b"0");
        w.field(b"grpc-message", b"fine");
    });
    // The answer goes out as the client gives window back.
    let serving = tokio::spawn(async move {
        while server.next().await.is_some() {}
        server
    });
    let (echoed, trailers) = client.await.expect("client");
    assert_eq!(echoed, body, "the echo is the upload, byte for byte");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["grpc-message"], "fine");
    let server = serving.await.expect("server");
    assert_eq!(server.conn.open_streams(), (0, 0), "the stream is gone");
}

/// The connection as a client of an `h2` server: a request with a body, an answer larger than the
/// client's windows, trailers; a second request on the same connection reuses HPACK's table.
#[tokio::test]
async fn a_client_reads_an_h2_server_answer_larger_than_its_windows() {
    let (ours, theirs) = tokio::io::duplex(16 * 1024);
    let answer_body: Bytes = (0..300_000u32)
        .map(|i| (i % 13) as u8)
        .collect::<Vec<_>>()
        .into();
    let expected = answer_body.clone();
    let server = tokio::spawn(async move {
        let mut connection = h2::server::handshake(theirs).await.expect("handshake");
        let mut seen = Vec::new();
        while let Some(request) = connection.accept().await {
            let (request, mut respond) = request.expect("request");
            let (head, mut body) = request.into_parts();
            let mut upload = Vec::new();
            while let Some(data) = body.data().await {
                let data = data.expect("data");
                body.flow_control()
                    .release_capacity(data.len())
                    .expect("release");
                upload.extend_from_slice(&data);
            }
            seen.push((
                head.uri.path().to_string(),
                head.headers["x-n"].clone(),
                upload,
            ));
            let answer = http::Response::builder()
                .status(201)
                .body(())
                .expect("answer");
            let mut send = respond.send_response(answer, false).expect("send");
            send.send_data(answer_body.clone(), false).expect("data");
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", "0".parse().expect("value"));
            send.send_trailers(trailers).expect("trailers");
            // Drive the sends while waiting for the next request.
        }
        seen
    });

    let mut client = Driver {
        conn: Connection::new(config(Role::Client)),
        io: ours,
        input: BytesMut::new(),
    };
    for n in ["1", "2"] {
        let stream = client.conn.open_stream().expect("a stream");
        client.conn.send_headers(stream, false, |w| {
            w.field(b":method", b"POST");
            w.field(b":scheme", b"http");
            w.field(b":authority", b"hello.demo:8080");
            w.field(b":path", b"/upload");
            w.field(b"x-n", n.as_bytes());
        });
        client
            .conn
            .send_data(stream, Bytes::from_static(b"request body"), true);
        let mut status = None;
        let mut body = BytesMut::new();
        loop {
            match client.next().await.expect("an event") {
                Event::Headers {
                    kind: HeadKind::Head,
                    ..
                } => status = field(&client.fields(), ":status").map(str::to_owned),
                Event::Data { data, .. } => {
                    client.conn.release(stream, data.len());
                    body.extend_from_slice(&data);
                }
                Event::Headers {
                    kind: HeadKind::Trailers,
                    end_stream: true,
                    ..
                } => {
                    assert_eq!(field(&client.fields(), "grpc-status"), Some("0"));
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(status.as_deref(), Some("201"));
        assert_eq!(body.freeze(), expected);
    }
    assert_eq!(client.conn.open_streams(), (0, 0));
    drop(client);
    let seen = server.await.expect("server");
    assert_eq!(seen.len(), 2);
    for (i, (path, n, upload)) in seen.into_iter().enumerate() {
        assert_eq!(path, "/upload");
        assert_eq!(n, (i + 1).to_string());
        assert_eq!(upload, b"request body");
    }
}

/// A server connection fed hand-made frames: what it answers, frame by frame.
struct Raw {
    conn: Connection,
    out: Vec<Frame>,
}

impl Raw {
    fn server(config: Config) -> Raw {
        let mut raw = Raw {
            conn: Connection::new(config),
            out: Vec::new(),
        };
        let mut hello = BytesMut::from(frame::PREFACE);
        frame::write_settings(&mut hello, &Settings::default());
        raw.feed(hello).expect("preface and SETTINGS");
        raw.out.clear();
        raw
    }

    /// Feeds `bytes`, returns the events, and keeps the frames the connection wrote.
    fn feed(&mut self, mut bytes: BytesMut) -> Result<Vec<Event>, ConnectionError> {
        let mut events = Vec::new();
        let result = loop {
            match self.conn.receive(&mut bytes) {
                Ok(Some(event)) => events.push(event),
                Ok(None) => break Ok(events),
                Err(e) => break Err(e),
            }
        };
        self.conn.flush();
        let mut chunks = Vec::new();
        self.conn.take_output(&mut chunks);
        let mut written: BytesMut = chunks.concat().as_slice().into();
        while let Some(frame) =
            frame::decode(&mut written, frame::MAX_MAX_FRAME_SIZE).expect("ours")
        {
            self.out.push(frame);
        }
        result
    }

    fn goaway(&self) -> Option<Reason> {
        self.out.iter().find_map(|f| match f {
            Frame::GoAway { reason, .. } => Some(*reason),
            _ => None,
        })
    }

    fn resets(&self) -> Vec<(u32, Reason)> {
        self.out
            .iter()
            .filter_map(|f| match f {
                Frame::Reset { stream, reason } => Some((*stream, *reason)),
                _ => None,
            })
            .collect()
    }
}

/// A GET for `/`: `:method GET`, `:scheme http`, `:path /` indexed, `:authority` a literal.
fn get_block() -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x84, 0x01, 4];
    block.extend_from_slice(b"test");
    block
}

fn headers(stream: u32, block: &[u8], flags: u8) -> BytesMut {
    raw_frame(0x1, flags, stream, block)
}

fn raw_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> BytesMut {
    let mut bytes = BytesMut::new();
    bytes.put_uint(payload.len() as u64, 3);
    bytes.put_u8(kind);
    bytes.put_u8(flags);
    bytes.put_u32(stream);
    bytes.put_slice(payload);
    bytes
}

const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

#[test]
fn a_wrong_preface_or_a_first_frame_other_than_settings_ends_the_connection() {
    let mut conn = Connection::new(config(Role::Server));
    let error = conn
        .receive(&mut BytesMut::from(&b"GET / HTTP/1.1\r\n\r\n"[..]))
        .expect_err("not HTTP/2");
    assert_eq!(error.reason, Reason::PROTOCOL_ERROR);

    let mut conn = Connection::new(config(Role::Server));
    let mut bytes = BytesMut::from(frame::PREFACE);
    frame::write_ping(&mut bytes, false, [0; 8]);
    let error = conn.receive(&mut bytes).expect_err("PING first");
    assert_eq!(error.what, "the first frame is not SETTINGS");
}

#[test]
fn streams_over_the_limit_are_refused_and_hpack_stays_in_step() {
    let mut raw = Raw::server(config(Role::Server));
    // The third field adds "x-a: 1" to the dynamic table in every block.
    let mut block = get_block();
    block.extend_from_slice(&[0x40, 3, b'x', b'-', b'a', 1, b'1']);
    let mut bytes = BytesMut::new();
    for stream in [1, 3, 5, 7, 9] {
        bytes.unsplit(headers(stream, &block, END_HEADERS | END_STREAM));
    }
    let events = raw.feed(bytes).expect("no connection error");
    let opened: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            Event::Headers { stream, .. } => Some(*stream),
            _ => None,
        })
        .collect();
    assert_eq!(opened, [1, 3, 5, 7], "four streams, the limit");
    assert_eq!(raw.resets(), [(9, Reason::REFUSED_STREAM)]);
    // Stream 11 refers to the dynamic table: "x-a: 1" is its newest entry (index 62).
    let mut bytes = headers(11, &[0x82, 0x86, 0x84, 0x01, 1, b'h', 0xbe], END_HEADERS);
    raw.conn.send_reset(1, Reason::CANCEL);
    let events = raw.feed(bytes.split()).expect("in step");
    assert_eq!(
        events,
        [Event::Headers {
            stream: 11,
            kind: HeadKind::Head,
            end_stream: false
        }]
    );
    let fields: Vec<_> = raw.conn.take_fields().map(|f| (f.name, f.value)).collect();
    assert_eq!(fields.last(), Some(&(Bytes::from("x-a"), Bytes::from("1"))));
}

#[test]
fn a_continuation_flood_ends_the_connection() {
    let mut raw = Raw::server(config(Role::Server));
    let mut bytes = headers(1, &get_block(), 0);
    for _ in 0..40 {
        bytes.unsplit(raw_frame(0x9, 0, 1, b""));
    }
    let error = raw.feed(bytes).expect_err("a flood");
    assert_eq!(error.reason, Reason::ENHANCE_YOUR_CALM);
    assert_eq!(raw.goaway(), Some(Reason::ENHANCE_YOUR_CALM));

    let mut raw = Raw::server(config(Role::Server));
    let mut bytes = headers(1, &get_block(), 0);
    bytes.unsplit(headers(3, &get_block(), END_HEADERS));
    let error = raw.feed(bytes).expect_err("interleaved");
    assert_eq!(error.reason, Reason::PROTOCOL_ERROR);
}

#[test]
fn a_head_over_the_limit_is_refused_for_its_stream_and_a_bomb_ends_the_connection() {
    let limited = Config {
        max_header_list_size: 1024,
        ..config(Role::Server)
    };
    // One 100-byte entry added to the table, then referenced again and again: each reference
    // decodes to 133 bytes (name, value, 32).
    let block = |references: usize| {
        let mut block = get_block();
        block.extend_from_slice(&[0x40, 1, b'b', 100]);
        block.extend_from_slice(&[b'x'; 100]);
        block.extend(std::iter::repeat_n(0xbe, references));
        block
    };
    let mut raw = Raw::server(limited);
    let mut bytes = headers(1, &block(20), END_HEADERS | END_STREAM);
    bytes.unsplit(headers(
        3,
        &[0x82, 0x86, 0x84, 0x01, 1, b'h', 0xbe],
        END_HEADERS | END_STREAM,
    ));
    let events = raw.feed(bytes).expect("a stream's fault");
    assert_eq!(
        events[0],
        Event::HeadTooLarge { stream: 1 },
        "2.7 KB decoded: over the limit"
    );
    assert_eq!(
        events[1],
        Event::Headers {
            stream: 3,
            kind: HeadKind::Head,
            end_stream: true
        },
        "the next block decodes: the table took the entry"
    );
    let fields: Vec<_> = raw.conn.take_fields().map(|f| f.name).collect();
    assert_eq!(fields.last(), Some(&Bytes::from("b")));

    let mut raw = Raw::server(limited);
    let error = raw
        .feed(headers(1, &block(1000), END_HEADERS | END_STREAM))
        .expect_err("133 KB from 1 KB: a bomb");
    assert_eq!(error.reason, Reason::ENHANCE_YOUR_CALM);
    assert_eq!(raw.goaway(), Some(Reason::ENHANCE_YOUR_CALM));
}

#[test]
fn frames_on_closed_streams_are_dropped_only_when_this_side_reset_them() {
    let mut raw = Raw::server(config(Role::Server));
    let mut bytes = headers(1, &get_block(), END_HEADERS);
    bytes.unsplit(headers(3, &get_block(), END_HEADERS | END_STREAM));
    raw.feed(bytes).expect("valid");
    raw.conn.send_reset(1, Reason::CANCEL);
    raw.conn
        .send_headers(3, true, |w| w.field(b":status", b"204"));
    raw.feed(BytesMut::new()).expect("nothing to read");
    raw.out.clear();
    // Stream 1's data and trailers were on their way: dropped, nothing said.
    let mut bytes = raw_frame(0x0, 0, 1, b"late");
    bytes.unsplit(headers(
        1,
        &[0x40, 1, b't', 1, b'v'],
        END_HEADERS | END_STREAM,
    ));
    assert_eq!(raw.feed(bytes), Ok(vec![]));
    assert!(raw.out.is_empty(), "{:?}", raw.out);
    // Stream 3 ended both ways: its DATA is a stream error; HEADERS on such a stream (5) a
    // connection error.
    assert_eq!(raw.feed(raw_frame(0x0, END_STREAM, 3, b"x")), Ok(vec![]));
    assert_eq!(raw.resets(), [(3, Reason::STREAM_CLOSED)]);
    raw.feed(headers(5, &get_block(), END_HEADERS | END_STREAM))
        .expect("valid");
    raw.conn
        .send_headers(5, true, |w| w.field(b":status", b"204"));
    let error = raw
        .feed(headers(5, &get_block(), END_HEADERS))
        .expect_err("HEADERS on a closed stream");
    assert_eq!(error.reason, Reason::PROTOCOL_ERROR);
}

#[test]
fn an_answer_sent_before_the_whole_request_resets_the_rest_with_no_error() {
    let mut raw = Raw::server(config(Role::Server));
    raw.feed(headers(1, &get_block(), END_HEADERS))
        .expect("valid");
    raw.conn
        .send_headers(1, false, |w| w.field(b":status", b"413"));
    raw.conn
        .send_data(1, Bytes::from_static(b"too large"), true);
    raw.conn.stop_receiving(1);
    // Data already on its way is dropped, its window given back to the connection.
    let events = raw.feed(raw_frame(0x0, 0, 1, &[0; 1000])).expect("valid");
    assert!(events.is_empty());
    assert_eq!(
        raw.resets(),
        [(1, Reason::NO_ERROR)],
        "after the answer's end"
    );
    let ended = raw.out.iter().position(|f| {
        matches!(
            f,
            Frame::Data {
                end_stream: true,
                ..
            }
        )
    });
    let reset = raw
        .out
        .iter()
        .position(|f| matches!(f, Frame::Reset { .. }));
    assert!(
        ended < reset,
        "the answer is whole before the reset: {:?}",
        raw.out
    );
    assert_eq!(raw.conn.open_streams(), (0, 0));
}

#[test]
fn flow_control_is_enforced_both_ways() {
    // DATA past the stream's window: the stream is reset; past the connection's: the connection.
    let mut raw = Raw::server(Config {
        stream_window: 65_535,
        connection_window: 100_000,
        ..config(Role::Server)
    });
    let mut bytes = headers(1, &get_block(), END_HEADERS);
    for _ in 0..4 {
        bytes.unsplit(raw_frame(0x0, 0, 1, &[0; 16_384]));
    }
    let events = raw.feed(bytes).expect("a stream's fault");
    assert!(events.contains(&Event::Reset {
        stream: 1,
        reason: Reason::FLOW_CONTROL_ERROR,
        by_peer: false
    }));
    let mut raw = Raw::server(config(Role::Server));
    let mut bytes = BytesMut::new();
    for stream in [1, 3] {
        bytes.unsplit(headers(stream, &get_block(), END_HEADERS));
        bytes.unsplit(raw_frame(0x0, 0, stream, &[0; 16_384]));
        bytes.unsplit(raw_frame(0x0, 0, stream, &[0; 16_384]));
    }
    let error = raw.feed(bytes).expect_err("the connection's window");
    assert_eq!(error.reason, Reason::FLOW_CONTROL_ERROR);

    // A WINDOW_UPDATE that takes a window past 2^31-1.
    let mut raw = Raw::server(config(Role::Server));
    let mut bytes = BytesMut::new();
    frame::write_window_update(&mut bytes, 0, frame::MAX_WINDOW);
    let error = raw.feed(bytes).expect_err("overflow");
    assert_eq!(error.reason, Reason::FLOW_CONTROL_ERROR);
}

#[test]
fn data_that_disagrees_with_content_length_resets_the_stream() {
    let mut raw = Raw::server(config(Role::Server));
    let mut block = get_block();
    block.extend_from_slice(&[0x0f, 0x0d, 1, b'3']); // content-length: 3 (static name 28)
    let mut bytes = headers(1, &block, END_HEADERS);
    bytes.unsplit(raw_frame(0x0, END_STREAM, 1, b"four"));
    let events = raw.feed(bytes).expect("a stream's fault");
    assert_eq!(
        events.last(),
        Some(&Event::Reset {
            stream: 1,
            reason: Reason::PROTOCOL_ERROR,
            by_peer: false
        })
    );
}

#[test]
fn each_ping_and_settings_is_answered_once() {
    let mut raw = Raw::server(config(Role::Server));
    let mut bytes = BytesMut::new();
    for i in 0..3u8 {
        frame::write_ping(&mut bytes, false, [i; 8]);
        frame::write_settings(&mut bytes, &Settings::default());
    }
    raw.feed(bytes).expect("valid");
    let pongs = raw
        .out
        .iter()
        .filter(|f| matches!(f, Frame::Ping { ack: true, .. }))
        .count();
    let acks = raw.out.iter().filter(|f| **f == Frame::SettingsAck).count();
    assert_eq!((pongs, acks), (3, 3));
}

#[test]
fn answers_without_content_may_announce_a_length() {
    let mut server = Connection::new(config(Role::Server));
    let mut client = Connection::new(config(Role::Client));
    let (mut to_server, mut to_client) = (BytesMut::new(), BytesMut::new());
    let carry = |from: &mut Connection, to: &mut BytesMut| {
        from.flush();
        let mut chunks = Vec::new();
        from.take_output(&mut chunks);
        for chunk in chunks {
            to.extend_from_slice(&chunk);
        }
    };
    let mut statuses = Vec::new();
    for (method, status) in [("HEAD", "200"), ("GET", "304"), ("GET", "204")] {
        let stream = client.open_stream().expect("a stream");
        if method == "HEAD" {
            client.expect_no_content(stream);
        }
        client.send_headers(stream, true, |w| {
            w.field(b":method", method.as_bytes());
            w.field(b":scheme", b"http");
            w.field(b":path", b"/");
        });
        carry(&mut client, &mut to_server);
        while let Some(event) = server.receive(&mut to_server).expect("server") {
            if let Event::Headers { stream, .. } = event {
                server.send_headers(stream, false, |w| {
                    w.field(b":status", status.as_bytes());
                    w.field(b"content-length", b"1234");
                });
                server.send_data(stream, Bytes::new(), true);
            }
        }
        carry(&mut server, &mut to_client);
        while let Some(event) = client.receive(&mut to_client).expect("client") {
            statuses.push(event);
        }
    }
    assert!(
        statuses.iter().all(|e| !matches!(e, Event::Reset { .. })),
        "{statuses:?}"
    );
    assert_eq!(statuses.len(), 6, "{statuses:?}");
}

/// A stream error on a stream that was never opened (a `PRIORITY` of the wrong length) resets
/// it and reads on: the frames after it are not left unread until more bytes come.
#[test]
fn frames_after_a_stream_error_are_read_on() {
    let mut raw = Raw::server(config(Role::Server));
    let mut bytes = raw_frame(0x2, 0, 7, &[0; 4]);
    bytes.unsplit(headers(9, &get_block(), END_HEADERS | END_STREAM));
    let events = raw.feed(bytes).expect("a stream's fault");
    assert_eq!(
        events,
        [Event::Headers {
            stream: 9,
            kind: HeadKind::Head,
            end_stream: true
        }]
    );
    assert_eq!(raw.resets(), [(7, Reason::FRAME_SIZE_ERROR)]);
}

/// A client whose stream numbers are used up opens no more streams and says it is going away,
/// so that its owner opens another connection instead of waiting on this one.
#[test]
fn a_client_out_of_stream_numbers_is_going_away() {
    let mut client = Connection::new(config(Role::Client));
    client.next_local_stream = frame::MAX_WINDOW;
    assert_eq!(client.open_stream(), Some(frame::MAX_WINDOW));
    assert!(!client.is_going_away());
    assert_eq!(client.open_stream(), None);
    assert!(client.is_going_away());
}

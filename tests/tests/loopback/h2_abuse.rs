//! HTTP/2 abuse against the server sidecar's peer-facing listener, short of rapid reset (in
//! `h2_rapid_reset`): a CONTINUATION flood, HPACK bombs, SETTINGS and PING floods, flow-control
//! windows pushed past 2^31-1, and the protocol errors of RFC 9113 (a zero `WINDOW_UPDATE`,
//! `DATA` on a closed or idle stream, a stream id going backwards).
//!
//! The attacker speaks as a peer proxy does (mutual TLS with a mesh certificate, ALPN
//! `weft-h2`), since that is the position the listener trusts most; as a plaintext caller only
//! where the server treats it differently (the limit on streams it resets for the client's
//! errors). Each case asserts what the attacker is sent, that the server took in only a bounded
//! part of a flood, and that the sidecar serves a normal request through the mesh right after.
//!
//! HTTP/2 from a peer proxy is weft's own (`weft-http2`, `proxy/src/http/link/`); from a
//! plaintext caller it is the `h2` crate. Both guard against all of these: a header block is cut
//! off after a few `CONTINUATION` frames or when it decodes past four times the header list limit
//! (`GOAWAY ENHANCE_YOUR_CALM`), and past the limit itself is answered `431`. SETTINGS and PING
//! floods get no `GOAWAY`: the server writes the acknowledgements before it reads on, so a client
//! that does not read them is no longer read either; the flood waits in the kernel's socket
//! buffers, not in the sidecar (the unread acknowledgements take up to a socket's send buffer,
//! `net.ipv4.tcp_wmem`'s maximum, per connection). Where RFC 9113 asks for a stream error and h2
//! ends the connection instead (a zero `WINDOW_UPDATE` on a stream, `DATA` on a half-closed
//! stream), or names another code (`SETTINGS_INITIAL_WINDOW_SIZE` too large), the peer link does
//! as the RFC says.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use weft_proxy::tls::alpn;
use weft_tests::apps::HttpApp;
use weft_tests::clients::raw_h2::{self, Ending};
use weft_tests::mesh::{Sidecars, identity};
use weft_tests::observe::metrics::metric_in;
use weft_tests::{Mesh, clients, wait};

const HOUR: Duration = Duration::from_secs(3600);
const AUTHORITY: &str = "hello.demo:8080";
/// Far more than any of these cases takes on loopback: they end in milliseconds.
const DEADLINE: Duration = Duration::from_secs(10);
/// HTTP/2's default (and h2's) `SETTINGS_MAX_FRAME_SIZE`.
const MAX_FRAME: usize = 16_384;
/// The sidecar's `SETTINGS_MAX_HEADER_LIST_SIZE`.
const MAX_HEADER_LIST: usize = 64 * 1024;

/// Who attacks the server sidecar's inbound listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attacker {
    /// With a mesh certificate for `attacker`, as a peer proxy.
    Peer,
    /// Without TLS (the listener is permissive), as a caller outside the mesh.
    Plaintext,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A server sidecar in front of an app, and a client sidecar leading to it for the normal
/// requests that show the server still serves.
struct Target {
    mesh: Mesh,
    app: HttpApp,
    sidecars: Sidecars,
}

impl Target {
    async fn start() -> Self {
        let mesh = Mesh::start(HOUR).await;
        let app = HttpApp::start("hello").await;
        let sidecars = mesh.sidecars("web", "hello", app.addr).await;
        Target {
            mesh,
            app,
            sidecars,
        }
    }

    /// A connection to the server sidecar's inbound listener as `attacker`, the client preface
    /// and an empty `SETTINGS` sent. The server's `SETTINGS` are never acknowledged (nor are they
    /// by a real attacker): the sidecar's limits hold from the handshake on.
    async fn connect(&self, attacker: Attacker) -> Box<dyn Io> {
        self.connect_with_socket(attacker).await.0
    }

    /// [`Target::connect`], and a handle on its TCP socket (for its options).
    async fn connect_with_socket(&self, attacker: Attacker) -> (Box<dyn Io>, socket2::Socket) {
        let addr = self.sidecars.server.inbound_addr;
        let (mut io, tcp): (Box<dyn Io>, _) = match attacker {
            Attacker::Peer => {
                let tls = self
                    .mesh
                    .connect_as("attacker", addr, "hello", alpn::MESH_H2)
                    .await;
                let tcp = tls.get_ref().0.as_fd().try_clone_to_owned().unwrap();
                (Box::new(tls), tcp)
            }
            Attacker::Plaintext => {
                let tcp = TcpStream::connect(addr).await.unwrap();
                let fd = tcp.as_fd().try_clone_to_owned().unwrap();
                (Box::new(tcp), fd)
            }
        };
        let mut start = raw_h2::PREFACE.to_vec();
        start.extend(raw_h2::settings(&[]));
        io.write_all(&start).await.unwrap();
        io.flush().await.unwrap();
        (io, socket2::Socket::from(tcp))
    }

    /// A connection metric of the server sidecar for `attacker`'s inbound connections.
    fn attacker_metric(&self, name: &str, attacker: Attacker) -> f64 {
        let (peer, tls) = match attacker {
            Attacker::Peer => (identity("attacker").to_string(), "mtls"),
            Attacker::Plaintext => ("unauthenticated".to_owned(), "plaintext"),
        };
        let series = format!(r#"{name}{{direction="inbound",peer_identity="{peer}",tls="{tls}"}}"#);
        metric_in(&self.sidecars.server.metrics.render(), &series)
    }

    /// The bytes the server sidecar read from `attacker` (after TLS): what it took in.
    fn read_from(&self, attacker: Attacker) -> usize {
        self.attacker_metric("weft_tcp_received_bytes_total", attacker) as usize
    }

    /// Waits until the server sidecar has counted `count` refusals of inbound callers, whatever
    /// their reason (h2's `GOAWAY ENHANCE_YOUR_CALM` for a CONTINUATION flood or an HPACK bomb
    /// is counted under the rapid reset's, `too_many_resets`).
    async fn wait_refusals_counted(&self, count: f64) {
        wait::until(DEADLINE, "the refusal to be counted", || async {
            let metrics = self.sidecars.server.metrics.render();
            let counted = metric_in(&metrics, r#"weft_proxy_errors_total{direction="inbound"}"#);
            (counted == count).then_some(())
        })
        .await;
    }

    /// Waits until the server sidecar holds no connection from `attacker`.
    async fn wait_closed(&self, attacker: Attacker) {
        wait::until(
            DEADLINE,
            "the attacker's connection to be closed",
            || async {
                (self.attacker_metric("weft_tcp_connections_open", attacker) == 0.0).then_some(())
            },
        )
        .await;
    }

    /// A normal request through the mesh is answered by the app.
    async fn assert_serves(&self) {
        let reply = clients::get(self.sidecars.client.forward_addrs[0], "/", AUTHORITY)
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.body, "hello from hello\n");
    }
}

/// Writes `next(i)` for `i` in `0..count` in batches, counting the frames written in `sent`,
/// until all are written, a write fails, or `stop` (set when the server's `GOAWAY` is read: a
/// write after it could reset the connection before the test reads it). Returns the writer.
fn flood<W: AsyncWrite + Unpin + Send + 'static>(
    mut writer: W,
    count: usize,
    next: impl Fn(usize) -> Vec<u8> + Send + 'static,
    sent: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<W> {
    const BATCH: usize = 64;
    tokio::spawn(async move {
        let mut i = 0;
        while i < count && !stop.load(Ordering::SeqCst) {
            let end = (i + BATCH).min(count);
            let batch: Vec<u8> = (i..end).flat_map(&next).collect();
            if writer.write_all(&batch).await.is_err() || writer.flush().await.is_err() {
                break;
            }
            i = end;
            sent.store(i, Ordering::SeqCst);
        }
        writer
    })
}

/// CVE-2024-27316 class: a header block that never ends, `CONTINUATION` after `CONTINUATION`,
/// carrying one header value 10 MiB long. h2 cuts it off after a few frames (`max header list
/// size / max frame size`, plus a quarter, at least 5): `GOAWAY ENHANCE_YOUR_CALM` once the
/// server has taken in a small part of the flood; the app never sees a request.
async fn a_continuation_flood_is_cut_off(attacker: Attacker) {
    const FLOOD: usize = 10 * 1024 * 1024;
    let target = Target::start().await;
    let (mut reader, writer) = tokio::io::split(target.connect(attacker).await);

    let mut block = raw_h2::get_block(AUTHORITY);
    block.push(0x00);
    block.extend(raw_h2::hpack_string(b"x-flood"));
    block.extend(raw_h2::hpack_integer(0x00, 7, FLOOD));
    let headers = raw_h2::frame(raw_h2::HEADERS, raw_h2::END_STREAM, 1, &block);
    let continuation = raw_h2::frame(raw_h2::CONTINUATION, 0, 1, &[b'a'; MAX_FRAME]);
    let (sent, stop) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let frames = FLOOD / MAX_FRAME + 1;
    let flooding = flood(
        writer,
        frames,
        move |i| match i {
            0 => headers.clone(),
            _ => continuation.clone(),
        },
        sent.clone(),
        stop.clone(),
    );
    let ending = raw_h2::ending(&mut reader, 1, DEADLINE).await;
    stop.store(true, Ordering::SeqCst);
    drop(flooding.await.unwrap());

    let (read, sent) = (target.read_from(attacker), sent.load(Ordering::SeqCst));
    assert_eq!(
        ending,
        Ending::GoAway {
            code: raw_h2::ENHANCE_YOUR_CALM,
            last_stream: 0
        },
        "after {sent} of {frames} frames written and {read} bytes read by the server"
    );
    assert!(
        sent < frames,
        "all {frames} frames were written: the server read them all, or buffered them"
    );
    assert!(
        read < 10 * MAX_FRAME,
        "the server read {read} bytes of a {FLOOD}-byte header block before it stopped"
    );
    target.wait_closed(attacker).await;
    target.wait_refusals_counted(1.0).await;
    assert_eq!(target.app.requests(), 0);
    target.assert_serves().await;
}

#[tokio::test]
async fn a_peers_continuation_flood_is_sent_goaway_before_it_is_buffered() {
    a_continuation_flood_is_cut_off(Attacker::Peer).await;
}

#[tokio::test]
async fn a_plaintext_callers_continuation_flood_is_sent_goaway_before_it_is_buffered() {
    a_continuation_flood_is_cut_off(Attacker::Plaintext).await;
}

/// The bomb's header field, `x-bomb: aaa…`, and its size by HPACK's count (name, value, 32).
const BOMB_VALUE: usize = 4000;
const BOMB_FIELD: usize = "x-bomb".len() + BOMB_VALUE + 32;

/// A header block of one [`BOMB_VALUE`]-byte literal, added to the HPACK dynamic table, then
/// `references` one-byte references to it: each decodes to the whole field again. Sent on
/// `stream` as a whole `GET`.
fn hpack_bomb(stream: u32, references: usize) -> Vec<u8> {
    let mut block = raw_h2::get_block(AUTHORITY);
    block.extend(raw_h2::hpack_indexed_literal("x-bomb", &[b'a'; BOMB_VALUE]));
    for _ in 0..references {
        block.extend(raw_h2::hpack_indexed(62));
    }
    assert!(block.len() <= MAX_FRAME, "the bomb fits one frame");
    raw_h2::frame(
        raw_h2::HEADERS,
        raw_h2::END_STREAM | raw_h2::END_HEADERS,
        stream,
        &block,
    )
}

/// A header block of 4 KiB that decodes to about 85 KB, over the sidecar's 64 KiB header list
/// limit: answered `431` on its stream, never forwarded, and the connection serves on.
#[tokio::test]
async fn a_header_block_decoding_past_the_limit_is_answered_431() {
    const REFERENCES: usize = 20;
    const {
        let decoded = (REFERENCES + 1) * BOMB_FIELD;
        assert!(MAX_HEADER_LIST < decoded && decoded < 4 * MAX_HEADER_LIST);
    }
    let target = Target::start().await;
    let mut io = target.connect(Attacker::Peer).await;

    io.write_all(&hpack_bomb(1, REFERENCES)).await.unwrap();
    io.flush().await.unwrap();
    assert_eq!(
        raw_h2::ending(&mut io, 1, DEADLINE).await,
        Ending::Answered { status: 431 }
    );
    still_answers(&mut io, 3).await;
    assert_eq!(target.app.requests(), 1, "only the GET reached the app");
    target.assert_serves().await;
}

/// An HPACK bomb: 16 KB of header block that would decode to 48 MB. h2 stops decoding at four
/// times the header list limit and sends `GOAWAY ENHANCE_YOUR_CALM`.
#[tokio::test]
async fn an_hpack_bomb_is_sent_goaway_before_it_is_decoded() {
    const REFERENCES: usize = 12_000;
    let target = Target::start().await;
    let mut io = target.connect(Attacker::Peer).await;

    io.write_all(&hpack_bomb(1, REFERENCES)).await.unwrap();
    io.flush().await.unwrap();
    assert_eq!(
        raw_h2::ending(&mut io, 1, DEADLINE).await,
        Ending::GoAway {
            code: raw_h2::ENHANCE_YOUR_CALM,
            last_stream: 0
        }
    );
    target.wait_closed(Attacker::Peer).await;
    target.wait_refusals_counted(1.0).await;
    assert_eq!(target.app.requests(), 0);
    target.assert_serves().await;
}

/// What may be between the sidecar's socket and the attacker besides the socket's send buffer:
/// the attacker's receive buffer, TLS and h2 write buffers.
const IN_FLIGHT: usize = 512 * 1024;

/// The most a TCP socket's send buffer grows to on this host (`net.ipv4.tcp_wmem`'s maximum).
fn max_send_buffer() -> usize {
    let wmem = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem").unwrap();
    wmem.split_whitespace().nth(2).unwrap().parse().unwrap()
}

/// Floods `count` frames made by `frame(i)`, none of whose acknowledgements the attacker reads
/// at first. The server must stop reading the flood once its unread acknowledgements back up
/// (nothing is buffered in the sidecar beyond them); once the attacker reads, every frame is
/// acknowledged, each by a frame `acknowledges(i, frame)` accepts, in order, and the connection
/// still serves.
async fn a_flood_waits_for_its_acknowledgements(
    count: usize,
    frame: impl Fn(usize) -> Vec<u8> + Send + 'static,
    acknowledges: impl Fn(usize, &raw_h2::Frame) -> bool,
) {
    /// Nothing written for this long while the flood is not all sent: the server stopped
    /// reading.
    const STILL: Duration = Duration::from_millis(300);
    let target = Target::start().await;
    let (io, socket) = target.connect_with_socket(Attacker::Peer).await;
    // Small while the attacker does not read, so that the answers back up in the sidecar's
    // socket rather than in megabytes of the attacker's receive buffer (loopback autotuning).
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let (reader, writer) = tokio::io::split(io);
    let mut reader = BufReader::new(reader);
    let (sent, stop) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let flooding = flood(writer, count, frame, sent.clone(), stop);

    let mut last = (usize::MAX, Instant::now());
    let stalled_at = wait::until(DEADLINE, "the flood to stall or end", || {
        let now = sent.load(Ordering::SeqCst);
        if now != last.0 {
            last = (now, Instant::now());
        }
        let done = now == count || last.1.elapsed() >= STILL;
        async move { done.then_some(now) }
    })
    .await;
    let read = target.read_from(Attacker::Peer);
    assert!(
        stalled_at < count,
        "the server read all {count} frames ({read} bytes) while none of its acknowledgements \
         was read"
    );
    // All the server wrote is unread; beyond its socket's send buffer it would be held in the
    // sidecar.
    let unread = target.attacker_metric("weft_tcp_sent_bytes_total", Attacker::Peer) as usize;
    let bound = max_send_buffer() + IN_FLIGHT;
    assert!(
        unread <= bound,
        "the sidecar wrote {unread} bytes the attacker has not read, more than {bound}: they \
         wait in the sidecar"
    );

    socket.set_recv_buffer_size(4 * 1024 * 1024).unwrap();
    let mut acknowledged = 0;
    let acknowledgements = async {
        while acknowledged < count {
            match raw_h2::read_frame(&mut reader).await {
                Ok(Some(f)) if acknowledges(acknowledged, &f) => acknowledged += 1,
                Ok(Some(f)) if f.kind == raw_h2::GOAWAY => panic!("GOAWAY: {f:?}"),
                Ok(Some(_)) => {}
                other => panic!("after {acknowledged} acknowledgements: {other:?}"),
            }
        }
    };
    tokio::time::timeout(FLOOD_DEADLINE, acknowledgements)
        .await
        .unwrap_or_else(|_| panic!("{acknowledged} of {count} acknowledged in {FLOOD_DEADLINE:?}"));
    let mut writer = flooding.await.unwrap();
    writer.write_all(&raw_h2::get(1, AUTHORITY)).await.unwrap();
    writer.flush().await.unwrap();
    assert_eq!(
        raw_h2::ending(&mut reader, 1, DEADLINE).await,
        Ending::Answered { status: 200 }
    );
    drop((reader, writer, socket));
    target.wait_closed(Attacker::Peer).await;
    target.assert_serves().await;
}

/// Frames in a SETTINGS or PING flood: their acknowledgements (9 and 17 bytes) are more than the
/// socket buffers between the sidecar and the attacker hold (the sender's grows to 4 MiB).
const FLOOD: usize = 1_000_000;
/// For the server to take in and acknowledge a whole flood (a few seconds on a busy machine).
const FLOOD_DEADLINE: Duration = Duration::from_secs(30);

/// 1,000,000 `SETTINGS` (each must be acknowledged before the next is read).
#[tokio::test]
async fn a_settings_flood_is_read_only_as_fast_as_its_acks_are() {
    a_flood_waits_for_its_acknowledgements(
        FLOOD,
        |_| raw_h2::settings(&[(raw_h2::INITIAL_WINDOW_SIZE, 65_535)]),
        |_, f| f.kind == raw_h2::SETTINGS && f.flags & raw_h2::ACK != 0,
    )
    .await;
}

/// 1,000,000 `PING`s, each answered with its own payload.
#[tokio::test]
async fn a_ping_flood_is_read_only_as_fast_as_its_pongs_are() {
    a_flood_waits_for_its_acknowledgements(
        FLOOD,
        |i| raw_h2::ping(i as u64),
        |i, f| {
            f.kind == raw_h2::PING
                && f.flags & raw_h2::ACK != 0
                && f.payload == (i as u64).to_be_bytes()
        },
    )
    .await;
}

/// Sends `frames` on a fresh connection as `attacker` and returns what the server did about
/// `stream`.
async fn send(target: &Target, attacker: Attacker, frames: &[Vec<u8>], stream: u32) -> Ending {
    let mut io = target.connect(attacker).await;
    io.write_all(&frames.concat()).await.unwrap();
    io.flush().await.unwrap();
    raw_h2::ending(&mut io, stream, DEADLINE).await
}

/// The connection's send window is 65,535 at first: 2^31-1 more overflows it, a connection
/// error (RFC 9113, 6.9.1).
#[tokio::test]
async fn a_connection_window_pushed_past_the_maximum_is_a_flow_control_error() {
    let target = Target::start().await;
    let update = raw_h2::window_update(0, raw_h2::MAX_WINDOW);
    assert_eq!(
        send(&target, Attacker::Peer, &[update], 1).await,
        Ending::GoAway {
            code: raw_h2::FLOW_CONTROL_ERROR,
            last_stream: 0
        }
    );
    target.wait_closed(Attacker::Peer).await;
    target.assert_serves().await;
}

/// A stream's window pushed past 2^31-1 is a stream error: that stream is reset, the connection
/// serves on (RFC 9113, 6.9.1).
#[tokio::test]
async fn a_stream_window_pushed_past_the_maximum_resets_the_stream() {
    let target = Target::start().await;
    let mut io = target.connect(Attacker::Peer).await;
    let frames = [
        raw_h2::post(1, AUTHORITY),
        raw_h2::window_update(1, raw_h2::MAX_WINDOW),
    ];
    io.write_all(&frames.concat()).await.unwrap();
    io.flush().await.unwrap();
    assert_eq!(
        raw_h2::ending(&mut io, 1, DEADLINE).await,
        Ending::Reset {
            code: raw_h2::FLOW_CONTROL_ERROR
        }
    );
    still_answers(&mut io, 3).await;
    target.assert_serves().await;
}

/// `SETTINGS_INITIAL_WINDOW_SIZE` above 2^31-1 is a connection error `FLOW_CONTROL_ERROR` (RFC
/// 9113, 6.5.2; h2 names it `PROTOCOL_ERROR`, an invalid setting).
#[tokio::test]
async fn an_initial_window_above_the_maximum_is_a_connection_error() {
    let target = Target::start().await;
    let settings = raw_h2::settings_initial_window(raw_h2::MAX_WINDOW + 1);
    assert_eq!(
        send(&target, Attacker::Peer, &[settings], 1).await,
        Ending::GoAway {
            code: raw_h2::FLOW_CONTROL_ERROR,
            last_stream: 0
        }
    );
    target.wait_closed(Attacker::Peer).await;
    target.assert_serves().await;
}

/// A `WINDOW_UPDATE` of 0 on the connection is a connection error `PROTOCOL_ERROR`; on a stream,
/// a stream error (RFC 9113, 6.9): that stream is reset, the connection serves on.
#[tokio::test]
async fn a_zero_window_update_is_a_protocol_error() {
    let target = Target::start().await;
    let frames = [raw_h2::window_update(0, 0)];
    assert_eq!(
        send(&target, Attacker::Peer, &frames, 1).await,
        Ending::GoAway {
            code: raw_h2::PROTOCOL_ERROR,
            last_stream: 0
        }
    );
    target.wait_closed(Attacker::Peer).await;

    let mut io = target.connect(Attacker::Peer).await;
    let frames = [raw_h2::post(1, AUTHORITY), raw_h2::window_update(1, 0)];
    io.write_all(&frames.concat()).await.unwrap();
    io.flush().await.unwrap();
    assert_eq!(
        raw_h2::ending(&mut io, 1, DEADLINE).await,
        Ending::Reset {
            code: raw_h2::PROTOCOL_ERROR
        }
    );
    still_answers(&mut io, 3).await;
    target.assert_serves().await;
}

/// `DATA` on a stream the client ended whose answer is not yet sent (half-closed) is a stream
/// error `STREAM_CLOSED` (RFC 9113, 5.1; h2 ends the whole connection with `PROTOCOL_ERROR`):
/// the stream is reset before its request reaches the app, the connection serves on.
#[tokio::test]
async fn data_on_a_half_closed_stream_is_a_stream_closed_error() {
    let target = Target::start().await;
    let mut io = target.connect(Attacker::Peer).await;
    let frames = [raw_h2::get(1, AUTHORITY), raw_h2::last_data(1, b"late")];
    io.write_all(&frames.concat()).await.unwrap();
    io.flush().await.unwrap();
    assert_eq!(
        raw_h2::ending(&mut io, 1, DEADLINE).await,
        Ending::Reset {
            code: raw_h2::STREAM_CLOSED
        }
    );
    still_answers(&mut io, 3).await;
    assert_eq!(
        target.app.requests(),
        1,
        "only the request that was still answered"
    );
    target.assert_serves().await;
}

/// `DATA` on a stream closed both ways (answered in full) is a stream error `STREAM_CLOSED`
/// (RFC 9113, 6.1): that stream is reset, the connection serves on.
#[tokio::test]
async fn data_after_the_answer_is_a_stream_closed_error() {
    let target = Target::start().await;
    let mut io = target.connect(Attacker::Peer).await;
    io.write_all(&raw_h2::get(1, AUTHORITY)).await.unwrap();
    io.flush().await.unwrap();
    let answered = async {
        while let Some(f) = raw_h2::read_frame(&mut io).await.unwrap() {
            if f.stream == 1 && f.flags & raw_h2::END_STREAM != 0 {
                return;
            }
        }
        panic!("the connection closed before the answer");
    };
    tokio::time::timeout(DEADLINE, answered).await.unwrap();

    io.write_all(&raw_h2::last_data(1, b"late")).await.unwrap();
    io.flush().await.unwrap();
    assert_eq!(
        raw_h2::ending(&mut io, 1, DEADLINE).await,
        Ending::Reset {
            code: raw_h2::STREAM_CLOSED
        }
    );
    still_answers(&mut io, 3).await;
    target.assert_serves().await;
}

/// `DATA` on a stream never opened (idle) is a connection error `PROTOCOL_ERROR` (RFC 9113, 5.1).
#[tokio::test]
async fn data_on_an_idle_stream_is_a_protocol_error() {
    let target = Target::start().await;
    assert_eq!(
        send(&target, Attacker::Peer, &[raw_h2::last_data(7, b"x")], 7).await,
        Ending::GoAway {
            code: raw_h2::PROTOCOL_ERROR,
            last_stream: 0
        }
    );
    target.wait_closed(Attacker::Peer).await;
    target.assert_serves().await;
}

/// Opening stream 5 closes the idle streams below it: `HEADERS` on 3 after 5 is a connection
/// error `PROTOCOL_ERROR` (RFC 9113, 5.1.1), and stream 5 is the last the server processed.
#[tokio::test]
async fn a_stream_id_going_backwards_is_a_protocol_error() {
    let target = Target::start().await;
    let frames = [raw_h2::get(5, AUTHORITY), raw_h2::get(3, AUTHORITY)];
    assert_eq!(
        send(&target, Attacker::Peer, &frames, 3).await,
        Ending::GoAway {
            code: raw_h2::PROTOCOL_ERROR,
            last_stream: 5
        }
    );
    target.wait_closed(Attacker::Peer).await;
    target.assert_serves().await;
}

/// Streams whose header block is malformed (`connection: close`, forbidden in HTTP/2), each
/// reset by the server with `PROTOCOL_ERROR` without reaching the app: more of them than h2's
/// limit on streams it resets for the client's errors (1,024 per connection).
const MALFORMED: u32 = 1_100;

fn malformed_streams() -> Vec<u8> {
    (0..MALFORMED)
        .flat_map(|i| raw_h2::get_with_header(2 * i + 1, AUTHORITY, "connection", "close"))
        .collect()
}

/// A plaintext caller keeps h2's limit: `GOAWAY ENHANCE_YOUR_CALM` past 1,024 such streams.
#[tokio::test]
async fn a_plaintext_caller_making_the_server_reset_streams_is_sent_goaway() {
    let target = Target::start().await;
    let last = 2 * MALFORMED + 1;
    let frames = [malformed_streams(), raw_h2::get(last, AUTHORITY)];
    assert!(matches!(
        send(&target, Attacker::Plaintext, &frames, last).await,
        Ending::GoAway {
            code: raw_h2::ENHANCE_YOUR_CALM,
            ..
        }
    ));
    target.wait_closed(Attacker::Plaintext).await;
    target.wait_refusals_counted(1.0).await;
    assert_eq!(target.app.requests(), 0);
    target.assert_serves().await;
}

/// A peer proxy's connection has no such limit (a peer's late body frames would hit it, see
/// `h2_rapid_reset`): each stream is reset, the connection serves on, the app sees only the
/// last request. Each refusal costs the server one frame's work.
#[tokio::test]
async fn a_peer_making_the_server_reset_streams_is_refused_stream_by_stream() {
    let target = Target::start().await;
    let mut io = target.connect(Attacker::Peer).await;
    let last = 2 * MALFORMED + 1;
    io.write_all(&[malformed_streams(), raw_h2::get(last, AUTHORITY)].concat())
        .await
        .unwrap();
    io.flush().await.unwrap();

    let mut resets = 0;
    let answered = async {
        loop {
            let f = raw_h2::read_frame(&mut io).await.unwrap();
            match f {
                Some(f) if f.kind == raw_h2::RST_STREAM => {
                    assert_eq!(f.payload, raw_h2::PROTOCOL_ERROR.to_be_bytes(), "{f:?}");
                    resets += 1;
                }
                Some(f) if f.kind == raw_h2::HEADERS && f.stream == last => return,
                Some(f) if f.kind == raw_h2::GOAWAY => panic!("GOAWAY after {resets}: {f:?}"),
                Some(_) => {}
                None => panic!("the connection closed after {resets} resets"),
            }
        }
    };
    tokio::time::timeout(DEADLINE, answered).await.unwrap();
    assert_eq!(resets, MALFORMED);
    assert_eq!(target.app.requests(), 1);
    target.assert_serves().await;
}

/// A GET on `stream` of the same connection is answered: what came before was refused for its
/// stream alone.
async fn still_answers<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S, stream: u32) {
    io.write_all(&raw_h2::get(stream, AUTHORITY)).await.unwrap();
    io.flush().await.unwrap();
    assert_eq!(
        raw_h2::ending(io, stream, DEADLINE).await,
        Ending::Answered { status: 200 }
    );
}

//! A peer proxy that refuses every other stream it is sent, as a draining sidecar does to a
//! stream that crosses its `GOAWAY`: the stream was never processed, its app never saw it. The
//! streams in between it answers itself (`200`, once their request has ended), noting the bytes
//! of body each brought.
//!
//! It proves a mesh identity (a certificate from the mesh's CA) and speaks HTTP/2 frame by frame
//! ([`crate::clients::raw_h2`]), so the refusal is exact and happens every time instead of once
//! in a race: a `GOAWAY` whose last stream id is below the stream, or `RST_STREAM
//! REFUSED_STREAM`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::clients::raw_h2::{self, DATA, GOAWAY, HEADERS, SETTINGS};
use crate::mesh::Mesh;

const PING: u8 = 0x6;
const ACK: u8 = 0x1;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
/// HPACK static table entry 8: `:status 200`.
const STATUS_200: u8 = 0x88;
const NO_ERROR: u32 = 0x0;
const REFUSED_STREAM: u32 = 0x7;

/// How the peer refuses a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `GOAWAY` (`NO_ERROR`) with the last stream id below the stream: the draining server's
    /// final `GOAWAY`, which a new stream crossed.
    GoAway,
    /// `RST_STREAM` with `REFUSED_STREAM`.
    RefusedStream,
}

pub struct RefusingPeer {
    state: Arc<State>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct State {
    /// Streams received, across connections: the odd ones (1st, 3rd, …) are refused.
    streams: AtomicUsize,
    refused: AtomicUsize,
    /// The body length of every stream answered, in the order answered.
    answered: Mutex<Vec<usize>>,
}

impl RefusingPeer {
    /// Listens on `listen` as `account` of `mesh` (offering `weft-h2`).
    pub async fn start(mesh: &Mesh, account: &str, listen: SocketAddr, how: Refusal) -> Self {
        let cert = mesh.client_cert(account);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(cert.chain, cert.key)
            .unwrap();
        config.alpn_protocols = vec![weft_proxy::tls::alpn::MESH_H2.to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind(listen).await.unwrap();
        let state = Arc::new(State::default());
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, state) = (acceptor.clone(), shared.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        let _ = serve(tls, how, &state).await;
                    }
                });
            }
        });
        Self { state, task }
    }

    /// Streams refused so far.
    pub fn refused(&self) -> usize {
        self.state.refused.load(Ordering::SeqCst)
    }

    /// The body length of every stream answered so far, in the order answered.
    pub fn answered(&self) -> Vec<usize> {
        self.state.answered.lock().unwrap().clone()
    }
}

impl Drop for RefusingPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves one connection until the client closes it: settings and pings answered, every other
/// stream refused, the others answered once their request has ended.
async fn serve<S>(mut io: S, how: Refusal, state: &State) -> std::io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut preface = [0u8; 24];
    io.read_exact(&mut preface).await?;
    io.write_all(&raw_h2::frame(SETTINGS, 0, 0, &[])).await?;
    io.flush().await?;
    // Streams taken, with the body bytes received so far.
    let mut open: HashMap<u32, usize> = HashMap::new();
    while let Some(frame) = raw_h2::read_frame(&mut io).await? {
        let ended = frame.flags & END_STREAM != 0;
        let answer = match frame.kind {
            SETTINGS if frame.flags & ACK == 0 => raw_h2::frame(SETTINGS, ACK, 0, &[]),
            PING if frame.flags & ACK == 0 => raw_h2::frame(PING, ACK, 0, &frame.payload),
            HEADERS
                if state
                    .streams
                    .fetch_add(1, Ordering::SeqCst)
                    .is_multiple_of(2) =>
            {
                state.refused.fetch_add(1, Ordering::SeqCst);
                refusal(how, frame.stream)
            }
            HEADERS => {
                open.insert(frame.stream, 0);
                match ended {
                    true => answer(state, &mut open, frame.stream),
                    false => continue,
                }
            }
            DATA => match open.get_mut(&frame.stream) {
                Some(received) => {
                    *received += frame.payload.len();
                    match ended {
                        true => answer(state, &mut open, frame.stream),
                        false => continue,
                    }
                }
                None => continue,
            },
            _ => continue,
        };
        io.write_all(&answer).await?;
        io.flush().await?;
    }
    Ok(())
}

fn refusal(how: Refusal, stream: u32) -> Vec<u8> {
    match how {
        Refusal::GoAway => {
            let mut payload = stream.saturating_sub(2).to_be_bytes().to_vec();
            payload.extend_from_slice(&NO_ERROR.to_be_bytes());
            raw_h2::frame(GOAWAY, 0, 0, &payload)
        }
        Refusal::RefusedStream => raw_h2::rst_stream(stream, REFUSED_STREAM),
    }
}

/// `200` ending `stream`, whose request has ended; its body length is noted.
fn answer(state: &State, open: &mut HashMap<u32, usize>, stream: u32) -> Vec<u8> {
    let received = open.remove(&stream).unwrap_or(0);
    state.answered.lock().unwrap().push(received);
    raw_h2::frame(HEADERS, END_STREAM | END_HEADERS, stream, &[STATUS_200])
}

//! One HTTP/2 connection's rules, either side, without I/O.
//!
//! The proxy reads bytes from its socket into a buffer and calls [`Connection::receive`] until it
//! returns `None`; each [`Event`] is a head, data, a reset or the peer going away, on a stream
//! named by its number. It sends with [`Connection::send_headers`], [`Connection::send_data`],
//! [`Connection::send_trailers`] and [`Connection::send_reset`], then [`Connection::flush`] and
//! [`Connection::take_output`] give it the bytes to write, control frames (`SETTINGS`
//! acknowledgements, `PING` answers, `WINDOW_UPDATE`s) included.
//!
//! What it enforces, against a peer that breaks the rules or floods (each ends in `RST_STREAM` for
//! a stream's fault or `GOAWAY` for the connection's, with the code RFC 9113 names):
//! - the preface and `SETTINGS` first; stream numbers that only grow, of the peer's parity;
//! - this side's limit of concurrent streams (more are refused with `REFUSED_STREAM`, their
//!   header blocks still decoded so HPACK stays in step);
//! - header blocks: `CONTINUATION` only right after its `HEADERS`, the block's size and number of
//!   frames bounded (the "CONTINUATION flood"), the decoded list bounded (HPACK bombs);
//! - flow control: the peer may not send past this side's windows, nor raise this side's windows
//!   to send past 2^31-1 (`FLOW_CONTROL_ERROR`);
//! - a message's `DATA` adds up to its `content-length`; trailers end their stream;
//! - `PUSH_PROMISE` is refused (push is disabled).
//!
//! Floods of `SETTINGS` or `PING`, each of which asks for an answer, are bounded by the proxy: it
//! reads no more while the answers it has not written pass a bound, so a peer that does not read
//! is held back by TCP.
//!
//! What is not here: HTTP semantics (pseudo-fields, the request's form) and a stream's
//! application state, which belong to the proxy; the "rapid reset" budget, which the proxy keeps
//! per connection because it depends on whether a reset stream was answered.

mod head;
mod receive;
mod send;
mod streams;

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

pub use send::{FieldWriter, TrailerWriter};
pub use streams::StreamIdHasher;
use streams::{Stream, Streams};

use crate::frame::{self, Reason, Settings};
use crate::hpack::{Decoder, Encoder, Field};

/// Which end of the connection this side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

/// This side's limits, advertised in its `SETTINGS`.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub role: Role,
    /// How many streams the peer may have open at once (a server's limit on requests).
    pub max_concurrent_streams: u32,
    /// The window of each stream the peer opens or answers on: at least 65,535, the window a peer
    /// may use before it has read this side's `SETTINGS`.
    pub stream_window: u32,
    /// The connection's window, shared by every stream (at least 65,535).
    pub connection_window: u32,
    /// The largest decoded header list (names, values, 32 bytes per field), per RFC 9113.
    pub max_header_list_size: u32,
}

/// What a `HEADERS` frame (with its `CONTINUATION`s) was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadKind {
    /// A request (server) or a final answer (client): its fields via [`Connection::take_fields`].
    Head,
    /// An interim (1xx) answer (client); the final one follows.
    Interim,
    /// Trailers, which end the stream.
    Trailers,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Headers {
        stream: u32,
        kind: HeadKind,
        end_stream: bool,
    },
    /// A head whose decoded list is over [`Config::max_header_list_size`]: nothing of it is
    /// delivered; the stream is still open (a server answers 431, a client resets it).
    HeadTooLarge { stream: u32 },
    Data {
        stream: u32,
        data: Bytes,
        end_stream: bool,
    },
    /// The stream ended abnormally: the peer reset it (`by_peer`), or this side did because the
    /// peer broke a rule on it (the reset is already queued).
    Reset {
        stream: u32,
        reason: Reason,
        by_peer: bool,
    },
    /// The peer is going away: streams above `last_stream` that this side opened were not
    /// processed (each also gets a `Reset` with `REFUSED_STREAM`), and no new one may be opened.
    GoAway { last_stream: u32, reason: Reason },
}

/// The connection is over: this side found the peer broke a rule (`GOAWAY` with `reason` is
/// queued: write the output, then close), or the peer reported an error in its `GOAWAY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionError {
    pub reason: Reason,
    pub what: &'static str,
    pub by_peer: bool,
}

impl std::fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.by_peer {
            write!(f, "the peer ended the connection: {}", self.reason)
        } else {
            write!(f, "{} ({})", self.what, self.reason)
        }
    }
}

impl std::error::Error for ConnectionError {}

/// A header block whose `CONTINUATION`s are still to come.
#[derive(Debug)]
struct PendingBlock {
    stream: u32,
    end_stream: bool,
    fragments: BytesMut,
    frames: u32,
}

pub struct Connection {
    role: Role,
    config: Config,
    decoder: Decoder,
    encoder: Encoder,
    streams: Streams,
    /// Streams with data, trailers or an end to send, in turn order.
    ready: VecDeque<u32>,
    drained: Vec<u32>,
    events: VecDeque<Event>,
    fields: Vec<Field>,
    out: BytesMut,
    chunks: Vec<Bytes>,
    /// What this side may still send on the connection (the peer's window).
    send_window: i64,
    /// What the peer may still send on the connection, and what has been consumed since the last
    /// `WINDOW_UPDATE`.
    recv_window: i64,
    recv_released: u32,
    peer_initial_window: u32,
    peer_max_frame_size: u32,
    peer_max_concurrent_streams: u32,
    local_open: u32,
    remote_open: u32,
    next_local_stream: u32,
    last_remote_stream: u32,
    going_away: Option<Reason>,
    /// How many bytes of the client's preface are still to be read (server).
    preface_left: usize,
    /// The peer's first `SETTINGS` has been read.
    peer_settings: bool,
    settings_unacked: u32,
    block: Option<PendingBlock>,
    closed: Option<ConnectionError>,
    /// The streams this side reset last, newest last: frames the peer sent before it learnt of
    /// the reset are dropped, not taken for a broken rule.
    recent_resets: VecDeque<u32>,
    /// `PING` acknowledgements received (for the application's keep-alive).
    pongs: u64,
}

/// How many of the streams this side reset are remembered (see `recent_resets`).
const RECENT_RESETS: usize = 1024;

impl Connection {
    /// A connection whose first bytes out (the client's preface, then `SETTINGS` and the
    /// connection's `WINDOW_UPDATE`) are queued.
    pub fn new(config: Config) -> Connection {
        let mut out = BytesMut::with_capacity(256);
        if config.role == Role::Client {
            out.extend_from_slice(frame::PREFACE);
        }
        frame::write_settings(
            &mut out,
            &Settings {
                enable_push: Some(false),
                max_concurrent_streams: Some(config.max_concurrent_streams),
                initial_window_size: Some(config.stream_window),
                max_header_list_size: Some(config.max_header_list_size),
                ..Settings::default()
            },
        );
        let extra = config
            .connection_window
            .saturating_sub(frame::DEFAULT_WINDOW);
        if extra > 0 {
            frame::write_window_update(&mut out, 0, extra);
        }
        Connection {
            role: config.role,
            config,
            decoder: Decoder::new(4096),
            encoder: Encoder::new(),
            streams: Streams::default(),
            ready: VecDeque::new(),
            drained: Vec::new(),
            events: VecDeque::new(),
            fields: Vec::new(),
            out,
            chunks: Vec::new(),
            send_window: i64::from(frame::DEFAULT_WINDOW),
            recv_window: i64::from(config.connection_window.max(frame::DEFAULT_WINDOW)),
            recv_released: 0,
            peer_initial_window: frame::DEFAULT_WINDOW,
            peer_max_frame_size: frame::DEFAULT_MAX_FRAME_SIZE,
            peer_max_concurrent_streams: u32::MAX,
            local_open: 0,
            remote_open: 0,
            next_local_stream: 1,
            last_remote_stream: 0,
            going_away: None,
            preface_left: if config.role == Role::Server {
                frame::PREFACE.len()
            } else {
                0
            },
            peer_settings: false,
            settings_unacked: 1,
            block: None,
            closed: None,
            recent_resets: VecDeque::new(),
            pongs: 0,
        }
    }

    /// The fields of the last [`Event::Headers`], in order (pseudo-fields as the peer sent them).
    pub fn take_fields(&mut self) -> std::vec::Drain<'_, Field> {
        self.fields.drain(..)
    }

    /// Streams open now: those the peer opened, and those this side opened.
    pub fn open_streams(&self) -> (u32, u32) {
        (self.remote_open, self.local_open)
    }

    pub fn is_server(&self) -> bool {
        self.role == Role::Server
    }

    /// Whether the peer's first `SETTINGS` has been read (a client then knows its limit of
    /// concurrent streams).
    pub fn has_peer_settings(&self) -> bool {
        self.peer_settings
    }

    /// Sends a `PING`; [`Connection::pongs`] counts the acknowledgements.
    pub fn ping(&mut self, payload: [u8; 8]) {
        frame::write_ping(&mut self.out, false, payload);
    }

    /// How many `PING` acknowledgements the peer has sent.
    pub fn pongs(&self) -> u64 {
        self.pongs
    }

    /// Whether a graceful shutdown began ([`Connection::go_away`]) or the peer sent `GOAWAY`.
    pub fn is_going_away(&self) -> bool {
        self.going_away.is_some()
    }

    /// Ends the connection for a rule the peer broke: `GOAWAY` queued, the error returned.
    fn fail(&mut self, reason: Reason, what: &'static str) -> ConnectionError {
        let error = ConnectionError {
            reason,
            what,
            by_peer: false,
        };
        if self.closed.is_none() {
            frame::write_goaway(
                &mut self.out,
                self.last_remote_stream,
                reason,
                what.as_bytes(),
            );
            self.closed = Some(error);
        }
        error
    }

    /// Resets a stream for a rule the peer broke on it, and tells the application.
    fn reset_for(&mut self, stream: u32, reason: Reason) {
        if let Some(state) = self.streams.remove(&stream) {
            self.forget(&state);
            self.events.push_back(Event::Reset {
                stream,
                reason,
                by_peer: false,
            });
        }
        self.write_reset(stream, reason);
    }

    /// Queues `RST_STREAM` and remembers the stream for the frames still on their way.
    fn write_reset(&mut self, stream: u32, reason: Reason) {
        frame::write_reset(&mut self.out, stream, reason);
        if self.recent_resets.len() == RECENT_RESETS {
            self.recent_resets.pop_front();
        }
        self.recent_resets.push_back(stream);
    }

    /// This side reset `stream` lately: what the peer still sends on it is dropped.
    fn reset_lately(&self, stream: u32) -> bool {
        self.recent_resets.iter().rev().any(|&s| s == stream)
    }
}

#[cfg(test)]
mod tests;

//! A link connection's task, either end: it owns the socket, reads, writes what the connection
//! queued, and hands each event to its stream's mailbox.
//!
//! It writes before it reads, and reads nothing while what it wrote has not all been taken by the
//! socket: a peer that floods frames which ask for an answer (`PING`, `SETTINGS`) without reading
//! the answers is held back by TCP, not by this proxy's memory. What starts or answers a stream
//! (a request's head on the server, an answer's on the client) is the [`Role`]'s business; data,
//! trailers and resets go to the stream's [`Slot`] the same way on both ends.

use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncWrite;
use weft_http2::connection::{Event, HeadKind};
use weft_http2::frame::Reason;

use super::fields;
use super::shared::{Link, Shared};
use crate::http::refusal::Refusal;
use crate::transport::BoxedConnection;

/// Reads in a row before the task lets other tasks run.
const READS_PER_TURN: u32 = 16;
/// The room a read asks for. The frames read are slices of the buffer (no copy), so a buffer
/// lives as long as the longest-lived head or data read into it: at 512 requests in flight,
/// 16 KiB reads held 1–1.6 MB more than 8 KiB ones, for no fewer instructions per request.
const READ_SIZE: usize = 8 * 1024;

/// What one end does with a head that opens or answers a stream.
pub trait Role {
    fn head(&mut self, link: &Link, shared: &mut Shared, stream: u32, end_stream: bool);
}

/// Pings the peer every `interval`; the connection ends when a ping goes unanswered for
/// `timeout` (the peer, or the path to it, is gone though no packet said so).
pub struct KeepAlive {
    pub interval: Duration,
    pub timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// The acknowledgements counted when the ping in flight was sent.
    awaiting: Option<u64>,
}

impl KeepAlive {
    pub fn new(interval: Duration, timeout: Duration) -> KeepAlive {
        KeepAlive {
            interval,
            timeout,
            sleep: Box::pin(tokio::time::sleep(interval)),
            awaiting: None,
        }
    }

    /// `false` when a ping went unanswered.
    fn poll(&mut self, cx: &mut Context<'_>, shared: &mut Shared) -> bool {
        let now = tokio::time::Instant::now();
        if let Some(before) = self.awaiting
            && shared.conn.pongs() > before
        {
            self.awaiting = None;
            self.sleep.as_mut().reset(now + self.interval);
        }
        while self.sleep.as_mut().poll(cx).is_ready() {
            if self.awaiting.is_some() {
                return false;
            }
            shared.conn.ping(*b"weftlink");
            self.awaiting = Some(shared.conn.pongs());
            self.sleep.as_mut().reset(now + self.timeout);
        }
        true
    }
}

pub struct Driver<R> {
    pub io: BoxedConnection,
    pub link: Link,
    pub role: R,
    pub keep_alive: Option<KeepAlive>,
    input: BytesMut,
    /// What the connection queued and the socket has not taken yet, oldest first.
    output: Vec<Bytes>,
    /// A graceful shutdown began: the task ends once no stream is left.
    pub draining: bool,
    /// Nothing more is read: the connection ends once the output is written.
    pub closing: bool,
    pub refused: Option<Refusal>,
    /// Set when the task ends, for whoever hands the connection out.
    pub ended: Option<Arc<AtomicBool>>,
}

impl<R: Role> Driver<R> {
    pub fn new(io: BoxedConnection, link: Link, role: R) -> Driver<R> {
        Driver {
            io,
            link,
            role,
            keep_alive: None,
            input: BytesMut::new(),
            output: Vec::new(),
            draining: false,
            closing: false,
            refused: None,
            ended: None,
        }
    }

    /// Ready when the connection is over.
    pub fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut reads = 0;
        loop {
            let idle = {
                let mut shared = self.link.lock();
                let shared = &mut *shared;
                if let Some(keep_alive) = &mut self.keep_alive
                    && !keep_alive.poll(cx, shared)
                {
                    tracing::debug!(
                        "closing a link: no answer to a ping in {:?}",
                        keep_alive.timeout
                    );
                    return Poll::Ready(());
                }
                shared.conn.flush();
                shared.conn.take_output(&mut self.output);
                for stream in shared.conn.drained() {
                    if let Some(slot) = shared.slots.get_mut(&stream) {
                        slot.wake();
                    }
                }
                shared.wake_waiters();
                shared.writer = Some(cx.waker().clone());
                (self.draining || shared.released)
                    && shared.slots.is_empty()
                    && shared.conn.open_streams() == (0, 0)
            };
            if self.write(cx).is_err() {
                return Poll::Ready(());
            }
            // The socket took not all of it: read on once it has.
            if !self.output.is_empty() {
                return Poll::Pending;
            }
            if self.closing || idle {
                return Poll::Ready(());
            }
            if self.input.capacity() - self.input.len() < READ_SIZE / 4 {
                self.input.reserve(READ_SIZE);
            }
            match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.input) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => return Poll::Ready(()),
                Poll::Ready(Ok(_)) => self.dispatch(),
                Poll::Ready(Err(e)) => {
                    tracing::debug!("a link failed: {e}");
                    return Poll::Ready(());
                }
            }
            reads += 1;
            if reads == READS_PER_TURN {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
    }

    /// The connection is over: streams still waiting on it learn so.
    pub fn finish(&mut self) {
        let mut shared = self.link.lock();
        shared.closed = true;
        for slot in shared.slots.values_mut() {
            slot.lost = true;
            slot.wake();
        }
        shared.wake_waiters();
        drop(shared);
        if let Some(ended) = &self.ended {
            ended.store(true, Ordering::Relaxed);
        }
    }

    /// Writes what is queued as far as the socket takes it (`Err`: the socket failed).
    fn write(&mut self, cx: &mut Context<'_>) -> Result<(), ()> {
        while !self.output.is_empty() {
            let mut slices = [IoSlice::new(&[]); 64];
            let count = self.output.len().min(slices.len());
            for (slice, chunk) in slices.iter_mut().zip(&self.output) {
                *slice = IoSlice::new(chunk);
            }
            let polled = Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..count]);
            let written = match polled {
                Poll::Pending => return Ok(()),
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Err(()),
                Poll::Ready(Ok(n)) => n,
            };
            let mut left = written;
            let mut done = 0;
            for chunk in &mut self.output {
                if left >= chunk.len() {
                    left -= chunk.len();
                    done += 1;
                } else {
                    chunk.advance(left);
                    break;
                }
            }
            self.output.drain(..done);
        }
        match Pin::new(&mut self.io).poll_flush(cx) {
            Poll::Ready(Err(_)) => Err(()),
            _ => Ok(()),
        }
    }

    /// Hands what was read to the connection and its events to the streams.
    fn dispatch(&mut self) {
        let link = self.link.clone();
        let mut shared = link.lock();
        let shared = &mut *shared;
        loop {
            match shared.conn.receive(&mut self.input) {
                Ok(Some(event)) => self.on_event(&link, shared, event),
                Ok(None) => return,
                Err(e) => {
                    self.closing = true;
                    if e.by_peer {
                        tracing::debug!("the peer ended a link: {e}");
                    } else if self.refused.is_none() {
                        self.refused = Some(Refusal::BrokenHttp2 {
                            reason: e.reason,
                            what: e.what,
                        });
                    }
                    return;
                }
            }
        }
    }

    fn on_event(&mut self, link: &Link, shared: &mut Shared, event: Event) {
        match event {
            Event::Headers {
                stream,
                kind: HeadKind::Head,
                end_stream,
            } => self.role.head(link, shared, stream, end_stream),
            Event::Headers {
                stream,
                kind: HeadKind::Trailers,
                ..
            } => {
                let trailers = fields::trailers(shared.conn.take_fields());
                let Some(slot) = shared.slots.get_mut(&stream) else {
                    return;
                };
                match trailers {
                    Ok(trailers) => slot.frames.push_back(http_body::Frame::trailers(trailers)),
                    Err(e) => {
                        tracing::debug!("stream {stream}: {e}");
                        slot.reset = Some(Reason::PROTOCOL_ERROR);
                        shared.conn.send_reset(stream, Reason::PROTOCOL_ERROR);
                    }
                }
                slot.ended = true;
                slot.wake();
            }
            // An interim answer (1xx): the final one follows.
            Event::Headers {
                kind: HeadKind::Interim,
                ..
            } => drop(shared.conn.take_fields()),
            Event::HeadTooLarge { stream } => {
                if shared.conn.is_server() {
                    shared.conn.send_headers(stream, true, |w| {
                        w.field(b":status", b"431");
                    });
                    shared.conn.stop_receiving(stream);
                } else {
                    shared.conn.send_reset(stream, Reason::PROTOCOL_ERROR);
                    if let Some(slot) = shared.slots.get_mut(&stream) {
                        slot.reset = Some(Reason::PROTOCOL_ERROR);
                        slot.wake();
                    }
                }
            }
            Event::Data {
                stream,
                data,
                end_stream,
            } => match shared.slots.get_mut(&stream) {
                Some(slot) if !slot.body_dropped => {
                    if !data.is_empty() {
                        slot.frames.push_back(http_body::Frame::data(data));
                    }
                    slot.ended = end_stream;
                    slot.wake();
                }
                _ => shared.conn.release(stream, data.len()),
            },
            Event::Reset { stream, reason, .. } => {
                if let Some(slot) = shared.slots.get_mut(&stream) {
                    slot.reset = Some(reason);
                    slot.wake();
                }
            }
            Event::GoAway { .. } => {}
        }
    }
}

//! The server end of a link: the peer proxy's requests, each served by a task of its own.
//!
//! The connection's task reads, writes and dispatches; it never waits on a stream. It writes
//! before it reads, and reads nothing while what it wrote has not all been taken by the socket:
//! a peer that floods frames which ask for an answer (`PING`, `SETTINGS`) without reading the
//! answers is held back by TCP, not by this proxy's memory. What [`super::super::server::h2_server`]
//! does besides is done here too: a stream the peer resets before its answer drops its handler
//! and spends the connection's [`ResetBudget`], whose exhaustion ends the connection with
//! `GOAWAY ENHANCE_YOUR_CALM`; a drain sends `GOAWAY` and lets the streams in flight finish.

use std::future::Future;
use std::io::IoSlice;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderValue, Request, Response, header};
use http_body::Body as _;
use tokio::io::AsyncWrite;
use tokio_util::sync::CancellationToken;
use weft_http2::connection::{Config, Connection, Event, HeadKind, Role};
use weft_http2::frame::Reason;

use super::body::LinkBody;
use super::fields;
use super::shared::{Link, Shared, Slot};
use crate::http::body::Body;
use crate::http::body::h2_stream::strip_connection_specific;
use crate::http::server::Refusal;
use crate::http::server::h2_resets::ResetBudget;
use crate::http::server::h2_server::Settings;
use crate::transport::BoxedConnection;

/// A stream's answer queued past this waits for the peer's window before reading on.
const MAX_QUEUED: usize = 64 * 1024;
/// Reads that find a full buffer before the task lets other tasks run.
const READS_PER_TURN: u32 = 16;
const READ_SIZE: usize = 16 * 1024;

/// Serves a peer proxy's link until it closes it or `stop` fires (the streams in flight finish).
pub async fn serve<F, Fut>(
    io: BoxedConnection,
    settings: &Settings,
    stop: CancellationToken,
    handler: F,
) -> Option<Refusal>
where
    F: Fn(Request<Body>) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let conn = Connection::new(Config {
        role: Role::Server,
        max_concurrent_streams: settings.max_concurrent_streams,
        stream_window: settings.stream_window,
        connection_window: settings.connection_window,
        max_header_list_size: settings.max_header_list_size,
    });
    let resets = Arc::new(ResetBudget::new(settings.peer_reset_allowance));
    let mut driver = Driver {
        io,
        link: Link::new(conn),
        input: BytesMut::new(),
        output: Vec::new(),
        backlog: 0,
        handler,
        resets: resets.clone(),
        draining: false,
        closing: false,
        refused: None,
    };
    let mut stopped = pin!(stop.cancelled());
    let mut exhausted = pin!(resets.exhausted());
    std::future::poll_fn(|cx| {
        if !driver.draining && stopped.as_mut().poll(cx).is_ready() {
            driver.draining = true;
            driver.link.lock().conn.go_away(Reason::NO_ERROR);
        }
        if driver.refused.is_none() && exhausted.as_mut().poll(cx).is_ready() {
            driver.refused = Some(Refusal::TooManyResets);
            driver.closing = true;
            driver.link.lock().conn.go_away(Reason::ENHANCE_YOUR_CALM);
        }
        driver.poll(cx)
    })
    .await;
    // Streams still waiting on the connection learn it is gone.
    let mut shared = driver.link.lock();
    for slot in shared.slots.values_mut() {
        slot.reset.get_or_insert(Reason::CANCEL);
        slot.wake();
    }
    drop(shared);
    driver.refused
}

struct Driver<F> {
    io: BoxedConnection,
    link: Link,
    input: BytesMut,
    /// What the connection queued and the socket has not taken yet, oldest first.
    output: Vec<Bytes>,
    backlog: usize,
    handler: F,
    resets: Arc<ResetBudget>,
    draining: bool,
    /// Nothing more is read: the connection ends once the output is written.
    closing: bool,
    refused: Option<Refusal>,
}

impl<F, Fut> Driver<F>
where
    F: Fn(Request<Body>) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    /// Ready when the connection is over.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut reads = 0;
        loop {
            let idle = {
                let mut shared = self.link.lock();
                let shared = &mut *shared;
                shared.conn.flush();
                shared.conn.take_output(&mut self.output);
                for stream in shared.conn.drained() {
                    if let Some(slot) = shared.slots.get_mut(&stream) {
                        slot.wake();
                    }
                }
                shared.writer = Some(cx.waker().clone());
                self.draining && shared.slots.is_empty() && shared.conn.open_streams() == (0, 0)
            };
            self.backlog = self.output.iter().map(Bytes::len).sum();
            if self.write(cx).is_err() {
                return Poll::Ready(());
            }
            if self.backlog > 0 {
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
                Poll::Ready(Ok(0)) => {
                    self.closing = true;
                    return Poll::Ready(());
                }
                Poll::Ready(Ok(_)) => self.dispatch(),
                Poll::Ready(Err(e)) => {
                    tracing::debug!("the peer proxy's link failed: {e}");
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
            self.backlog -= written;
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
                Ok(Some(event)) => self.on_event(shared, event),
                Ok(None) => return,
                Err(e) => {
                    self.closing = true;
                    if e.by_peer {
                        tracing::debug!("the peer proxy ended the link: {e}");
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

    fn on_event(&mut self, shared: &mut Shared, event: Event) {
        match event {
            Event::Headers {
                stream,
                kind: HeadKind::Head,
                end_stream,
            } => self.start(shared, stream, end_stream),
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
            Event::Headers { .. } | Event::GoAway { .. } => {}
            Event::HeadTooLarge { stream } => {
                shared.conn.send_headers(stream, true, |w| {
                    w.field(b":status", b"431");
                });
                shared.conn.stop_receiving(stream);
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
        }
    }

    /// A request's head: its stream's task is started.
    fn start(&mut self, shared: &mut Shared, stream: u32, end_stream: bool) {
        let head = match fields::request(shared.conn.take_fields()) {
            Ok(head) => head,
            Err(e) => {
                tracing::debug!("refused stream {stream}: {e}");
                shared.conn.send_reset(stream, Reason::PROTOCOL_ERROR);
                return;
            }
        };
        let body = if end_stream {
            Body::Full(None)
        } else {
            Body::Link(LinkBody::new(self.link.clone(), stream, head.headers()))
        };
        shared.slots.insert(
            stream,
            Slot {
                ended: end_stream,
                body_dropped: end_stream,
                ..Slot::default()
            },
        );
        let request = head.map(|()| body);
        let task = serve_stream(
            self.link.clone(),
            stream,
            request,
            self.handler.clone(),
            self.resets.clone(),
        );
        // Boxed: see `h2_server`.
        tokio::spawn(Box::pin(task));
    }
}

async fn serve_stream<F, Fut>(
    link: Link,
    stream: u32,
    request: Request<Body>,
    handler: F,
    resets: Arc<ResetBudget>,
) where
    F: Fn(Request<Body>) -> Fut,
    Fut: Future<Output = Response<Body>>,
{
    let response = tokio::select! {
        // The reset first: a stream the peer reset before it was taken up is not started.
        biased;
        reason = reset_of(&link, stream) => {
            tracing::debug!("the peer reset stream {stream} before its answer: {reason}");
            resets.reset();
            link.lock().release_slot(stream, true);
            return;
        }
        response = handler(request) => response,
    };
    resets.answered();
    let (mut head, body) = response.into_parts();
    strip_connection_specific(&mut head.headers);
    if let Some(length) = body.size_hint().exact()
        && !head.headers.contains_key(header::CONTENT_LENGTH)
    {
        head.headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    let end = body.is_end_stream();
    {
        let mut shared = link.lock();
        shared.conn.send_headers(stream, end, |w| {
            fields::write_response(head.status, &head.headers, w);
        });
        shared.wake_writer();
    }
    crate::http::spare_headers::give_back_map(head.headers);
    if !end {
        send_body(&link, stream, body).await;
    }
    link.lock().release_slot(stream, true);
}

/// Ready with the reason once the peer has reset `stream`.
fn reset_of(link: &Link, stream: u32) -> impl Future<Output = Reason> + '_ {
    std::future::poll_fn(move |cx| {
        let mut shared = link.lock();
        let Some(slot) = shared.slots.get_mut(&stream) else {
            return Poll::Ready(Reason::CANCEL);
        };
        if let Some(reason) = slot.reset {
            return Poll::Ready(reason);
        }
        if !slot
            .sender
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            slot.sender = Some(cx.waker().clone());
        }
        Poll::Pending
    })
}

/// Sends an answer's body on `stream` until it ends, fails or the peer resets the stream; reads
/// on only while less than [`MAX_QUEUED`] of it waits for the peer's window.
async fn send_body(link: &Link, stream: u32, mut body: Body) {
    std::future::poll_fn(|cx| {
        loop {
            {
                let mut shared = link.lock();
                let shared = &mut *shared;
                let Some(slot) = shared.slots.get_mut(&stream) else {
                    return Poll::Ready(());
                };
                if slot.reset.is_some() {
                    return Poll::Ready(());
                }
                if shared.conn.queued(stream) >= MAX_QUEUED {
                    shared.conn.notify_drained(stream);
                    slot.sender = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
            let frame = ready!(Pin::new(&mut body).poll_frame(cx));
            let end = body.is_end_stream();
            let mut shared = link.lock();
            let over = match frame {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        shared.conn.send_data(stream, data, end);
                        end
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            shared.conn.send_trailers(stream, |w| {
                                for (name, value) in &trailers {
                                    w.field(name.as_str().as_bytes(), value.as_bytes());
                                }
                            });
                        }
                        true
                    }
                },
                None => {
                    shared.conn.send_data(stream, Bytes::new(), true);
                    true
                }
                Some(Err(e)) => {
                    tracing::debug!("the answer's body failed, resetting stream {stream}: {e}");
                    shared.conn.send_reset(stream, Reason::INTERNAL_ERROR);
                    true
                }
            };
            shared.wake_writer();
            if over {
                return Poll::Ready(());
            }
        }
    })
    .await
}

//! One request and its response on an HTTP/1.1 connection, run by whoever polls it: the
//! request's own task sends the head and streams the body while it reads the answer (an app may
//! answer before it has read the whole body), and the response body goes on sending what is left
//! of the request while it is read. No task and no channel per connection.
//!
//! The connection's buffers exist only while bytes move: an idle connection in the pool holds its
//! socket and nothing else, and an exchange waiting for the app's answer holds none either (its
//! write buffer goes back once the request is out, and the answer's first read is into the
//! stack), so memory follows the bytes in flight, not the requests the app is working on.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::{Method, StatusCode};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncWrite, ReadBuf};

use crate::http::BoxError;
use crate::http::h1::buffers;
use crate::http::h1::head::MAX_HEAD_BYTES;
use crate::http::h1::{self, Chunk, ChunkedDecoder, Framing, H1Error, ResponseHead};
use crate::transport::BoxedConnection;

/// Data frames up to this size are copied behind the chunk line (one write); larger ones are
/// written from their own buffer.
const COPY_LIMIT: usize = 16 * 1024;
/// How much room a read of a head has at least.
const HEAD_READ_SIZE: usize = 4 * 1024;
/// How much room a read of a body has at least: large bodies move in fewer, larger frames.
const BODY_READ_SIZE: usize = 16 * 1024;

/// A connection to an HTTP/1.1 server, with the state of the exchange in progress on it.
pub struct Exchange<B> {
    io: BoxedConnection,
    /// Bytes read and not yet consumed; no capacity while idle.
    read: BytesMut,
    /// Bytes to write; no capacity while idle.
    write: BytesMut,
    /// A large data frame, written after `write`.
    write_data: Bytes,
    /// `write_data` is a chunk's data: its CRLF follows it.
    crlf_after_data: bool,
    /// The request body, with how it is framed; kept unpolled for a retry until sending starts.
    request: Option<B>,
    request_framing: Framing,
    /// The request has been sent whole.
    request_done: bool,
    /// The body has been polled: a retry could no longer send it whole.
    request_started: bool,
    /// Writing failed (the server stopped reading): the rest of the request is dropped.
    write_failed: Option<io::Error>,
    method: Method,
    reading: Reading,
    /// Whether the server may take another request on this connection.
    keep_alive: bool,
    /// A response byte has arrived on this exchange.
    answered: bool,
    /// The connection served an exchange before this one.
    pub reused: bool,
}

/// Where the response body stands.
#[derive(Debug)]
enum Reading {
    Length(u64),
    Chunked(ChunkedDecoder),
    Close,
    Done,
}

impl<B> Exchange<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    pub fn new(io: BoxedConnection) -> Self {
        Self {
            io,
            read: BytesMut::new(),
            write: BytesMut::new(),
            write_data: Bytes::new(),
            crlf_after_data: false,
            request: None,
            request_framing: Framing::Empty,
            request_done: true,
            request_started: false,
            write_failed: None,
            method: Method::GET,
            reading: Reading::Done,
            keep_alive: true,
            answered: false,
            reused: false,
        }
    }

    /// Starts an exchange: the head of `parts`, then `body`, framed as `framing` says.
    pub fn start(&mut self, parts: &http::request::Parts, body: B, framing: Framing) {
        if self.write.capacity() == 0 {
            self.write = buffers::take();
        }
        h1::encode_request_head(
            &parts.method,
            &parts.uri,
            parts.version,
            &parts.headers,
            framing,
            &mut self.write,
        );
        self.request = Some(body);
        self.request_framing = framing;
        self.request_done = framing == Framing::Empty;
        self.request_started = false;
        self.write_failed = None;
        self.method = parts.method.clone();
        self.answered = false;
    }

    /// The request body, if none of it has been sent (for a retry on another connection).
    pub fn take_unsent_body(&mut self) -> Option<B> {
        match self.request_started {
            true => None,
            false => self.request.take(),
        }
    }

    /// Whether a failed exchange may be retried on a new connection: a reused connection the
    /// server closed before answering (it had timed out the idle connection as the request
    /// went out), for a method safe to send twice.
    pub fn stale(&self) -> bool {
        self.reused && !self.answered && self.method.is_idempotent() && !self.request_started
    }

    /// Sends the request until the final response head arrives (interim `1xx` answers other
    /// than `101` are read past).
    pub fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<Result<ResponseHead, BoxError>> {
        loop {
            if let Poll::Ready(Err(e)) = self.poll_send(cx) {
                return Poll::Ready(Err(e));
            }
            if !self.read.is_empty() {
                match h1::read_response(&mut self.read, &self.method)? {
                    Some(head) => {
                        if head.status.is_informational()
                            && head.status != StatusCode::SWITCHING_PROTOCOLS
                        {
                            continue;
                        }
                        self.reading = match head.framing {
                            Framing::Empty => Reading::Done,
                            Framing::Length(n) => Reading::Length(n),
                            Framing::Chunked => Reading::Chunked(ChunkedDecoder::new()),
                            Framing::CloseDelimited => Reading::Close,
                        };
                        self.keep_alive = head.keep_alive;
                        return Poll::Ready(Ok(head));
                    }
                    None if self.read.len() >= MAX_HEAD_BYTES => {
                        return Poll::Ready(Err(H1Error::HeadTooLarge.into()));
                    }
                    None => {}
                }
            }
            // Until the answer starts, no read buffer: the first read is into the stack.
            let read = match self.read.capacity() {
                0 => ready!(self.poll_first_read(cx))?,
                _ => ready!(self.poll_read(cx, HEAD_READ_SIZE))?,
            };
            if read == 0 {
                let error: BoxError = match self.write_failed.take() {
                    Some(e) => e.into(),
                    None => "the app closed the connection before answering".into(),
                };
                return Poll::Ready(Err(error));
            }
            self.answered = true;
        }
    }

    /// The next frame of the response body (sending on what is left of the request).
    pub fn poll_body(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.write_failed.is_none() {
            // The request's rest goes out as the answer comes in; a failure to send it is
            // noted, and only matters if the answer then breaks off too.
            if let Poll::Ready(Err(e)) = self.poll_send(cx) {
                return Poll::Ready(Some(Err(e)));
            }
        }
        loop {
            match &mut self.reading {
                Reading::Done => return Poll::Ready(None),
                Reading::Length(left) => {
                    if !self.read.is_empty() {
                        let take = usize::try_from(*left)
                            .unwrap_or(usize::MAX)
                            .min(self.read.len());
                        *left -= take as u64;
                        if *left == 0 {
                            self.reading = Reading::Done;
                        }
                        let data = buffers::hand_on(&mut self.read, take);
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                Reading::Chunked(decoder) => match decoder.decode(&mut self.read) {
                    Err(e) => return Poll::Ready(Some(Err(e.into()))),
                    Ok(Some(Chunk::Data(data))) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(Some(Chunk::Trailers(trailers))) => {
                        self.reading = Reading::Done;
                        return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                    }
                    Ok(Some(Chunk::End)) => {
                        self.reading = Reading::Done;
                        return Poll::Ready(None);
                    }
                    Ok(None) => {}
                },
                Reading::Close => {
                    if !self.read.is_empty() {
                        let all = self.read.len();
                        let data = buffers::hand_on(&mut self.read, all);
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
            }
            if ready!(self.poll_read(cx, BODY_READ_SIZE))? == 0 {
                if matches!(self.reading, Reading::Close) {
                    self.reading = Reading::Done;
                    self.keep_alive = false;
                    return Poll::Ready(None);
                }
                return Poll::Ready(Some(Err(H1Error::Truncated.into())));
            }
        }
    }

    pub fn is_end_stream(&self) -> bool {
        matches!(self.reading, Reading::Done)
    }

    pub fn size_hint(&self) -> SizeHint {
        match self.reading {
            Reading::Done => SizeHint::with_exact(0),
            Reading::Length(left) => SizeHint::with_exact(left),
            _ => SizeHint::default(),
        }
    }

    /// Whether the connection can carry the next request: both messages complete, nothing
    /// unexpected read, and neither side asked to close. Frees the exchange's buffers.
    pub fn finish(&mut self) -> bool {
        let reusable = self.keep_alive
            && matches!(self.reading, Reading::Done)
            && self.request_done
            && self.write.is_empty()
            && self.write_data.is_empty()
            && self.write_failed.is_none()
            && self.read.is_empty();
        buffers::give_back(&mut self.read);
        buffers::give_back(&mut self.write);
        self.request = None;
        self.reused = true;
        reusable
    }

    /// The connection after a `101 Switching Protocols`, with the bytes already read past it.
    pub fn into_upgraded(self) -> (Bytes, BoxedConnection) {
        (self.read.freeze(), self.io)
    }

    /// Whether the server has closed an idle connection (or sent something unasked): checked
    /// without waiting before the connection is used again.
    pub fn closed_while_idle(&mut self) -> bool {
        let mut probe = [0u8; 1];
        let mut buf = tokio::io::ReadBuf::new(&mut probe);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        !matches!(
            tokio::io::AsyncRead::poll_read(Pin::new(&mut self.io), &mut cx, &mut buf),
            Poll::Pending
        )
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, room: usize) -> Poll<Result<usize, BoxError>> {
        if self.read.capacity() == 0 {
            self.read = buffers::take();
        }
        self.read.reserve(room);
        let n = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut self.io),
            cx,
            &mut self.read
        ))?;
        Poll::Ready(Ok(n))
    }

    /// The answer's first read, into the stack: while the app works on the answer the exchange
    /// holds no read buffer; what arrives is copied into one from the pool. Only for the head:
    /// the body is read into the pool buffer directly, in reads as large as it has room for.
    fn poll_first_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, BoxError>> {
        let mut space = [MaybeUninit::<u8>::uninit(); buffers::BUFFER_SIZE];
        let mut read = ReadBuf::uninit(&mut space);
        ready!(tokio::io::AsyncRead::poll_read(
            Pin::new(&mut self.io),
            cx,
            &mut read
        ))?;
        let bytes = read.filled();
        if !bytes.is_empty() {
            self.read = buffers::take();
            self.read.extend_from_slice(bytes);
        }
        Poll::Ready(Ok(bytes.len()))
    }

    /// Writes what is buffered and what the request body has ready, until both are done or
    /// would block. A write error stops the sending (kept in `write_failed`); a failing request
    /// body is an error.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.write_failed.is_some() {
            return Poll::Ready(Ok(()));
        }
        match self.poll_send_inner(cx) {
            Poll::Ready(Err(Sending::Write(e))) => {
                self.write_failed = Some(e);
                self.request = None;
                self.request_done = true;
                self.keep_alive = false;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(Sending::Body(e))) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_send_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Sending>> {
        loop {
            // What the body has ready goes behind what is buffered first, so that a head and the
            // body that came with it leave in one write.
            let body_waits = self.gather(cx)?;
            if !self.write.is_empty() {
                let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.write))
                    .map_err(Sending::Write)?;
                if n == 0 {
                    return Poll::Ready(Err(Sending::Write(io::ErrorKind::WriteZero.into())));
                }
                self.write.advance(n);
                continue;
            }
            if !self.write_data.is_empty() {
                let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.write_data))
                    .map_err(Sending::Write)?;
                if n == 0 {
                    return Poll::Ready(Err(Sending::Write(io::ErrorKind::WriteZero.into())));
                }
                self.write_data.advance(n);
                if self.write_data.is_empty() && self.crlf_after_data {
                    self.crlf_after_data = false;
                    self.write.extend_from_slice(b"\r\n");
                }
                continue;
            }
            if self.request_done {
                // The request is out: its write buffer serves other exchanges while the app
                // works on the answer.
                buffers::give_back(&mut self.write);
            }
            // Whatever is written is flushed before waiting for more of the body.
            ready!(Pin::new(&mut self.io).poll_flush(cx)).map_err(Sending::Write)?;
            return match body_waits {
                true => Poll::Pending,
                false => Poll::Ready(Ok(())),
            };
        }
    }

    /// Encodes the body's frames that are ready behind the buffered bytes, up to [`COPY_LIMIT`]
    /// buffered or a large frame. `Ok(true)`: the body has more to come, not ready yet.
    fn gather(&mut self, cx: &mut Context<'_>) -> Result<bool, Sending> {
        while !self.request_done && self.write_data.is_empty() && self.write.len() < COPY_LIMIT {
            let Some(body) = self.request.as_mut() else {
                return Ok(false);
            };
            let Poll::Ready(frame) = Pin::new(body).poll_frame(cx) else {
                return Ok(true);
            };
            self.request_started = true;
            match frame {
                None => {
                    if self.request_framing == Framing::Chunked {
                        h1::encode_last_chunk(None, &mut self.write);
                    }
                    self.request_done = true;
                }
                Some(Err(e)) => {
                    self.request_done = true;
                    self.keep_alive = false;
                    return Err(Sending::Body(e.into()));
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.queue_data(data),
                    Err(frame) => {
                        if let (Ok(trailers), Framing::Chunked) =
                            (frame.into_trailers(), self.request_framing)
                        {
                            h1::encode_last_chunk(Some(&trailers), &mut self.write);
                            self.request_done = true;
                        }
                    }
                },
            }
        }
        Ok(false)
    }

    fn queue_data(&mut self, data: Bytes) {
        if data.is_empty() || self.request_framing == Framing::Empty {
            return;
        }
        let chunked = self.request_framing == Framing::Chunked;
        if chunked {
            h1::encode::encode_chunk_size(data.len(), &mut self.write);
        }
        if data.len() <= COPY_LIMIT {
            self.write.extend_from_slice(&data);
            if chunked {
                self.write.extend_from_slice(b"\r\n");
            }
        } else {
            // The buffer (the chunk line) goes out first, then the data, then the chunk's CRLF.
            self.write_data = data;
            self.crlf_after_data = chunked;
        }
    }
}

/// Why sending stopped.
enum Sending {
    /// The connection would not take the bytes (the server stopped reading).
    Write(io::Error),
    /// The request body failed.
    Body(BoxError),
}

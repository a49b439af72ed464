//! A request body read off the caller's HTTP/1.1 connection by whoever forwards it.
//!
//! The server ([`crate::http::server::h1_server`]) reads a request's head and hands the request
//! on; the body is then read by the request's forwarder, often in another task (an HTTP/2 stream
//! to the peer proxy, a connection to the app). So for the request's duration the body owns the
//! connection's read side ([`H1Reader`]: the socket's read half, the bytes read ahead, and how far
//! the body's framing has got), and gives it back to the connection's loop through a oneshot as
//! soon as the body ends, or when it is dropped before its end (the loop then drains the rest or
//! closes). A request without a body never lends the read side, and costs no oneshot.
//!
//! `Expect: 100-continue`: the caller waits for `100 Continue` before it sends the body. The body
//! asks the loop to write it when it is first polled, as hyper does, so a request answered before
//! its body is wanted (refused by authorization or a rate limit) is never uploaded.

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf, ReadHalf};
use tokio::sync::oneshot;

use crate::http::h1::{Chunk, ChunkedDecoder, buffers};
use crate::transport::BoxedConnection;

/// How much room a read of body bytes asks for.
const READ_SIZE: usize = 16 * 1024;
/// How much an idle connection reads into the stack at once: a head and the body that came with
/// it (a small upload) in one read.
const IDLE_READ: usize = buffers::BUFFER_SIZE;

/// The read side of an HTTP/1.1 connection: the socket's read half, the bytes read ahead of the
/// parser (the rest of a head, a body, pipelined requests), and where the current request's body
/// stands.
pub struct H1Reader {
    io: ReadHalf<BoxedConnection>,
    /// Empty and unallocated while the connection is idle.
    pub buf: BytesMut,
    body: Progress,
}

/// How far the current request's body has been read.
#[derive(Debug)]
enum Progress {
    /// `Content-Length` bytes still to come (more than zero).
    Length(u64),
    Chunked(ChunkedDecoder),
    /// Read to its end (or there was none): the next bytes are the next request's.
    Done,
    /// Malformed, or the connection ended first: nothing more can be read.
    Failed,
}

impl H1Reader {
    pub fn new(io: ReadHalf<BoxedConnection>) -> Self {
        Self {
            io,
            buf: BytesMut::new(),
            body: Progress::Done,
        }
    }

    /// The read half and the bytes read past the last head, for an upgraded connection.
    pub fn into_parts(self) -> (ReadHalf<BoxedConnection>, BytesMut) {
        (self.io, self.buf)
    }

    /// Starts reading a body of `length` bytes.
    pub fn expect_length(&mut self, length: u64) {
        self.body = match length {
            0 => Progress::Done,
            n => Progress::Length(n),
        };
    }

    /// Starts reading a chunked body, `decoder` having read as far as it has.
    pub fn expect_chunked(&mut self, decoder: ChunkedDecoder) {
        self.body = Progress::Chunked(decoder);
    }

    /// Whether the current request's body has been read to its end.
    pub fn is_done(&self) -> bool {
        matches!(self.body, Progress::Done)
    }

    /// Whether the current request's body failed (then the connection cannot go on).
    pub fn failed(&self) -> bool {
        matches!(self.body, Progress::Failed)
    }

    /// Waits for the first bytes of the next request on an idle connection, which holds no
    /// buffer: they are read into the stack, then copied into a buffer from the pool. `Ok(0)`
    /// when the caller has closed the connection.
    pub fn poll_idle_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut space = [MaybeUninit::<u8>::uninit(); IDLE_READ];
        let mut read = ReadBuf::uninit(&mut space);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut read))?;
        let bytes = read.filled();
        if !bytes.is_empty() {
            self.buf = buffers::take();
            self.buf.extend_from_slice(bytes);
        }
        Poll::Ready(Ok(bytes.len()))
    }

    /// Reads more bytes into the buffer; `Ok(0)` when the caller has closed the connection.
    pub fn poll_read_more(&mut self, cx: &mut Context<'_>, room: usize) -> Poll<io::Result<usize>> {
        self.buf.reserve(room);
        pin!(self.io.read_buf(&mut self.buf)).poll(cx)
    }

    /// The next frame of the current request's body; `None` at its end.
    pub fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        loop {
            match &mut self.body {
                Progress::Done | Progress::Failed => return Poll::Ready(None),
                Progress::Length(left) if !self.buf.is_empty() => {
                    let take = (*left).min(self.buf.len() as u64) as usize;
                    *left -= take as u64;
                    if *left == 0 {
                        self.body = Progress::Done;
                    }
                    return Poll::Ready(Some(Ok(Frame::data(buffers::hand_on(
                        &mut self.buf,
                        take,
                    )))));
                }
                Progress::Length(_) => {}
                Progress::Chunked(decoder) => match decoder.decode(&mut self.buf) {
                    Ok(Some(Chunk::Data(data))) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(Some(Chunk::Trailers(trailers))) => {
                        self.body = Progress::Done;
                        return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                    }
                    Ok(Some(Chunk::End)) => {
                        self.body = Progress::Done;
                        return Poll::Ready(None);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        self.body = Progress::Failed;
                        // `InvalidData`: the caller's body was malformed (see `caller`).
                        let e = io::Error::new(io::ErrorKind::InvalidData, e);
                        return Poll::Ready(Some(Err(e)));
                    }
                },
            }
            match ready!(self.poll_read_more(cx, READ_SIZE)) {
                Ok(0) => {
                    self.body = Progress::Failed;
                    return Poll::Ready(Some(Err(io::ErrorKind::UnexpectedEof.into())));
                }
                Ok(_) => {}
                Err(e) => {
                    self.body = Progress::Failed;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.body {
            Progress::Length(left) => SizeHint::with_exact(left),
            Progress::Done | Progress::Failed => SizeHint::with_exact(0),
            Progress::Chunked(_) => SizeHint::default(),
        }
    }
}

/// A request's body, read from the connection it came on (see the module doc). The reader is
/// boxed once per connection and moves between the loop and the bodies, which keeps this (and
/// so every [`crate::http::body::Body`]) small.
pub struct H1RequestBody {
    /// `None` once given back.
    reader: Option<Box<H1Reader>>,
    back: Option<oneshot::Sender<Box<H1Reader>>>,
    /// Told when the body is first polled, if the caller waits for `100 Continue`.
    wants_continue: Option<oneshot::Sender<()>>,
}

impl std::fmt::Debug for H1RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1RequestBody")
            .field("body", &self.reader.as_ref().map(|r| &r.body))
            .finish_non_exhaustive()
    }
}

impl H1RequestBody {
    /// The body `reader` has begun to read; `reader` comes back through `back` when it ends or
    /// is dropped, and `wants_continue` is told when it is first polled.
    pub fn new(
        reader: Box<H1Reader>,
        back: oneshot::Sender<Box<H1Reader>>,
        wants_continue: Option<oneshot::Sender<()>>,
    ) -> Self {
        Self {
            reader: Some(reader),
            back: Some(back),
            wants_continue,
        }
    }

    fn give_back(&mut self) {
        if let (Some(reader), Some(back)) = (self.reader.take(), self.back.take()) {
            // The connection's loop may be gone (the caller hung up): nothing to give back to.
            let _ = back.send(reader);
        }
    }
}

impl Drop for H1RequestBody {
    fn drop(&mut self) {
        self.give_back();
    }
}

impl http_body::Body for H1RequestBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        if let Some(wants_continue) = self.wants_continue.take() {
            let _ = wants_continue.send(());
        }
        let Some(reader) = &mut self.reader else {
            return Poll::Ready(None);
        };
        let polled = ready!(reader.poll_frame(cx));
        if !matches!(reader.body, Progress::Length(_) | Progress::Chunked(_)) {
            self.give_back();
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.reader.as_ref().is_none_or(|reader| reader.is_done())
    }

    fn size_hint(&self) -> SizeHint {
        self.reader
            .as_ref()
            .map_or(SizeHint::with_exact(0), |reader| reader.size_hint())
    }
}

#[cfg(test)]
mod tests {
    use http_body::Body as _;
    use http_body_util::BodyExt;
    use tokio::io::AsyncWriteExt;

    use super::*;

    fn reader_of(input: &'static [u8]) -> Box<H1Reader> {
        let (client, server) = tokio::io::duplex(1024);
        tokio::spawn(async move {
            let mut client = client;
            let _ = client.write_all(input).await;
            // Held open: a body must end by its framing, not by the connection's end.
            std::future::pending::<()>().await;
        });
        let (read, _write) = tokio::io::split(Box::new(server) as BoxedConnection);
        Box::new(H1Reader::new(read))
    }

    #[tokio::test]
    async fn a_length_body_ends_at_its_length_and_gives_back_what_follows() {
        let mut reader = reader_of(b"helloGET / HTTP/1.1\r\n");
        reader.expect_length(5);
        let (back, returned) = oneshot::channel();
        let body = H1RequestBody::new(reader, back, None);
        assert_eq!(body.size_hint().exact(), Some(5));
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(collected, "hello");
        let reader = returned.await.unwrap();
        assert!(reader.is_done());
        assert!(reader.buf.starts_with(b"GET /"));
    }

    #[tokio::test]
    async fn a_chunked_body_brings_its_trailers_and_a_bad_chunk_is_invalid_data() {
        let mut reader = reader_of(b"5\r\nhello\r\n0\r\nx-sum: 1\r\n\r\nnext");
        reader.expect_chunked(ChunkedDecoder::new());
        let (back, returned) = oneshot::channel();
        let collected = H1RequestBody::new(reader, back, None)
            .collect()
            .await
            .unwrap();
        assert_eq!(collected.trailers().unwrap()["x-sum"], "1");
        assert_eq!(collected.to_bytes(), "hello");
        assert_eq!(&returned.await.unwrap().buf[..], b"next");

        let mut reader = reader_of(b"zz\r\n");
        reader.expect_chunked(ChunkedDecoder::new());
        let (back, returned) = oneshot::channel();
        let error = H1RequestBody::new(reader, back, None)
            .collect()
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(returned.await.unwrap().failed());
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_gives_the_reader_back_unfinished() {
        let mut reader = reader_of(b"hel");
        reader.expect_length(5);
        let (back, returned) = oneshot::channel();
        let (wants_continue, told) = oneshot::channel();
        let mut body = H1RequestBody::new(reader, back, Some(wants_continue));
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "hel");
        told.await.expect("the first poll asks for 100 Continue");
        drop(body);
        let reader = returned.await.unwrap();
        assert!(!reader.is_done() && !reader.failed());
    }
}

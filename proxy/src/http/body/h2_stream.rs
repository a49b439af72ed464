//! Bodies on HTTP/2 streams, on the `h2` crate directly: a body received ([`H2Body`]: a pooled
//! connection's answer, or a request to the proxy's HTTP/2 server), and a body sent
//! ([`send_request_body`]: a request's, while its answer is awaited; [`send_all`]: an answer's).
//!
//! hyper's HTTP/2 client puts every request through a channel to the connection's task, which
//! spawns a task per request to wait for the answer and hands it back through another channel:
//! two tasks, two channels and four wake-ups per request. Here the request's own task opens the
//! stream, sends what the request body has ready and awaits the answer; a task of its own is
//! spawned only for a request body that is not complete by then (a large upload, a streaming
//! call), to keep sending it while the answer streams back, as HTTP/2 allows.

use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body as _, Frame, SizeHint};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::http::BoxError;
use crate::http::body::Body;
use crate::http::headers::Carried;

/// Removes what HTTP/2 forbids from a head about to be sent (h2 refuses such a head outright;
/// `te` is allowed as `trailers`, and the proxy sends nothing else).
pub fn strip_connection_specific(headers: &mut HeaderMap) {
    Carried::scan(headers).remove(Carried::CONNECTION_SPECIFIC, headers);
}

/// A body received on an HTTP/2 stream. Its bytes are handed back to the peer's flow-control
/// window as they are read, so a slow reader holds the peer back by at
/// most a window, never more.
#[derive(Debug)]
pub struct H2Body {
    recv: h2::RecvStream,
    /// What the `content-length` header announced and is still to come, for `size_hint` (an
    /// HTTP/1.1 caller then gets `Content-Length` instead of chunked encoding).
    remaining: Option<u64>,
    data_done: bool,
}

impl H2Body {
    pub fn new(recv: h2::RecvStream, headers: &HeaderMap) -> Self {
        Self {
            recv,
            remaining: crate::http::headers::announced_length(headers),
            data_done: false,
        }
    }
}

impl http_body::Body for H2Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if !this.data_done {
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(bytes)) => {
                    let _ = this.recv.flow_control().release_capacity(bytes.len());
                    if let Some(remaining) = &mut this.remaining {
                        *remaining = remaining.saturating_sub(bytes.len() as u64);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(bytes))));
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                None => this.data_done = true,
            }
        }
        match ready!(this.recv.poll_trailers(cx)) {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(e.into()))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(remaining) => SizeHint::with_exact(remaining),
            None => SizeHint::default(),
        }
    }
}

/// Sends a request's `body` on `stream`: what it has ready at once from the caller's task, so that
/// a small upload read with its head leaves with the `HEADERS` frame, in one write; the rest from
/// a task of its own while the answer is awaited. `None`: the body was sent whole (or will not be:
/// it failed, or the peer reset the stream). Otherwise dropping the guard before the answer comes
/// (the caller gave up: its timeout, or it hung up) stops the task and resets the stream; as in
/// hyper, a body still being sent after the answer has begun goes on until it ends. A failing body
/// resets the stream, so the peer does not take a cut-off body for a complete one.
pub fn send_request_body(body: Body, stream: h2::SendStream<Bytes>) -> Option<DropGuard> {
    let mut pipe = Pipe { body, stream };
    if pipe.send_ready_frame() {
        return None;
    }
    let cancel = CancellationToken::new();
    tokio::spawn(send_rest(pipe, cancel.clone()));
    Some(cancel.drop_guard())
}

async fn send_rest(mut pipe: Pipe, cancel: CancellationToken) {
    tokio::select! {
        () = cancel.cancelled() => pipe.stream.send_reset(h2::Reason::CANCEL),
        () = std::future::poll_fn(|cx| pipe.poll_send(cx)) => {}
    }
}

/// Sends `body` on `stream` until it ends, fails or the peer resets the stream (an answer's body,
/// on the server side: the stream's task owns it, nothing else can give up on it).
pub async fn send_all(body: Body, stream: h2::SendStream<Bytes>) {
    let mut pipe = Pipe { body, stream };
    std::future::poll_fn(|cx| pipe.poll_send(cx)).await
}

struct Pipe {
    body: Body,
    stream: h2::SendStream<Bytes>,
}

impl Pipe {
    /// Sends the body's first frame if it is ready (read with the request's head), without
    /// waiting for window: a stream h2 has not opened yet has none, and h2 holds the frame until
    /// it has, so it leaves right behind the `HEADERS` frame. The frame is already in memory; only
    /// what is read after it waits for window. `true`: nothing more to send.
    fn send_ready_frame(&mut self) -> bool {
        // Polled with no waker: what is not ready is polled again, with one, by the task.
        let mut cx = Context::from_waker(Waker::noop());
        match Pin::new(&mut self.body).poll_frame(&mut cx) {
            Poll::Pending => false,
            Poll::Ready(frame) => self.send(frame),
        }
    }

    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            // The peer stopped the stream (it answered, or gave up): nothing more to send.
            if let Poll::Ready(reason) = self.stream.poll_reset(cx) {
                tracing::trace!("the peer reset the request stream: {reason:?}");
                return Poll::Ready(());
            }
            // Wait for window before reading on: a slow peer holds back the caller's upload
            // instead of making this proxy buffer it.
            self.stream.reserve_capacity(1);
            if self.stream.capacity() == 0 {
                match ready!(self.stream.poll_capacity(cx)) {
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return Poll::Ready(()),
                }
            }
            let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
            if self.send(frame) {
                return Poll::Ready(());
            }
        }
    }

    /// Sends what the body gave; `true` when the body is over (ended or failed) or the stream
    /// takes nothing more.
    fn send(&mut self, frame: Option<Result<Frame<Bytes>, BoxError>>) -> bool {
        let frame = match frame {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                tracing::debug!("the request body failed, resetting its stream: {e}");
                self.stream.send_reset(h2::Reason::INTERNAL_ERROR);
                return true;
            }
            None => {
                let _ = self.stream.send_data(Bytes::new(), true);
                return true;
            }
        };
        let sent = match frame.into_data() {
            Ok(bytes) => {
                let end = self.body.is_end_stream();
                self.stream.send_data(bytes, end).map(|()| end)
            }
            Err(frame) => match frame.into_trailers() {
                Ok(trailers) => self.stream.send_trailers(trailers).map(|()| true),
                Err(_) => Ok(false),
            },
        };
        sent.unwrap_or(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::write_count::WriteCounted;

    /// An HTTP/2 server answering every request with its body's length, once it has read it.
    async fn serve_lengths(io: tokio::io::DuplexStream) {
        let mut connection = h2::server::handshake(io).await.unwrap();
        while let Some(Ok((request, mut respond))) = connection.accept().await {
            tokio::spawn(async move {
                let mut body = request.into_body();
                let mut length = 0;
                while let Some(Ok(data)) = body.data().await {
                    length += data.len();
                    let _ = body.flow_control().release_capacity(data.len());
                }
                let answer = http::Response::new(());
                let mut stream = respond.send_response(answer, false).unwrap();
                stream.send_data(length.to_string().into(), true).unwrap();
            });
        }
    }

    /// Sends a POST with a body that is ready at once; the answer's body.
    async fn post(client: &mut h2::client::SendRequest<Bytes>, body: &'static str) -> Bytes {
        std::future::poll_fn(|cx| client.poll_ready(cx))
            .await
            .unwrap();
        let request = http::Request::post("http://x/upload").body(()).unwrap();
        let (answer, stream) = client.send_request(request, false).unwrap();
        let guard = send_request_body(crate::http::body::full(body), stream);
        assert!(guard.is_none(), "a body ready at once needs no task");
        let mut answer = answer.await.unwrap().into_body();
        answer.data().await.unwrap().unwrap()
    }

    /// A request body that is ready when the stream opens leaves right behind its `HEADERS`
    /// frame, in the same write: one system call, where waiting for the new stream's window
    /// took a second one.
    #[tokio::test]
    async fn a_body_ready_at_once_leaves_with_its_headers() {
        let (near, far) = tokio::io::duplex(64 * 1024);
        tokio::spawn(serve_lengths(far));
        let (io, writes) = WriteCounted::new(near);
        let (mut client, connection) = h2::client::handshake(io).await.unwrap();
        tokio::spawn(connection);
        // The first exchange settles the connection (SETTINGS and their acknowledgements).
        assert_eq!(&post(&mut client, "first").await[..], b"5");
        let before = writes.get();
        assert_eq!(&post(&mut client, "hello, world").await[..], b"12");
        assert_eq!(writes.get() - before, 1, "HEADERS and DATA in one write");
    }

    #[test]
    fn connection_specific_headers_go_and_the_rest_stay() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "text/plain".parse().unwrap());
        headers.insert("transfer-encoding", "chunked".parse().unwrap());
        headers.insert("connection", "keep-alive".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert("te", "trailers".parse().unwrap());
        strip_connection_specific(&mut headers);
        let left: Vec<&str> = headers.keys().map(|name| name.as_str()).collect();
        assert_eq!(left, ["content-type", "te"]);

        let mut clean = HeaderMap::new();
        clean.insert("x-a", "1".parse().unwrap());
        strip_connection_specific(&mut clean);
        assert_eq!(clean.len(), 1);
    }
}

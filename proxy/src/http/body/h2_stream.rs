//! Bodies on HTTP/2 streams, on the `h2` crate directly: a body received ([`H2Body`]: a pooled
//! connection's answer, or a request to the proxy's HTTP/2 server), and a body sent
//! ([`send_body`]: a request's, while its answer is awaited; [`send_all`]: an answer's).
//!
//! hyper's HTTP/2 client puts every request through a channel to the connection's task, which
//! spawns a task per request to wait for the answer and hands it back through another channel:
//! two tasks, two channels and four wake-ups per request. Here the request's own task opens the
//! stream and awaits the answer; a task of its own is spawned only for a request body that is not
//! complete when the request goes out (an upload, a streaming call), to keep sending it while the
//! answer streams back, as HTTP/2 allows.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body as _, Frame, SizeHint};
use tokio_util::sync::CancellationToken;

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
        let remaining = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        Self {
            recv,
            remaining,
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

/// Sends the rest of `body` on `stream` until it ends, fails, the peer resets the stream, or
/// `cancel` fires (the caller gave up before the answer came: its timeout, or it hung up; as in
/// hyper, a body still being sent after the answer has begun goes on until it ends). A failing
/// body resets the stream, so the peer does not take a cut-off body for a complete one.
pub async fn send_body(body: Body, stream: h2::SendStream<Bytes>, cancel: CancellationToken) {
    let mut pipe = Pipe { body, stream };
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
            let frame = match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => {
                    tracing::debug!("the request body failed, resetting its stream: {e}");
                    self.stream.send_reset(h2::Reason::INTERNAL_ERROR);
                    return Poll::Ready(());
                }
                None => {
                    let _ = self.stream.send_data(Bytes::new(), true);
                    return Poll::Ready(());
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
            match sent {
                Ok(false) => {}
                Ok(true) | Err(_) => return Poll::Ready(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

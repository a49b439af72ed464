//! A request body that can be sent again: what the first attempt sends is kept (up to a cap) so
//! that a retry can send the same bytes.
//!
//! The body is not read ahead: the first attempt streams it as it arrives from the app while a
//! copy is kept, so a large upload is not delayed and a streaming call is not held back. If the
//! body grows past `cap`, the copy is dropped and the request can no longer be retried: it was
//! sent once, as the policy's `maxBufferedBody` promises. A retry reads the copy, then (if the
//! app is still sending) continues from the app. Only the newest attempt may read from the app:
//! an abandoned attempt still draining in the HTTP/2 connection must not take bytes that the
//! next attempt needs.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Frame, SizeHint};

use crate::http::BoxError;

/// The shared original body and the copy; one [`ReplayBody`] per attempt reads it.
#[derive(Debug)]
pub struct Replay<B> {
    shared: Arc<Mutex<Shared<B>>>,
}

impl<B> Clone for Replay<B> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

#[derive(Debug)]
struct Shared<B> {
    source: B,
    frames: Vec<Bytes>,
    trailers: Option<HeaderMap>,
    buffered: u64,
    cap: u64,
    /// The copy was dropped (too long, or the app's body failed): no more attempts.
    overflowed: bool,
    /// The app's body has ended; everything is in `frames` and `trailers`.
    ended: bool,
    /// The attempt allowed to read from `source`.
    newest: u32,
}

/// One attempt's view of the body.
#[derive(Debug)]
pub struct ReplayBody<B> {
    shared: Arc<Mutex<Shared<B>>>,
    attempt: u32,
    cursor: usize,
    trailers_sent: bool,
    /// The size announced by the original request, for `size_hint`.
    hint: SizeHint,
}

impl<B: http_body::Body> Replay<B> {
    pub fn new(source: B, cap: u64) -> Self {
        Self {
            shared: Arc::new(Mutex::new(Shared {
                source,
                frames: Vec::new(),
                trailers: None,
                buffered: 0,
                cap,
                overflowed: false,
                ended: false,
                newest: 0,
            })),
        }
    }

    /// The body for the next attempt; earlier attempts' bodies stop reading from the app.
    pub fn attempt(&self) -> ReplayBody<B> {
        let mut shared = self.lock();
        shared.newest += 1;
        let hint = shared.source.size_hint();
        ReplayBody {
            shared: self.shared.clone(),
            attempt: shared.newest,
            cursor: 0,
            trailers_sent: false,
            hint,
        }
    }

    /// Whether another attempt can send the whole body again.
    pub fn can_replay(&self) -> bool {
        !self.lock().overflowed
    }

    /// Whether the app has finished sending the body.
    pub fn complete(&self) -> bool {
        self.lock().ended
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared<B>> {
        lock(&self.shared)
    }
}

fn lock<B>(shared: &Mutex<Shared<B>>) -> std::sync::MutexGuard<'_, Shared<B>> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<B> http_body::Body for ReplayBody<B>
where
    B: http_body::Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let mut shared = lock(&this.shared);
        if let Some(bytes) = shared.frames.get(this.cursor) {
            this.cursor += 1;
            return Poll::Ready(Some(Ok(Frame::data(bytes.clone()))));
        }
        if shared.ended {
            if !this.trailers_sent {
                this.trailers_sent = true;
                if let Some(trailers) = shared.trailers.clone() {
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
            }
            return Poll::Ready(None);
        }
        if shared.newest != this.attempt {
            return Poll::Ready(Some(Err(
                "a newer attempt took over the request body".into()
            )));
        }
        let polled = Pin::new(&mut shared.source).poll_frame(cx);
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                shared.ended = true;
                this.trailers_sent = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                shared.overflowed = true;
                shared.frames.clear();
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(Some(Ok(frame))) => {
                let frame = match frame.into_data() {
                    Ok(bytes) => {
                        shared.keep(&bytes);
                        if !shared.overflowed {
                            this.cursor += 1;
                        }
                        // The app's last bytes (its Content-Length reached): say so now, so that
                        // HTTP/2 ends the stream with this frame instead of an empty one later,
                        // which the peer may receive after it has answered and reset the stream.
                        if shared.source.is_end_stream() {
                            shared.ended = true;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(bytes))));
                    }
                    Err(frame) => frame,
                };
                if let Some(trailers) = frame.trailers_ref() {
                    shared.trailers = Some(trailers.clone());
                    shared.ended = true;
                    this.trailers_sent = true;
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let shared = lock(&self.shared);
        shared.ended
            && self.cursor >= shared.frames.len()
            && (self.trailers_sent || shared.trailers.is_none())
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

impl<B> Shared<B> {
    fn keep(&mut self, bytes: &Bytes) {
        if self.overflowed {
            return;
        }
        self.buffered += bytes.len() as u64;
        if self.buffered > self.cap {
            self.overflowed = true;
            self.frames = Vec::new();
        } else {
            self.frames.push(bytes.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body::Body as _;
    use http_body_util::BodyExt;

    use super::*;
    use crate::http::body::Body;

    async fn collect(body: ReplayBody<Body>) -> Result<Vec<u8>, BoxError> {
        Ok(body.collect().await?.to_bytes().to_vec())
    }

    #[tokio::test]
    async fn a_retry_sends_the_same_bytes() {
        let replay = Replay::new(crate::http::body::full("hello world"), 64);
        assert_eq!(collect(replay.attempt()).await.unwrap(), b"hello world");
        assert!(replay.can_replay() && replay.complete());
        assert_eq!(collect(replay.attempt()).await.unwrap(), b"hello world");
    }

    #[tokio::test]
    async fn the_last_bytes_of_a_body_of_known_length_end_it() {
        // HTTP/2 sets END_STREAM on the frame after which the body says it has ended: on the last
        // data frame, not on an empty frame sent later (see `poll_frame`).
        let replay = Replay::new(crate::http::body::full("hello"), 64);
        let mut attempt = replay.attempt();
        assert!(!attempt.is_end_stream());
        let frame = attempt.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "hello");
        assert!(attempt.is_end_stream());
        assert!(replay.complete());
        assert_eq!(collect(replay.attempt()).await.unwrap(), b"hello");
    }

    #[tokio::test]
    async fn a_body_over_the_cap_is_sent_once() {
        let replay = Replay::new(crate::http::body::full(vec![7u8; 100]), 64);
        assert_eq!(collect(replay.attempt()).await.unwrap().len(), 100);
        assert!(!replay.can_replay());
    }

    #[tokio::test]
    async fn an_unread_body_can_be_retried_and_an_old_attempt_stops_reading() {
        let replay = Replay::new(crate::http::body::full("abc"), 64);
        let first = replay.attempt();
        let second = replay.attempt();
        assert!(collect(first).await.is_err());
        assert_eq!(collect(second).await.unwrap(), b"abc");
    }
}

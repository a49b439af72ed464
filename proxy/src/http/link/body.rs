//! A body received on a link stream: the frames the connection's task put in the stream's
//! mailbox, read by whoever the request (or answer) went to.
//!
//! Each data frame read gives its bytes back to the peer's window, so a slow reader holds the
//! peer back by at most a window. A body dropped before its end tells the connection it wants no
//! more: what still comes is dropped, and the stream is reset with `NO_ERROR` once the answer is
//! out (RFC 9113 section 8.1).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Frame, SizeHint};

use super::Link;
use crate::http::BoxError;

pub struct LinkBody {
    link: Link,
    stream: u32,
    /// What `content-length` announced and is still to come (see `H2Body`).
    remaining: Option<u64>,
    done: bool,
}

impl std::fmt::Debug for LinkBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LinkBody(stream {})", self.stream)
    }
}

/// The stream ended without its body's end: the peer reset it, or the connection went away
/// (`CANCEL`).
#[derive(Debug, thiserror::Error)]
#[error("the stream to the peer proxy ended before the body's end ({0})")]
pub struct StreamReset(pub weft_http2::frame::Reason);

impl LinkBody {
    pub fn new(link: Link, stream: u32, headers: &HeaderMap) -> LinkBody {
        LinkBody {
            link,
            stream,
            remaining: crate::http::headers::announced_length(headers),
            done: false,
        }
    }
}

impl http_body::Body for LinkBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        let mut shared = this.link.lock();
        let shared = &mut *shared;
        let Some(slot) = shared.slots.get_mut(&this.stream) else {
            this.done = true;
            return Poll::Ready(Some(Err(
                StreamReset(weft_http2::frame::Reason::CANCEL).into()
            )));
        };
        if let Some(frame) = slot.frames.pop_front() {
            if let Some(data) = frame.data_ref() {
                let n = data.len();
                if let Some(remaining) = &mut this.remaining {
                    *remaining = remaining.saturating_sub(n as u64);
                }
                shared.conn.release(this.stream, n);
                if shared.conn.has_output()
                    && let Some(writer) = shared.writer.take()
                {
                    writer.wake();
                }
            }
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Some(reason) = slot.reset {
            this.done = true;
            return Poll::Ready(Some(Err(StreamReset(reason).into())));
        }
        // Complete before the connection ended: the end is the body's.
        if slot.ended {
            this.done = true;
            return Poll::Ready(None);
        }
        if slot.lost {
            this.done = true;
            return Poll::Ready(Some(Err(
                StreamReset(weft_http2::frame::Reason::CANCEL).into()
            )));
        }
        slot.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        if self.done {
            return true;
        }
        let shared = self.link.lock();
        shared
            .slots
            .get(&self.stream)
            .is_some_and(|slot| slot.ended && slot.frames.is_empty())
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(remaining) => SizeHint::with_exact(remaining),
            None => SizeHint::default(),
        }
    }
}

impl Drop for LinkBody {
    fn drop(&mut self) {
        self.link.lock().release_slot(self.stream, false);
    }
}

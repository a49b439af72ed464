//! A request body that is sent on as it arrives while a copy of it is kept for mirrors
//! (Gateway API `RequestMirror`): when the body ends within `cap` bytes, each mirror waiting
//! for it gets the whole of it; past `cap`, or when the body fails or is abandoned, the
//! mirrors' senders are dropped and they are not sent. The original is never held back: every
//! frame is passed on as soon as it is read.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use tokio::sync::oneshot;

use crate::http::BoxError;

#[derive(Debug)]
pub struct CopiedBody<B> {
    source: B,
    frames: Vec<Bytes>,
    kept: usize,
    cap: usize,
    /// The mirrors waiting for the whole body; empty once it is given or given up.
    waiting: Vec<oneshot::Sender<Bytes>>,
}

impl<B: http_body::Body<Data = Bytes, Error = BoxError> + Unpin> CopiedBody<B> {
    pub fn new(source: B, cap: usize, waiting: Vec<oneshot::Sender<Bytes>>) -> Self {
        Self {
            source,
            frames: Vec::new(),
            kept: 0,
            cap,
            waiting,
        }
    }

    fn keep(&mut self, bytes: &Bytes) {
        if self.waiting.is_empty() {
            return;
        }
        self.kept += bytes.len();
        if self.kept > self.cap {
            self.give_up();
        } else {
            self.frames.push(bytes.clone());
        }
    }

    fn give_up(&mut self) {
        self.waiting.clear();
        self.frames.clear();
    }

    fn finish(&mut self) {
        if self.waiting.is_empty() {
            return;
        }
        let whole = match self.frames.len() {
            0 => Bytes::new(),
            1 => self.frames.remove(0),
            _ => {
                let mut whole = BytesMut::with_capacity(self.kept);
                self.frames
                    .drain(..)
                    .for_each(|f| whole.extend_from_slice(&f));
                whole.freeze()
            }
        };
        for mirror in self.waiting.drain(..) {
            let _ = mirror.send(whole.clone());
        }
    }
}

impl<B: http_body::Body<Data = Bytes, Error = BoxError> + Unpin> http_body::Body for CopiedBody<B> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.source).poll_frame(cx);
        match &polled {
            Poll::Pending => {}
            Poll::Ready(None) => this.finish(),
            Poll::Ready(Some(Err(_))) => this.give_up(),
            Poll::Ready(Some(Ok(frame))) => {
                match frame.data_ref() {
                    Some(bytes) => this.keep(bytes),
                    // Request trailers are not mirrored; the data before them is.
                    None => this.finish(),
                }
                if this.source.is_end_stream() {
                    this.finish();
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.source.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.source.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;
    use crate::http::body::{self, Body};

    #[tokio::test]
    async fn mirrors_get_the_whole_body_within_the_cap_and_nothing_past_it() {
        let (tx, rx) = oneshot::channel();
        let copied = CopiedBody::new(body::full("hello"), 8, vec![tx]);
        let sent = copied.collect().await.unwrap().to_bytes();
        assert_eq!(&sent[..], b"hello");
        assert_eq!(&rx.await.unwrap()[..], b"hello");

        let (tx, rx) = oneshot::channel();
        let copied = CopiedBody::new(
            Body::Full(Some(Bytes::from_static(b"too long"))),
            4,
            vec![tx],
        );
        let sent = copied.collect().await.unwrap().to_bytes();
        assert_eq!(&sent[..], b"too long", "the original is sent whole");
        assert!(rx.await.is_err(), "the mirror is given up");
    }
}

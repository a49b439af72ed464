//! Reading a gRPC response ahead to its trailers, so a retry can depend on the status in them.
//!
//! A gRPC server that fails a call after sending its response headers puts the status in the
//! trailers, at the end of the body; Envoy's retries never see it (envoy#17629). For a route that
//! retries on gRPC codes, the response is read ahead up to `maxBufferedBody` (within the
//! per-try timeout), its status decides, and the frames read are then passed on unchanged. A
//! response longer than that is committed: it streams on and is never retried. Use such routes
//! for unary methods; a server stream would be held back until its end or the cap.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;

use crate::http::BoxError;

#[derive(Debug)]
pub struct Peeked<B> {
    frames: VecDeque<Frame<Bytes>>,
    rest: Option<B>,
}

/// Reads `body` until its trailers, its end, or `cap` bytes; returns what was read (followed by
/// the rest) and the `grpc-status` of the trailers, if they came.
pub async fn peek_grpc_status<B>(
    mut body: B,
    cap: u64,
) -> Result<(Peeked<B>, Option<u32>), BoxError>
where
    B: http_body::Body<Data = Bytes, Error = BoxError> + Unpin,
{
    let mut frames = VecDeque::new();
    let mut read = 0u64;
    loop {
        let Some(frame) = body.frame().await.transpose()? else {
            return Ok((Peeked { frames, rest: None }, None));
        };
        if let Some(trailers) = frame.trailers_ref() {
            let status = super::grpc_status(trailers);
            frames.push_back(frame);
            return Ok((Peeked { frames, rest: None }, status));
        }
        if let Some(data) = frame.data_ref() {
            read += data.len() as u64;
        }
        frames.push_back(frame);
        if read > cap {
            return Ok((
                Peeked {
                    frames,
                    rest: Some(body),
                },
                None,
            ));
        }
    }
}

impl<B> http_body::Body for Peeked<B>
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
        if let Some(frame) = this.frames.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        match &mut this.rest {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && self.rest.as_ref().is_none_or(|r| r.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let buffered: u64 = self
            .frames
            .iter()
            .filter_map(|f| f.data_ref().map(|d| d.len() as u64))
            .sum();
        let Some(rest) = &self.rest else {
            return SizeHint::with_exact(buffered);
        };
        let rest = rest.size_hint();
        let mut hint = SizeHint::new();
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + buffered);
        }
        hint.set_lower(rest.lower() + buffered);
        hint
    }
}

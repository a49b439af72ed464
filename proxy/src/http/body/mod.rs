//! One body type for everything the proxy sends: bodies streamed from either side, and the short
//! bodies of responses the proxy writes itself.
//!
//! An enum rather than a boxed trait object, because every request and response passes through
//! here twice per proxy: boxing would cost an allocation each time.

pub mod caller;
pub mod copied;
pub mod h1_request;
pub mod h2_stream;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use crate::http::BoxError;
use crate::http::body::caller::CallerBody;
use crate::http::body::copied::CopiedBody;
use crate::http::body::h1_request::H1RequestBody;
use crate::http::body::h2_stream::H2Body;
use crate::http::client::h1_pool::H1Response;
use crate::http::link::body::LinkBody;
use crate::resilience::retry::{Peeked, ReplayBody};
use crate::resilience::timeout::TimedBody;
use crate::telemetry::exchange::Observed;

#[derive(Debug)]
pub enum Body {
    /// Streamed from a peer or an HTTP/2 app over a pooled HTTP/2 connection.
    H2(H2Body),
    /// Streamed from the peer proxy over the link ([`crate::http::link`]).
    Link(LinkBody),
    /// A request's body, read off the caller's HTTP/1.1 connection.
    H1Request(H1RequestBody),
    /// Read off an HTTP/1.1 connection to the app (pooled, or an upgrade's), which goes back
    /// to its pool when the body is complete.
    H1(H1Response<Body>),
    /// Complete, produced by the proxy; `None` once sent.
    Full(Option<Bytes>),
    /// A request body that a retry can send again.
    Replay(ReplayBody<Body>),
    /// A response read ahead to learn its gRPC status, then the rest of it.
    Peeked(Box<Peeked<Body>>),
    /// A response under the request's deadline or idle timeout.
    Timed(Box<TimedBody<Body>>),
    /// A response followed to its end for the request's metrics, span and log line.
    Observed(Box<Observed<Body>>),
    /// A caller's request body, noting its own failures (see [`crate::http::body::caller`]).
    Caller(Box<CallerBody>),
    /// A request body copied for the rule's mirrors as it is sent.
    Copied(Box<CopiedBody<Body>>),
    /// A body fed by a test.
    #[cfg(test)]
    Channel(tokio::sync::mpsc::Receiver<Bytes>),
}

/// A complete body the proxy produced.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    let bytes = bytes.into();
    Body::Full((!bytes.is_empty()).then_some(bytes))
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        full(bytes)
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Body::H1(body) => Pin::new(body).poll_frame(cx),
            Body::H2(body) => Pin::new(body).poll_frame(cx),
            Body::Link(body) => Pin::new(body).poll_frame(cx),
            Body::H1Request(body) => Pin::new(body).poll_frame(cx).map_err(BoxError::from),
            Body::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Body::Replay(body) => Pin::new(body).poll_frame(cx),
            Body::Peeked(body) => Pin::new(body.as_mut()).poll_frame(cx),
            Body::Timed(body) => Pin::new(body.as_mut()).poll_frame(cx),
            Body::Observed(body) => Pin::new(body.as_mut()).poll_frame(cx),
            Body::Caller(body) => Pin::new(body.as_mut()).poll_frame(cx),
            Body::Copied(body) => Pin::new(body.as_mut()).poll_frame(cx),
            #[cfg(test)]
            Body::Channel(rx) => rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::H1(body) => body.is_end_stream(),
            Body::H2(body) => body.is_end_stream(),
            Body::Link(body) => body.is_end_stream(),
            Body::H1Request(body) => body.is_end_stream(),
            Body::Full(bytes) => bytes.is_none(),
            Body::Replay(body) => body.is_end_stream(),
            Body::Peeked(body) => body.is_end_stream(),
            Body::Timed(body) => body.is_end_stream(),
            Body::Observed(body) => body.is_end_stream(),
            Body::Caller(body) => body.is_end_stream(),
            Body::Copied(body) => body.is_end_stream(),
            #[cfg(test)]
            Body::Channel(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::H1(body) => body.size_hint(),
            Body::H2(body) => body.size_hint(),
            Body::Link(body) => body.size_hint(),
            Body::H1Request(body) => body.size_hint(),
            Body::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Replay(body) => body.size_hint(),
            Body::Peeked(body) => body.size_hint(),
            Body::Timed(body) => body.size_hint(),
            Body::Observed(body) => body.size_hint(),
            Body::Caller(body) => body.size_hint(),
            Body::Copied(body) => body.size_hint(),
            #[cfg(test)]
            Body::Channel(_) => SizeHint::default(),
        }
    }
}

//! A caller's request body, watched for failures of its own.
//!
//! A request body can break on the caller's side: the app (outbound) or a plaintext caller
//! (inbound) sends a malformed chunk, or hangs up in the middle of its upload, or a peer proxy
//! resets the stream because its app did. The proxy then gives up the request it was forwarding,
//! and the failure looks exactly like one the other side caused (the endpoint, the app behind
//! the inbound listener), unless it is known who failed. So the body notes its own failure, and
//! the request ends as the caller's fault: `400` (RFC 9112 makes a malformed chunked body a bad
//! request), not retried, and nothing told to the endpoint's circuit breaker (which counts only
//! what the endpoint did).

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use crate::http::BoxError;
use crate::http::body::Body;

/// How a caller's request body failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyFailure {
    /// The body was not valid (a malformed chunk size or chunk), rather than cut off.
    malformed: bool,
    detail: String,
}

impl BodyFailure {
    fn of(error: &BoxError) -> Self {
        Self {
            malformed: malformed(error),
            detail: error.to_string(),
        }
    }

    /// The `weft-error` and metric label.
    pub fn reason(&self) -> &'static str {
        match self.malformed {
            true => "malformed_request_body",
            false => "request_body_aborted",
        }
    }
}

impl std::fmt::Display for BodyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.malformed {
            true => write!(f, "the request body is malformed: {}", self.detail),
            false => write!(f, "the request body broke off: {}", self.detail),
        }
    }
}

/// Whether `error` says the body's bytes were invalid. weft's HTTP/1 reader
/// ([`crate::http::body::h1_request`]) reports a bad chunk size or chunk as an I/O error of kind
/// `InvalidData` (hyper's decoder as `InvalidInput` or `InvalidData`); a connection
/// that closed mid-body is `UnexpectedEof` or a reset, and an HTTP/2 app's reset stream is an h2
/// error: the body broke off.
fn malformed(error: &BoxError) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error.as_ref());
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData
            );
        }
        cause = e.source();
    }
    false
}

/// Where a request's body notes that it failed; read when forwarding it failed. Nothing is
/// allocated for a request without a body (most of them).
#[derive(Debug, Default)]
pub struct BodyWatch(Option<Arc<OnceLock<BodyFailure>>>);

impl BodyWatch {
    /// `body`, noting its failure here.
    pub fn wrap(&mut self, body: Body) -> Body {
        let failure = self.0.get_or_insert_with(Arc::default).clone();
        Body::Caller(Box::new(CallerBody {
            inner: body,
            failure,
        }))
    }

    /// How the caller's body failed, if it did.
    pub fn failure(&self) -> Option<&BodyFailure> {
        self.0.as_ref()?.get()
    }
}

/// The caller's request body as it streams on.
#[derive(Debug)]
pub struct CallerBody {
    inner: Body,
    failure: Arc<OnceLock<BodyFailure>>,
}

impl http_body::Body for CallerBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Err(e))) = &polled {
            let _ = self.failure.set(BodyFailure::of(e));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_chunk_is_malformed_and_a_cut_body_is_aborted() {
        let bad: BoxError = Box::new(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "Invalid chunk size line: Invalid Size",
        ));
        assert_eq!(BodyFailure::of(&bad).reason(), "malformed_request_body");
        let cut: BoxError = Box::new(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        assert_eq!(BodyFailure::of(&cut).reason(), "request_body_aborted");
    }
}

//! Timeouts on a response body: the request's deadline, and the longest silence (`idle`).
//!
//! The deadline of a request covers everything up to its response headers in the request path
//! ([`crate::outbound::request`] races the attempts against it); this body keeps it for the rest
//! of the response, so no attempt outlives the deadline, and ends a response whose peer went
//! quiet for `idle`. Expiry ends the body with an error, which resets the stream to the app (an
//! HTTP/1.1 app sees the connection close before the end of the body, never a truncated body
//! that looks complete).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::body::{Body, BoxError};

#[derive(Debug, thiserror::Error)]
pub enum BodyTimeout {
    #[error("the request's deadline passed while its response was streaming")]
    Deadline,
    #[error("the response was silent for {0:?} (the route's idle timeout)")]
    Idle(Duration),
}

#[derive(Debug)]
pub struct TimedBody {
    inner: Body,
    deadline: Option<Pin<Box<Sleep>>>,
    idle: Option<(Duration, Pin<Box<Sleep>>)>,
}

impl TimedBody {
    pub fn new(inner: Body, deadline: Option<Instant>, idle: Option<Duration>) -> Self {
        Self {
            inner,
            deadline: deadline.map(|at| Box::pin(tokio::time::sleep_until(at))),
            idle: idle.map(|d| (d, Box::pin(tokio::time::sleep(d)))),
        }
    }
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if let Some((idle, sleep)) = &mut this.idle {
                sleep.as_mut().reset(Instant::now() + *idle);
            }
            return Poll::Ready(frame);
        }
        if let Some(deadline) = &mut this.deadline
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Some(Err(BodyTimeout::Deadline.into())));
        }
        if let Some((idle, sleep)) = &mut this.idle
            && sleep.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Some(Err(BodyTimeout::Idle(*idle).into())));
        }
        Poll::Pending
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
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_silent_body_ends_with_an_error_at_the_idle_timeout() {
        let (_tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
        let silent = Body::Channel(rx);
        let started = Instant::now();
        let body = TimedBody::new(silent, None, Some(Duration::from_millis(300)));
        let err = body.collect().await.unwrap_err();
        assert!(err.to_string().contains("silent"), "{err}");
        assert_eq!(started.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_holds_for_the_body_too() {
        let (_tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
        let started = Instant::now();
        let at = started + Duration::from_millis(500);
        let err = TimedBody::new(Body::Channel(rx), Some(at), None)
            .collect()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("deadline"), "{err}");
        assert_eq!(started.elapsed(), Duration::from_millis(500));
    }
}

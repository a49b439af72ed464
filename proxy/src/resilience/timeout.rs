//! Timeouts on a response body: the request's deadline, and the longest silence (`idle`).
//!
//! The deadline of a request covers everything up to its response headers in the request path
//! ([`crate::outbound::request`] races the attempts against it); this body keeps it for the rest
//! of the response, so no attempt outlives the deadline, and ends a response whose peer went
//! quiet for `idle`. Expiry ends the body with an error, which resets the stream to the app (an
//! HTTP/1.1 app sees the connection close before the end of the body, never a truncated body
//! that looks complete).
//!
//! Timers cost on every request, so there is one: the request path hands over the timer it
//! raced the attempts against, and the idle timeout reuses it. A frame only counts itself; the
//! timer is moved only when it fires and frames came since (at most once per `idle`), never per
//! frame.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::http::BoxError;

#[derive(Debug, thiserror::Error)]
pub enum BodyTimeout {
    #[error("the request's deadline passed while its response was streaming")]
    Deadline,
    #[error("the response was silent for {0:?} (the route's idle timeout)")]
    Idle(Duration),
}

#[derive(Debug)]
pub struct TimedBody<B> {
    inner: B,
    /// Fires at the deadline, or at the end of the current idle period if that is sooner.
    timer: Pin<Box<Sleep>>,
    deadline: Option<Instant>,
    idle: Option<Duration>,
    /// Frames since the timer was last set.
    frames: u64,
}

impl<B> TimedBody<B> {
    /// `timer` is set for `deadline` if there is one (the request path's own timer), else for
    /// anything: it is set here.
    pub fn new(
        inner: B,
        mut timer: Pin<Box<Sleep>>,
        deadline: Option<Instant>,
        idle: Option<Duration>,
    ) -> Self {
        let first = next_check(Instant::now(), deadline, idle);
        if Some(first) != deadline {
            timer.as_mut().reset(first);
        }
        Self {
            inner,
            timer,
            deadline,
            idle,
            frames: 0,
        }
    }
}

/// The earlier of the deadline and the end of an idle period starting `now`.
fn next_check(now: Instant, deadline: Option<Instant>, idle: Option<Duration>) -> Instant {
    match (deadline, idle.map(|d| now + d)) {
        (Some(deadline), Some(idle)) => deadline.min(idle),
        (Some(at), None) | (None, Some(at)) => at,
        // Neither: not built (see the request path); far away, to be safe.
        (None, None) => now + Duration::from_secs(86_400 * 365),
    }
}

impl<B> http_body::Body for TimedBody<B>
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
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.frames += 1;
            return Poll::Ready(frame);
        }
        while this.timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            if this.deadline.is_some_and(|d| now >= d) {
                return Poll::Ready(Some(Err(BodyTimeout::Deadline.into())));
            }
            match (this.idle, this.frames) {
                (Some(idle), 0) => return Poll::Ready(Some(Err(BodyTimeout::Idle(idle).into()))),
                _ => {
                    // Frames came during this idle period: a new one starts now.
                    this.frames = 0;
                    let next = next_check(now, this.deadline, this.idle);
                    this.timer.as_mut().reset(next);
                }
            }
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
    use crate::http::body::Body;

    fn timer() -> Pin<Box<Sleep>> {
        Box::pin(tokio::time::sleep(Duration::ZERO))
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_body_ends_with_an_error_at_the_idle_timeout() {
        let (_tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
        let started = Instant::now();
        let body = TimedBody::new(
            Body::Channel(rx),
            timer(),
            None,
            Some(Duration::from_millis(300)),
        );
        let err = body.collect().await.unwrap_err();
        assert!(err.to_string().contains("silent"), "{err}");
        assert_eq!(started.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn frames_keep_an_idle_body_alive_and_the_silence_after_them_counts() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let started = Instant::now();
        tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                tx.send(Bytes::from_static(b"x")).await.unwrap();
            }
            // Silent from 600 ms on, keeping the body open.
            tokio::time::sleep(Duration::from_secs(10)).await;
            drop(tx);
        });
        let mut body = TimedBody::new(
            Body::Channel(rx),
            timer(),
            None,
            Some(Duration::from_millis(300)),
        );
        let mut got = 0;
        let err = loop {
            match body.frame().await {
                Some(Ok(_)) => got += 1,
                Some(Err(e)) => break e,
                None => panic!("the body ended without the idle timeout"),
            }
        };
        assert_eq!(got, 3);
        assert!(err.to_string().contains("silent"), "{err}");
        // The last frame at 600 ms; silent for at least 300 ms, noticed within one more period.
        let at = started.elapsed();
        assert!(
            at >= Duration::from_millis(900) && at <= Duration::from_millis(1200),
            "{at:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_holds_for_the_body_too() {
        let (_tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
        let started = Instant::now();
        let at = started + Duration::from_millis(500);
        let timer = Box::pin(tokio::time::sleep_until(at));
        let err = TimedBody::new(
            Body::Channel(rx),
            timer,
            Some(at),
            Some(Duration::from_secs(5)),
        )
        .collect()
        .await
        .unwrap_err();
        assert!(err.to_string().contains("deadline"), "{err}");
        assert_eq!(started.elapsed(), Duration::from_millis(500));
    }
}

//! `GET /tap`: the sidecar's live request stream (the contract is in docs/visibility.md).
//!
//! Who may tap: callers on loopback, that is a process in the pod's own network namespace
//! (`weft tap` through `kubectl port-forward`, which the kubelet connects from inside the pod),
//! and callers that proved over TLS a mesh identity named by `--tap-allow` ([`super::tls`]).
//! Any other caller, including the Kubernetes API server's pod proxy, gets 403: on plain HTTP a
//! peer address proves nothing else. Every refusal is counted in
//! `weft_tap_refused_total{reason}` (`not_loopback`, `identity_not_allowed`).
//!
//! The answer is a chunked `application/x-ndjson` stream that ends when the caller goes away or
//! the proxy drains. Its body polls the session's queue ([`Subscription`]): events are rendered
//! here, on the admin connection's task. While the reader keeps up, the body tells the
//! connection it is alive every [`KEEPALIVE`], so a quiet stream is not cut as stalled; a
//! reader that stops reading stops the body from being polled, and is cut after the admin
//! server's stall timeout.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode, Uri};
use http_body::Frame;
use http_body_util::BodyExt;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::activity::Activity;
use super::{Admin, AdminBody, Caller, text};
use crate::telemetry::tap::{Refusal, Subscription, TapFilter};

/// How often a quiet stream marks its connection alive.
const KEEPALIVE: Duration = Duration::from_secs(5);
/// Events rendered into one chunk at most.
const EVENTS_PER_CHUNK: usize = 64;

impl Admin {
    pub(super) fn tap(
        &self,
        uri: &Uri,
        caller: &Caller,
        activity: Arc<Activity>,
    ) -> Response<AdminBody> {
        let hub = &self.tap;
        let peer = caller.peer;
        let allowed = match &caller.identity {
            Some(id) if self.tap_allow.contains(id) => Ok(()),
            _ if peer.ip().is_loopback() => Ok(()),
            Some(id) => Err((
                "identity_not_allowed",
                format!("{id} may not tap this sidecar (it is not in --tap-allow)\n"),
            )),
            None => Err((
                "not_loopback",
                "tap is served only to loopback callers (use kubectl port-forward) and to \
                 identities in --tap-allow over TLS\n"
                    .to_owned(),
            )),
        };
        if let Err((reason, message)) = allowed {
            hub.refused(reason);
            tracing::info!(%peer, identity = ?caller.identity, reason, "refused GET /tap");
            return text(StatusCode::FORBIDDEN, message);
        }
        let query = uri.query().unwrap_or("");
        let filter = match TapFilter::parse(query) {
            Ok(filter) => filter,
            Err(e) => {
                hub.refused("bad_query");
                return text(StatusCode::BAD_REQUEST, format!("bad tap query: {e}\n"));
            }
        };
        let who = match &caller.identity {
            Some(id) => format!("{id} at {peer}"),
            None => peer.to_string(),
        };
        let subscription = match hub.subscribe(filter, query, who) {
            Ok(subscription) => subscription,
            Err(Refusal::TooManySessions) => {
                return text(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "this sidecar already serves {} tap sessions\n",
                        crate::telemetry::tap::MAX_SESSIONS
                    ),
                );
            }
        };
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stream = TapStream {
            subscription,
            activity,
            keepalive,
            stop: Box::pin(self.draining.clone().cancelled_owned()),
        };
        Response::builder()
            .header(http::header::CONTENT_TYPE, "application/x-ndjson")
            .header(http::header::CACHE_CONTROL, "no-store")
            .body(stream.boxed_unsync())
            .expect("the response parts are valid")
    }
}

/// The body of a `GET /tap` answer: one JSON object a line.
struct TapStream {
    subscription: Subscription,
    activity: Arc<Activity>,
    keepalive: tokio::time::Interval,
    stop: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl TapStream {
    /// `{"dropped":N}` when events were lost since the reader was last told.
    fn tell_dropped(&self, out: &mut Vec<u8>) {
        let dropped = self.subscription.take_dropped();
        if dropped > 0 {
            out.extend_from_slice(format!("{{\"dropped\":{dropped}}}\n").as_bytes());
        }
    }
}

impl http_body::Body for TapStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        let mut out = Vec::new();
        for _ in 0..EVENTS_PER_CHUNK {
            match self.subscription.poll_event(cx) {
                Poll::Ready(Some(event)) => {
                    self.tell_dropped(&mut out);
                    event.write_line(&mut out);
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => break,
            }
        }
        // Polled: the connection is taking what the stream writes.
        while self.keepalive.poll_tick(cx).is_ready() {
            self.activity.moved(false);
            self.tell_dropped(&mut out);
        }
        if out.is_empty() {
            return Poll::Pending;
        }
        self.activity.moved(false);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
    }
}

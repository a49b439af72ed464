//! The client end of a link: a pooled connection to a peer proxy ([`crate::http::client::h2_pool`]
//! hands it out), on which each request opens a stream from its own task.
//!
//! The request's head is queued at once and what its body has ready goes right behind it, in the
//! same write; a task of its own is spawned only for a body that is not complete by then (a large
//! upload, a streaming call), to keep sending it while the answer streams back. A caller that
//! gives up before the answer (its timeout, or its app hung up) resets the stream.
//!
//! The connection's task pings the peer every [`KEEPALIVE_INTERVAL`] and ends the connection
//! when a ping goes unanswered for [`KEEPALIVE_TIMEOUT`], as the `h2` client's did.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::task::Poll;
use std::time::Duration;

use http::{Request, Response};
use http_body::Body as _;
use weft_http2::connection::{Config, Connection, Role as End};
use weft_http2::frame::Reason;

use super::body::LinkBody;
use super::driver::{Driver, KeepAlive, Role};
use super::fields::{self, Malformed};
use super::send::{send_body, send_ready};
use super::shared::{Link, Shared, Slot};
use crate::http::body::Body;
use crate::transport::BoxedConnection;

pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a request on a link failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the link to the peer proxy was going away or closed: the request was not sent")]
    NotSent,
    #[error("the peer proxy refused the stream: the request was not processed")]
    Refused,
    #[error("the peer proxy reset the stream ({0})")]
    Reset(Reason),
    #[error("the link to the peer proxy ended before the answer")]
    Lost,
    #[error("the peer proxy's answer: {0}")]
    Malformed(Malformed),
    #[error("the link to the peer proxy ended before its SETTINGS")]
    Handshake,
}

impl LinkError {
    /// The peer never processed the request: sending it again cannot repeat anything.
    pub fn never_processed(&self) -> bool {
        matches!(self, LinkError::NotSent | LinkError::Refused)
    }
}

/// Starts a link on `io` (its task), and returns it once the peer's `SETTINGS` are in, so that
/// its limit of concurrent streams holds back a first burst. `ended` is set when the task ends.
pub async fn handshake(
    io: BoxedConnection,
    label: String,
    stream_window: u32,
    connection_window: u32,
    ended: Arc<AtomicBool>,
) -> Result<Link, LinkError> {
    let conn = Connection::new(Config {
        role: End::Client,
        max_concurrent_streams: 0,
        stream_window,
        connection_window,
        max_header_list_size: crate::http::h1::head::MAX_HEAD_BYTES as u32,
    });
    let link = Link::new(conn);
    let mut driver = Driver::new(io, link.clone(), Client);
    driver.keep_alive = Some(KeepAlive::new(KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT));
    driver.ended = Some(ended);
    tokio::spawn(async move {
        std::future::poll_fn(|cx| driver.poll(cx)).await;
        driver.finish();
        match driver.refused {
            Some(refusal) => tracing::warn!(destination = %label, "closed a link: {refusal}"),
            None => tracing::debug!(destination = %label, "a link ended"),
        }
    });
    std::future::poll_fn(|cx| {
        let mut shared = link.lock();
        if shared.conn.has_peer_settings() {
            Poll::Ready(Ok(()))
        } else if shared.closed {
            Poll::Ready(Err(LinkError::Handshake))
        } else {
            shared.waiters.push(cx.waker().clone());
            Poll::Pending
        }
    })
    .await?;
    Ok(link)
}

/// The pool's hold on a link: once the pool lets go of it (the connection was replaced, its
/// endpoint left discovery, the proxy stops), the link closes when its streams are done.
pub struct LinkHandle(pub Link);

impl Drop for LinkHandle {
    fn drop(&mut self) {
        let mut shared = self.0.lock();
        shared.released = true;
        shared.wake_writer();
    }
}

/// Whether the link takes new requests (it is open and not going away).
pub fn accepts(link: &Link) -> bool {
    let shared = link.lock();
    !shared.closed && !shared.conn.is_going_away()
}

/// Sends `request` on a new stream of `link` and returns the answer's head with its body.
///
/// The request comes boxed from the attempt that built it: each future on the way holds 8 bytes
/// of it rather than 280, and its head and body are out of this future's state before it waits
/// for the answer. What a request in flight holds is memory per app connection under load.
pub async fn send(link: &Link, request: Box<Request<Body>>) -> Result<Response<Body>, LinkError> {
    let stream = open(link, request).await?;
    let mut guard = Pending { link, stream };
    let (answer, ended) = std::future::poll_fn(|cx| {
        let mut shared = link.lock();
        let Some(slot) = shared.slots.get_mut(&stream) else {
            return Poll::Ready(Err(LinkError::Lost));
        };
        if let Some(answer) = slot.answer.take() {
            // Its body may have come whole in the same read.
            let bodiless = slot.ended && slot.frames.is_empty();
            return Poll::Ready(Ok((answer, bodiless)));
        }
        if let Some(reason) = slot.reset {
            return Poll::Ready(Err(match reason {
                Reason::REFUSED_STREAM => LinkError::Refused,
                reason => LinkError::Reset(reason),
            }));
        }
        if slot.lost {
            return Poll::Ready(Err(LinkError::Lost));
        }
        slot.reader = Some(cx.waker().clone());
        Poll::Pending
    })
    .await?;
    guard.disarm();
    let body = if ended {
        link.lock().release_slot(stream, false);
        Body::Full(None)
    } else {
        Body::Link(LinkBody::new(link.clone(), stream, answer.headers()))
    };
    Ok(answer.map(|()| body))
}

/// Opens a stream for `request` and sends its head, and its body as far as it is ready (the
/// rest from a task of its own). Waits while the peer's limit of concurrent streams is reached.
async fn open(link: &Link, request: Box<Request<Body>>) -> Result<u32, LinkError> {
    let (head, body) = request.into_parts();
    let end = body.is_end_stream();
    let stream = std::future::poll_fn(|cx| {
        let mut shared = link.lock();
        if shared.closed || shared.conn.is_going_away() {
            return Poll::Ready(Err(LinkError::NotSent));
        }
        let Some(stream) = shared.conn.open_stream() else {
            // Its stream numbers used up: the pool opens another connection.
            if shared.conn.is_going_away() {
                return Poll::Ready(Err(LinkError::NotSent));
            }
            shared.waiters.push(cx.waker().clone());
            return Poll::Pending;
        };
        if head.method == http::Method::HEAD {
            shared.conn.expect_no_content(stream);
        }
        shared
            .conn
            .send_headers(stream, end, |w| fields::write_request(&head, w));
        shared.slots.insert(
            stream,
            Slot {
                task_done: end,
                ..Slot::default()
            },
        );
        shared.wake_writer();
        Poll::Ready(Ok(stream))
    })
    .await?;
    crate::http::spare_headers::give_back_map(head.headers);
    if !end && let Some(rest) = send_ready(link, stream, body) {
        let link = link.clone();
        tokio::spawn(async move {
            send_body(&link, stream, rest).await;
            link.lock().release_slot(stream, true);
        });
    } else if !end {
        link.lock().release_slot(stream, true);
    }
    Ok(stream)
}

/// A request whose answer has not come: if the caller gives up (or it failed), its stream is
/// reset and its slot let go.
struct Pending<'a> {
    link: &'a Link,
    stream: u32,
}

impl Pending<'_> {
    fn disarm(&mut self) {
        self.stream = 0;
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.stream == 0 {
            return;
        }
        let mut shared = self.link.lock();
        let shared = &mut *shared;
        if let Some(slot) = shared.slots.get_mut(&self.stream) {
            if slot.reset.is_none() && !slot.lost {
                slot.reset = Some(Reason::CANCEL);
                shared.conn.send_reset(self.stream, Reason::CANCEL);
            }
            slot.wake();
        }
        shared.release_slot(self.stream, false);
        shared.wake_writer();
    }
}

/// The client end's heads: answers, handed to the request waiting on their stream.
struct Client;

impl Role for Client {
    fn head(&mut self, _: &Link, shared: &mut Shared, stream: u32, end_stream: bool) {
        let answer = fields::response(shared.conn.take_fields());
        let Some(slot) = shared.slots.get_mut(&stream) else {
            return;
        };
        match answer {
            Ok(answer) => {
                slot.answer = Some(answer);
                slot.ended = end_stream;
            }
            Err(e) => {
                tracing::debug!("stream {stream}: {e}");
                slot.reset = Some(Reason::PROTOCOL_ERROR);
                shared.conn.send_reset(stream, Reason::PROTOCOL_ERROR);
            }
        }
        slot.wake();
    }
}

//! Sending a body on a link stream: an answer's on the server, a request's on the client.
//!
//! The body is read only while less than [`MAX_QUEUED`] of it waits for the peer's window, so a
//! slow peer holds back whoever feeds the body instead of making this proxy buffer it. A body
//! that fails resets the stream, so the peer does not take a cut-off body for a complete one.

use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use bytes::Bytes;
use http_body::{Body as _, Frame};
use weft_http2::frame::Reason;

use super::shared::{Link, Shared};
use crate::http::BoxError;
use crate::http::body::Body;

/// A stream's body queued past this waits for the peer's window before reading on.
const MAX_QUEUED: usize = 64 * 1024;

/// Sends what `body` has ready now (polled without a waker: a small upload read with its head
/// leaves with the `HEADERS` frame, in one write). `Some`: the rest, for [`send_body`].
pub fn send_ready(link: &Link, stream: u32, mut body: Body) -> Option<Body> {
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        let Poll::Ready(frame) = Pin::new(&mut body).poll_frame(&mut cx) else {
            return Some(body);
        };
        let end = body.is_end_stream();
        let mut shared = link.lock();
        let over = send_frame(&mut shared, stream, frame, end);
        shared.wake_writer();
        if over {
            return None;
        }
    }
}

/// Sends `body` on `stream` until it ends, fails or the stream is reset.
pub async fn send_body(link: &Link, stream: u32, mut body: Body) {
    std::future::poll_fn(|cx| {
        loop {
            {
                let mut shared = link.lock();
                let shared = &mut *shared;
                let Some(slot) = shared.slots.get_mut(&stream) else {
                    return Poll::Ready(());
                };
                if slot.reset.is_some() || slot.lost {
                    return Poll::Ready(());
                }
                if shared.conn.queued(stream) >= MAX_QUEUED {
                    shared.conn.notify_drained(stream);
                    slot.sender = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
            let frame = ready!(Pin::new(&mut body).poll_frame(cx));
            let end = body.is_end_stream();
            let mut shared = link.lock();
            let over = send_frame(&mut shared, stream, frame, end);
            shared.wake_writer();
            if over {
                return Poll::Ready(());
            }
        }
    })
    .await
}

/// Queues what the body gave; `true` when the body is over (ended or failed).
fn send_frame(
    shared: &mut Shared,
    stream: u32,
    frame: Option<Result<Frame<Bytes>, BoxError>>,
    end: bool,
) -> bool {
    match frame {
        Some(Ok(frame)) => match frame.into_data() {
            Ok(data) => {
                shared.conn.send_data(stream, data, end);
                end
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    shared.conn.send_trailers(stream, |w| {
                        for (name, value) in &trailers {
                            w.field(name.as_str().as_bytes(), value.as_bytes());
                        }
                    });
                }
                true
            }
        },
        None => {
            shared.conn.send_data(stream, Bytes::new(), true);
            true
        }
        Some(Err(e)) => {
            tracing::debug!("a body failed, resetting stream {stream}: {e}");
            shared.conn.send_reset(stream, Reason::INTERNAL_ERROR);
            if let Some(slot) = shared.slots.get_mut(&stream) {
                slot.reset = Some(Reason::INTERNAL_ERROR);
            }
            true
        }
    }
}

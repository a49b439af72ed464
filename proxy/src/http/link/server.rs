//! The server end of a link: the peer proxy's requests, each served by a task of its own.
//!
//! What [`crate::http::server::h2_server`] does besides is done here too: a stream the peer
//! resets before its answer drops its handler and spends the connection's [`ResetBudget`], whose
//! exhaustion ends the connection with `GOAWAY ENHANCE_YOUR_CALM`; answers lose the fields HTTP/2
//! forbids and get `content-length` when their size is known; a drain sends `GOAWAY` and lets the
//! streams in flight finish.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use http::{HeaderValue, Request, Response, header};
use http_body::Body as _;
use tokio_util::sync::CancellationToken;
use weft_http2::connection::{Config, Connection, Role as End};
use weft_http2::frame::Reason;

use super::body::LinkBody;
use super::driver::{Driver, Role};
use super::fields;
use super::send::send_body;
use super::shared::{Link, Shared, Slot};
use crate::http::body::Body;
use crate::http::body::h2_stream::strip_connection_specific;
use crate::http::refusal::Refusal;
use crate::http::server::h2_resets::ResetBudget;
use crate::http::server::h2_server::Settings;
use crate::transport::BoxedConnection;

/// Serves a peer proxy's link until it closes it or `stop` fires (the streams in flight finish).
pub async fn serve<F, Fut>(
    io: BoxedConnection,
    settings: &Settings,
    stop: CancellationToken,
    handler: F,
) -> Option<Refusal>
where
    F: Fn(Request<Body>) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let conn = Connection::new(Config {
        role: End::Server,
        max_concurrent_streams: settings.max_concurrent_streams,
        stream_window: settings.stream_window,
        connection_window: settings.connection_window,
        max_header_list_size: settings.max_header_list_size,
    });
    let resets = Arc::new(ResetBudget::new(settings.reset_allowance));
    let server = Server {
        handler,
        resets: resets.clone(),
    };
    let mut driver = Driver::new(io, Link::new(conn), server);
    let mut stopped = pin!(stop.cancelled());
    let mut exhausted = pin!(resets.exhausted());
    std::future::poll_fn(|cx| {
        if !driver.draining && stopped.as_mut().poll(cx).is_ready() {
            driver.draining = true;
            driver.link.lock().conn.go_away(Reason::NO_ERROR);
        }
        if driver.refused.is_none() && exhausted.as_mut().poll(cx).is_ready() {
            driver.refused = Some(Refusal::TooManyResets);
            driver.closing = true;
            driver.link.lock().conn.go_away(Reason::ENHANCE_YOUR_CALM);
        }
        driver.poll(cx)
    })
    .await;
    driver.finish();
    driver.refused
}

struct Server<F> {
    handler: F,
    resets: Arc<ResetBudget>,
}

impl<F, Fut> Role for Server<F>
where
    F: Fn(Request<Body>) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    /// A request's head: its stream's task is started.
    fn head(&mut self, link: &Link, shared: &mut Shared, stream: u32, end_stream: bool) {
        let head = match fields::request(shared.conn.take_fields()) {
            Ok(head) => head,
            Err(e) => {
                tracing::debug!("refused stream {stream}: {e}");
                shared.conn.send_reset(stream, Reason::PROTOCOL_ERROR);
                return;
            }
        };
        let body = if end_stream {
            Body::Full(None)
        } else {
            Body::Link(LinkBody::new(link.clone(), stream, head.headers()))
        };
        shared.slots.insert(
            stream,
            Slot {
                ended: end_stream,
                body_dropped: end_stream,
                ..Slot::default()
            },
        );
        let request = head.map(|()| body);
        let task = serve_stream(
            link.clone(),
            stream,
            request,
            self.handler.clone(),
            self.resets.clone(),
        );
        // Boxed: see `h2_server`.
        tokio::spawn(Box::pin(task));
    }
}

async fn serve_stream<F, Fut>(
    link: Link,
    stream: u32,
    request: Request<Body>,
    handler: F,
    resets: Arc<ResetBudget>,
) where
    F: Fn(Request<Body>) -> Fut,
    Fut: Future<Output = Response<Body>>,
{
    let response = tokio::select! {
        // The reset first: a stream the peer reset before it was taken up is not started.
        biased;
        reason = reset_of(&link, stream) => {
            tracing::debug!("the peer reset stream {stream} before its answer: {reason}");
            resets.reset();
            link.lock().release_slot(stream, true);
            return;
        }
        response = handler(request) => response,
    };
    resets.answered();
    let (mut head, body) = response.into_parts();
    strip_connection_specific(&mut head.headers);
    if let Some(length) = body.size_hint().exact()
        && !head.headers.contains_key(header::CONTENT_LENGTH)
    {
        head.headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    let end = body.is_end_stream();
    {
        let mut shared = link.lock();
        shared.conn.send_headers(stream, end, |w| {
            fields::write_response(head.status, &head.headers, w);
        });
        shared.wake_writer();
    }
    crate::http::spare_headers::give_back_map(head.headers);
    if !end {
        send_body(&link, stream, body).await;
    }
    link.lock().release_slot(stream, true);
}

/// Ready with the reason once the peer has reset `stream` (or the connection ended).
fn reset_of(link: &Link, stream: u32) -> impl Future<Output = Reason> + '_ {
    std::future::poll_fn(move |cx| {
        let mut shared = link.lock();
        let Some(slot) = shared.slots.get_mut(&stream) else {
            return Poll::Ready(Reason::CANCEL);
        };
        if let Some(reason) = slot.reset {
            return Poll::Ready(reason);
        }
        if slot.lost {
            return Poll::Ready(Reason::CANCEL);
        }
        if !slot
            .sender
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            slot.sender = Some(cx.waker().clone());
        }
        Poll::Pending
    })
}

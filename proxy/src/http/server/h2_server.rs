//! Serving HTTP/2 on the `h2` crate directly, to plaintext callers and the local app (a peer
//! proxy's link is served by [`crate::http::link::server`]): every stream gets a task that runs
//! the handler and sends its answer.
//!
//! hyper's HTTP/2 server does the same with its service and executor plumbing around it, which
//! costs instructions per request, memory per connection and code; the client side already
//! speaks `h2` directly ([`crate::http::client::h2_pool`]). What hyper did besides is done here:
//! a stream the client resets while the handler runs drops the handler (the request was
//! abandoned: its telemetry records that), answers lose the headers HTTP/2 forbids and get
//! `content-length` when their size is known, and a drain sends `GOAWAY` and lets the streams in
//! flight finish. Besides, a stream the client reset before
//! it was taken up is not started at all, and a client that resets more streams before their
//! answer than its [`ResetBudget`] allows is sent `GOAWAY ENHANCE_YOUR_CALM`.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body::Body as _;
use tokio_util::sync::CancellationToken;

use crate::http::body::Body;
use crate::http::body::h2_stream::{self, H2Body};
use crate::http::server::Refusal;
use crate::http::server::h2_resets::ResetBudget;
use crate::transport::BoxedConnection;

/// The server's settings for one connection (see `http_server` for why each is what it is).
pub struct Settings {
    pub stream_window: u32,
    pub connection_window: u32,
    pub max_concurrent_streams: u32,
    pub max_header_list_size: u32,
    /// The connection's [`ResetBudget`] allowance.
    pub reset_allowance: u32,
}

/// Serves `io` until the client closes it or `stop` fires (then the streams in flight finish).
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
    let mut builder = h2::server::Builder::new();
    builder
        .initial_window_size(settings.stream_window)
        .initial_connection_window_size(settings.connection_window)
        .max_concurrent_streams(settings.max_concurrent_streams)
        .max_header_list_size(settings.max_header_list_size);
    let mut connection = match builder.handshake::<_, Bytes>(io).await {
        Ok(connection) => connection,
        Err(e) => {
            tracing::debug!("HTTP/2 handshake failed: {e}");
            return None;
        }
    };
    let resets = Arc::new(ResetBudget::new(settings.reset_allowance));
    let mut draining = false;
    let mut refused = None;
    loop {
        let next = tokio::select! {
            // A flood is cut off before its next stream is taken up; then streams: requests
            // already received are served even when the drain has just begun.
            biased;
            () = resets.exhausted(), if refused.is_none() => {
                connection.abrupt_shutdown(h2::Reason::ENHANCE_YOUR_CALM);
                refused = Some(Refusal::TooManyResets);
                continue;
            }
            next = connection.accept() => next,
            () = stop.cancelled(), if !draining => {
                connection.graceful_shutdown();
                draining = true;
                continue;
            }
        };
        match next {
            // Sent GOAWAY for too many resets: nothing more is started.
            Some(Ok(_)) if refused.is_some() => {}
            Some(Ok((req, respond))) => {
                // Boxed: a task stores its future, and then its output, in one slot as large
                // as the future, written whole each time (the future is kilobytes: the request's
                // whole path). A box makes the slot two words: measured, 1.5k fewer
                // instructions a request for one allocation.
                let stream = serve_stream(req, respond, handler.clone(), resets.clone());
                tokio::spawn(Box::pin(stream));
            }
            Some(Err(e)) => {
                tracing::debug!("HTTP connection ended: {e}");
                return refused.or_else(|| crate::http::server::refusal(&e));
            }
            None => return refused,
        }
    }
}

async fn serve_stream<F, Fut>(
    req: Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    handler: F,
    resets: Arc<ResetBudget>,
) where
    F: Fn(Request<Body>) -> Fut,
    Fut: Future<Output = Response<Body>>,
{
    let (parts, recv) = req.into_parts();
    let body = Body::H2(H2Body::new(recv, &parts.headers));
    let response = tokio::select! {
        // The reset first: a stream the client reset before it was taken up is not started (no
        // connect to the app for a request nobody waits for).
        biased;
        reset = std::future::poll_fn(|cx| respond.poll_reset(cx)) => {
            match reset {
                Ok(reason) => {
                    tracing::debug!("the client reset the stream before its answer: {reason}");
                    resets.reset();
                }
                Err(e) => tracing::debug!("the stream ended before its answer: {e}"),
            }
            return;
        }
        response = handler(Request::from_parts(parts, body)) => response,
    };
    resets.answered();
    let (mut head, body) = response.into_parts();
    h2_stream::strip_connection_specific(&mut head.headers);
    if let Some(length) = body.size_hint().exact()
        && !head.headers.contains_key(header::CONTENT_LENGTH)
    {
        head.headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    let end_of_stream = body.is_end_stream();
    match respond.send_response(Response::from_parts(head, ()), end_of_stream) {
        Ok(stream) if !end_of_stream => h2_stream::send_all(body, stream).await,
        Ok(_) => {}
        Err(e) => tracing::debug!("could not send an answer: {e}"),
    }
}

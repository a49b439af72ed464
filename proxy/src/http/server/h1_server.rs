//! HTTP/1.x served on weft's own codec ([`crate::http::h1`]): the app's requests on the client
//! sidecar's outbound listener; plaintext callers and peer proxies' upgrade connections on the
//! server sidecar's inbound listener.
//!
//! The connection's own task does all of it, with no channel and no other task: read a head, call
//! the handler, write its answer, read the next head. Requests are handled one at a time, so
//! pipelined requests are answered in order (their bytes wait in the buffer). The read buffer
//! exists only while bytes are pending (a head, a body, pipelined requests): an idle keep-alive
//! connection, or one whose bodiless request is waiting for its answer, waits for its next bytes
//! with a read into the stack and holds none.
//!
//! A request's body is read by whoever forwards it, often another task: it borrows the
//! connection's read side until it ends or is dropped ([`H1RequestBody`]). Meanwhile the loop
//! writes the answer as soon as it comes (an app may answer before it has read the body); then,
//! with the read side back, it reads the next request, or drains what is left of an abandoned
//! body (a bounded amount, briefly) or closes. While the handler runs and the read side is here,
//! the loop watches it: a caller that hangs up has its request dropped (and counted as such).
//!
//! The answer's framing is weft's choice, never copied from the app: no body for a `HEAD`, 1xx,
//! 204 or 304 (the app's `Content-Length` passes through for `HEAD` and 304, where it describes
//! the resource; 1xx and 204 must not have one); the exact length when it is known; else chunked
//! to an HTTP/1.1 caller (trailers in the last chunk) and until the close to an HTTP/1.0 one.
//! Small frames are copied behind the head into one write; large data frames are written from
//! where they are.
//!
//! Refused, with a short text body, `weft-error` and `connection: close`, and counted by the
//! caller of [`serve`]: a head not complete within [`HEADER_READ_TIMEOUT`] (`408`; an idle
//! connection is only closed), over [`MAX_HEADER_BYTES`] (`431`, `414` for the request line
//! alone), breaking RFC 9112 (`400`, [`H1Error`]), or a chunked body whose first chunk line is
//! invalid (`400`, read before the handler is called, so nothing reaches the app).

use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::io::{AsyncWriteExt, WriteHalf};
use tokio::sync::oneshot;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::sync::CancellationToken;

use crate::http::body::h1_request::{H1Reader, H1RequestBody};
use crate::http::body::{self, Body};
use crate::http::h1::buffers;
use crate::http::h1::chunked::MAX_CHUNK_EXTENSION;
use crate::http::h1::{
    ChunkedDecoder, Framing, H1Error, RequestHead, encode_last_chunk, encode_response_head,
    read_request,
};
use crate::http::server::gather::Gather;
use crate::http::server::{ANSWER_WRITE_TIMEOUT, HEADER_READ_TIMEOUT, MAX_HEADER_BYTES, Refusal};
use crate::http::{headers, spare_headers, upgrade};
use crate::transport::{BoxedConnection, PrefixedIo};

/// How much room each read of a request head asks for.
const HEAD_READ: usize = 1024;
/// The longest first chunk line read before the handler is called: the largest size, BWS and
/// the longest extension.
const FIRST_CHUNK_LINE: usize = 64 + MAX_CHUNK_EXTENSION;
/// What is left of a body its forwarder dropped may be read and discarded up to this much, for
/// so long, to keep the connection; past that it is closed.
const DRAIN_BYTES: usize = 64 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(1);
/// The write buffer is written out once it holds this much, even if more frames are ready.
const WRITE_AT: usize = 64 * 1024;
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Serves HTTP/1.x on `io` until the caller closes it, or `stop` fires (the request in flight is
/// answered first). Returns why the server closed it, if it refused the caller.
pub async fn serve<F, Fut>(
    io: BoxedConnection,
    stop: CancellationToken,
    handler: F,
) -> Option<Refusal>
where
    F: Fn(Request<Body>) -> Fut,
    Fut: Future<Output = Response<Body>>,
{
    let (read, mut write) = tokio::io::split(io);
    let mut reader = Box::new(H1Reader::new(read));
    loop {
        // The head is read by a future of its own, and never borrowed here: a local this loop
        // borrows stays in its state, which a connection's task holds for its whole life.
        let Next {
            head,
            first_chunk,
            asked,
            expect_continue,
        } = match next_request(&mut reader, &stop).await {
            Ok(Some(next)) => next,
            Ok(None) => return None,
            Err(refusal) => return Some(refuse(write, reader, refusal).await),
        };
        let (req, mut side, mut wants_continue) = match head.framing {
            // (A request is never close-delimited.)
            Framing::Empty | Framing::CloseDelimited => {
                // Nothing more to read for this request: unless the next one's bytes are here,
                // the buffer goes back to the pool while the request is in flight (the head's
                // bytes are not the buffer's).
                if reader.buf.is_empty() {
                    buffers::give_back(&mut reader.buf);
                }
                let upgrade = head.upgrade;
                let mut req = head.into_request(body::full(Bytes::new()));
                let handoff = upgrade.then(|| {
                    let (handoff, on_upgrade) = upgrade::pending();
                    req.extensions_mut().insert(on_upgrade);
                    handoff
                });
                (req, Side::Here(reader, handoff), None)
            }
            Framing::Length(length) => {
                reader.expect_length(length);
                lend(head, reader, expect_continue)
            }
            Framing::Chunked => {
                // A caller waiting for `100 Continue` has sent no chunk yet.
                reader.expect_chunked(first_chunk.unwrap_or_default());
                lend(head, reader, expect_continue)
            }
        };

        let mut continue_sent = false;
        // Boxed: the handler's future (the whole outbound or inbound path) lives only while a
        // request is in flight, not in every idle connection's task, whose size is its largest
        // state.
        let mut answer = Box::pin(handler(req));
        // Whether it switches protocols is read here: a borrow of `response` itself would keep
        // it in this loop's state while the answer is written.
        let (response, switching) = loop {
            let event =
                poll_fn(|cx| in_flight(answer.as_mut(), &mut side, &mut wants_continue, cx));
            match event.await {
                InFlight::Answered(response) => {
                    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
                    break (response, switching);
                }
                InFlight::Returned(back) => side = Side::Here(back, None),
                InFlight::WantsContinue => {
                    if write_all(&mut write, CONTINUE).await.is_err() {
                        return None;
                    }
                    continue_sent = true;
                }
                InFlight::Read => {}
                // The caller hung up: its request is dropped (and recorded as abandoned).
                InFlight::CallerGone => return None,
            }
        };

        let failed = matches!(&side, Side::Here(reader, _) if reader.failed());
        let close = !asked.keep_alive || failed || stop.is_cancelled();
        // After a `101` the connection is the upgraded one's, or no one's.
        let upgrading = match &mut side {
            Side::Here(_, handoff) if switching => handoff.take(),
            _ => None,
        };
        let keep = match write_answer(&mut write, response, &asked, close || switching).await {
            Ok(keep) => keep,
            Err(e) => {
                tracing::debug!("writing an answer failed: {e}");
                return None;
            }
        };
        reader = match side {
            Side::Here(reader, _) => match upgrading {
                Some(handoff) => {
                    let (read, buf) = reader.into_parts();
                    handoff.complete(PrefixedIo::new(buf.freeze(), read.unsplit(write)));
                    return None;
                }
                None => reader,
            },
            Side::Lent(returned) => tokio::select! {
                back = returned => match back {
                    Ok(back) => back,
                    Err(_) => return None,
                },
                () = stop.cancelled() => return None,
            },
        };
        // A caller never sent `100 Continue` may never send the body: nothing to drain.
        let drainable = !expect_continue || continue_sent;
        let keep =
            keep && !reader.failed() && (reader.is_done() || drainable && drain(&mut reader).await);
        if !keep {
            let _ = timeout(ANSWER_WRITE_TIMEOUT, write.shutdown()).await;
            return None;
        }
    }
}

/// What the answer depends on in the request.
struct Asked {
    /// A `HEAD` request: the answer has no body.
    head: bool,
    version: Version,
    keep_alive: bool,
}

/// Where the connection's read side is while a request is in flight.
enum Side {
    /// With the loop: the request had no body, or its body has ended or been dropped. For an
    /// upgrade request, where its connection goes after a `101`.
    Here(Box<H1Reader>, Option<upgrade::Handoff>),
    /// Lent to the request's body until it ends or is dropped.
    Lent(oneshot::Receiver<Box<H1Reader>>),
}

/// The request for `head`, its body lent `reader`; told when the body is first wanted if the
/// caller waits for `100 Continue`.
fn lend(
    head: RequestHead,
    reader: Box<H1Reader>,
    expect_continue: bool,
) -> (Request<Body>, Side, Option<oneshot::Receiver<()>>) {
    let (back, returned) = oneshot::channel();
    let (ask, wants_continue) = match expect_continue {
        true => {
            let (ask, asked) = oneshot::channel();
            (Some(ask), Some(asked))
        }
        false => (None, None),
    };
    let body = Body::H1Request(H1RequestBody::new(reader, back, ask));
    (
        head.into_request(body),
        Side::Lent(returned),
        wants_continue,
    )
}

/// What happened while the handler runs.
enum InFlight {
    Answered(Response<Body>),
    /// The body gave the read side back.
    Returned(Box<H1Reader>),
    /// The body was first polled: the caller is to be sent `100 Continue`.
    WantsContinue,
    /// Bytes of a pipelined request arrived.
    Read,
    CallerGone,
}

fn in_flight<Fut: Future<Output = Response<Body>>>(
    answer: Pin<&mut Fut>,
    side: &mut Side,
    wants_continue: &mut Option<oneshot::Receiver<()>>,
    cx: &mut Context<'_>,
) -> Poll<InFlight> {
    if let Poll::Ready(response) = answer.poll(cx) {
        return Poll::Ready(InFlight::Answered(response));
    }
    if let Some(asked) = wants_continue
        && let Poll::Ready(asked) = Pin::new(asked).poll(cx)
    {
        *wants_continue = None;
        if asked.is_ok() {
            return Poll::Ready(InFlight::WantsContinue);
        }
    }
    match side {
        Side::Lent(returned) => match Pin::new(returned).poll(cx) {
            Poll::Ready(Ok(reader)) => Poll::Ready(InFlight::Returned(reader)),
            Poll::Ready(Err(_)) => Poll::Ready(InFlight::CallerGone),
            Poll::Pending => Poll::Pending,
        },
        // Watched for the caller hanging up only between whole requests (a body dropped before
        // its end is drained after the answer), and while pipelined bytes fit the head limit.
        Side::Here(reader, _) if reader.is_done() && reader.buf.len() < MAX_HEADER_BYTES => {
            let read = match reader.buf.capacity() {
                0 => reader.poll_idle_read(cx),
                _ => reader.poll_read_more(cx, HEAD_READ),
            };
            match read {
                Poll::Ready(Ok(0) | Err(_)) => Poll::Ready(InFlight::CallerGone),
                Poll::Ready(Ok(_)) => Poll::Ready(InFlight::Read),
                Poll::Pending => Poll::Pending,
            }
        }
        Side::Here(..) => Poll::Pending,
    }
}

/// The next request, as the loop serves it.
struct Next {
    head: RequestHead,
    /// A chunked body's first chunk line, checked before the app sees the request (unless the
    /// caller sends it only after `100 Continue`).
    first_chunk: Option<ChunkedDecoder>,
    asked: Asked,
    /// The caller sends the body only after `100 Continue`.
    expect_continue: bool,
}

/// Reads the next request. `Ok(None)`: as for [`read_head`].
async fn next_request(
    reader: &mut H1Reader,
    stop: &CancellationToken,
) -> Result<Option<Next>, Refusal> {
    let deadline = Instant::now() + HEADER_READ_TIMEOUT;
    let Some(head) = read_head(reader, deadline, stop).await? else {
        return Ok(None);
    };
    let asked = Asked {
        head: head.method == Method::HEAD,
        version: head.version,
        keep_alive: head.keep_alive,
    };
    // An HTTP/1.0 caller's expectation is ignored (RFC 9110 10.1.1).
    let expect_continue = head.expect_continue && head.version == Version::HTTP_11;
    let first_chunk = match head.framing == Framing::Chunked && !expect_continue {
        true => match first_chunk_line(reader, deadline).await? {
            Some(decoder) => Some(decoder),
            None => return Ok(None),
        },
        false => None,
    };
    Ok(Some(Next {
        head,
        first_chunk,
        asked,
        expect_continue,
    }))
}

/// Reads the next request head. `Ok(None)`: the connection is over without one (the caller
/// closed it, it stayed idle for the header timeout, or the proxy is stopping).
async fn read_head(
    reader: &mut H1Reader,
    deadline: Instant,
    stop: &CancellationToken,
) -> Result<Option<RequestHead>, Refusal> {
    if reader.buf.is_empty() {
        // Idle: the buffer goes back to the pool until the next request's bytes come.
        buffers::give_back(&mut reader.buf);
        let first = tokio::select! {
            // The connection first: bytes already read (by protocol detection) are a request to
            // serve, even when the drain has just begun.
            biased;
            first = timeout_at(deadline, poll_fn(|cx| reader.poll_idle_read(cx))) => first,
            () = stop.cancelled() => return Ok(None),
        };
        if !matches!(first, Ok(Ok(1..))) {
            return Ok(None);
        }
    }
    loop {
        let buffered = reader.buf.len();
        match read_request(&mut reader.buf) {
            Ok(Some(head)) if buffered - reader.buf.len() <= MAX_HEADER_BYTES => {
                return Ok(Some(head));
            }
            Ok(Some(_)) => return Err(Refusal::BadHead(H1Error::HeadTooLarge)),
            Ok(None) if reader.buf.len() >= MAX_HEADER_BYTES => {
                let line_ends = reader.buf[..MAX_HEADER_BYTES].contains(&b'\n');
                return Err(match line_ends {
                    true => Refusal::BadHead(H1Error::HeadTooLarge),
                    false => Refusal::UriTooLong,
                });
            }
            Ok(None) => {}
            Err(e) => return Err(Refusal::BadHead(e)),
        }
        match timeout_at(deadline, poll_fn(|cx| reader.poll_read_more(cx, HEAD_READ))).await {
            Err(_) => return Err(Refusal::HeaderTimeout),
            Ok(Ok(0) | Err(_)) => return Ok(None),
            Ok(Ok(_)) => {}
        }
    }
}

/// Reads and checks a chunked body's first chunk line, within the header timeout, so that an
/// invalid size or an oversized extension is refused before the app sees the request. `Ok(None)`:
/// the caller closed the connection.
async fn first_chunk_line(
    reader: &mut H1Reader,
    deadline: Instant,
) -> Result<Option<ChunkedDecoder>, Refusal> {
    loop {
        let scanned = reader.buf.len().min(FIRST_CHUNK_LINE);
        let line_end = reader.buf[..scanned].iter().position(|&b| b == b'\n');
        if line_end.is_some() || scanned == FIRST_CHUNK_LINE {
            let mut line = reader.buf.split_to(line_end.map_or(scanned, |at| at + 1));
            let mut decoder = ChunkedDecoder::new();
            return match decoder.decode(&mut line) {
                Err(e) => Err(Refusal::MalformedBody(e)),
                Ok(_) if line_end.is_none() => Err(Refusal::MalformedBody(H1Error::InvalidChunk)),
                Ok(_) => Ok(Some(decoder)),
            };
        }
        match timeout_at(deadline, poll_fn(|cx| reader.poll_read_more(cx, HEAD_READ))).await {
            Err(_) => return Err(Refusal::HeaderTimeout),
            Ok(Ok(0) | Err(_)) => return Ok(None),
            Ok(Ok(_)) => {}
        }
    }
}

/// Reads and discards what is left of a body its forwarder dropped, to keep the connection: up
/// to [`DRAIN_BYTES`] within [`DRAIN_TIME`].
async fn drain(reader: &mut H1Reader) -> bool {
    let discard = async {
        let mut discarded = 0;
        while discarded <= DRAIN_BYTES {
            match poll_fn(|cx| reader.poll_frame(cx)).await {
                None => return true,
                Some(Ok(frame)) => discarded += frame.data_ref().map_or(0, Bytes::len),
                Some(Err(_)) => return false,
            }
        }
        false
    };
    timeout(DRAIN_TIME, discard).await.unwrap_or(false)
}

/// Writes the answer; whether the connection may carry another request after it.
async fn write_answer(
    write: &mut WriteHalf<BoxedConnection>,
    response: Response<Body>,
    asked: &Asked,
    mut close: bool,
) -> io::Result<bool> {
    let (mut parts, mut body) = response.into_parts();
    let status = parts.status;
    let bodiless = asked.head
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = if bodiless {
        // For HEAD and 304 the app's length describes the resource and passes through; 1xx and
        // 204 must not have one (RFC 9110 8.6).
        if !asked.head && (status.is_informational() || status == StatusCode::NO_CONTENT) {
            parts.headers.remove(CONTENT_LENGTH);
        }
        Framing::Empty
    } else if body.is_end_stream() {
        Framing::Length(0)
    } else if let Some(length) = body.size_hint().exact() {
        Framing::Length(length)
    } else if asked.version == Version::HTTP_11 {
        Framing::Chunked
    } else {
        Framing::CloseDelimited
    };
    close |= framing == Framing::CloseDelimited || says_close(&parts.headers);
    if status != StatusCode::SWITCHING_PROTOCOLS {
        if close {
            parts
                .headers
                .insert(CONNECTION, HeaderValue::from_static("close"));
        } else if asked.version == Version::HTTP_10 {
            parts
                .headers
                .insert(CONNECTION, HeaderValue::from_static("keep-alive"));
        }
    }
    let mut out = Gather::new(buffers::take());
    encode_response_head(status, Version::HTTP_11, &parts.headers, framing, out.buf());
    spare_headers::give_back_map(parts.headers);
    let complete = match bodiless {
        true => {
            drop(body);
            out.write_to(write).await.map(|()| true)
        }
        false => write_body(write, &mut body, framing, &mut out).await,
    };
    buffers::give_back(&mut out.into_buffer());
    Ok(complete? && !close)
}

/// Writes `body` after the head in `out`; whether it was written whole.
async fn write_body(
    write: &mut WriteHalf<BoxedConnection>,
    body: &mut Body,
    framing: Framing,
    out: &mut Gather,
) -> io::Result<bool> {
    let mut left = match framing {
        Framing::Length(length) => Some(length),
        _ => None,
    };
    let mut trailers = None;
    loop {
        // Frames ready now go into one write; before waiting for the next, what is gathered goes.
        let next = match poll_fn(|cx| Poll::Ready(Pin::new(&mut *body).poll_frame(cx))).await {
            Poll::Ready(next) => next,
            Poll::Pending => {
                out.write_to(write).await?;
                body.frame().await
            }
        };
        let frame = match next {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                tracing::debug!("the answer's body failed: {e}");
                out.write_to(write).await?;
                return Ok(false);
            }
        };
        let mut data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                trailers = frame.into_trailers().ok();
                continue;
            }
        };
        let mut overflow = false;
        if let Some(left) = &mut left {
            if data.len() as u64 > *left {
                // More than the length it announced: the rest cannot be sent on this connection.
                data.truncate(*left as usize);
                overflow = true;
            }
            *left -= data.len() as u64;
        }
        match framing {
            Framing::Chunked => out.push_chunk(data),
            _ => out.push(data),
        }
        if overflow {
            out.write_to(write).await?;
            return Ok(false);
        }
        if out.len() >= WRITE_AT {
            out.write_to(write).await?;
        }
    }
    if framing == Framing::Chunked {
        encode_last_chunk(trailers.as_ref(), out.buf());
    }
    out.write_to(write).await?;
    Ok(left.is_none_or(|left| left == 0))
}

async fn write_all(write: &mut WriteHalf<BoxedConnection>, bytes: &[u8]) -> io::Result<()> {
    write.write_all(bytes).await?;
    write.flush().await
}

/// Whether the handler's answer says the connection is to close after it.
fn says_close(headers: &HeaderMap) -> bool {
    headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"))
}

/// Answers `refusal` and closes the connection; returns the refusal.
async fn refuse(
    mut write: WriteHalf<BoxedConnection>,
    reader: Box<H1Reader>,
    refusal: Refusal,
) -> Refusal {
    let status = refusal.status().unwrap_or(StatusCode::BAD_REQUEST);
    let text = format!("weft: {refusal}\n");
    let answer = format!(
        "HTTP/1.1 {} {}\r\nconnection: close\r\ncontent-type: text/plain; charset=utf-8\r\n{}: {}\r\ncontent-length: {}\r\n\r\n{text}",
        status.as_str(),
        status.canonical_reason().unwrap_or_default(),
        headers::ERROR,
        refusal.reason(),
        text.len(),
    );
    // Bounded: a caller too slow to send its head may be too slow to read this.
    let written = async {
        write.write_all(answer.as_bytes()).await?;
        write.shutdown().await
    };
    if let Ok(Ok(())) = timeout(ANSWER_WRITE_TIMEOUT, written).await {
        tokio::spawn(linger(reader, write));
    }
    refusal
}

/// Reads on briefly before closing a refused connection: closing with unread bytes resets it,
/// and the reset can destroy the answer before the caller has read it. Its own task, so that
/// the refusal is counted as soon as it is answered.
async fn linger(mut reader: Box<H1Reader>, write: WriteHalf<BoxedConnection>) {
    let discard = async {
        let mut discarded = 0;
        while discarded <= DRAIN_BYTES {
            reader.buf.clear();
            match poll_fn(|cx| reader.poll_read_more(cx, HEAD_READ)).await {
                Ok(0) | Err(_) => return,
                Ok(n) => discarded += n,
            }
        }
    };
    let _ = timeout(DRAIN_TIME, discard).await;
    drop(write);
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, DuplexStream};

    use bytes::BytesMut;

    use crate::http::server::gather::COPY_BELOW;
    use tokio::task::JoinHandle;

    use super::*;

    /// Serves a connection whose other end the test holds.
    fn connect<F, Fut>(handler: F) -> (DuplexStream, JoinHandle<Option<Refusal>>)
    where
        F: Fn(Request<Body>) -> Fut + Send + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let stop = CancellationToken::new();
        (client, tokio::spawn(serve(Box::new(server), stop, handler)))
    }

    /// Answers with the request's path and body, after a pause for `/slow`.
    async fn echo(req: Request<Body>) -> Response<Body> {
        if req.uri().path() == "/slow" {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let path = req.uri().path().to_owned();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        Response::new(body::full(format!(
            "{path}:{}",
            String::from_utf8_lossy(&body)
        )))
    }

    async fn unreachable(_req: Request<Body>) -> Response<Body> {
        panic!("a refused request reached the handler")
    }

    async fn read_all(client: &mut DuplexStream) -> String {
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        String::from_utf8(answer).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn pipelined_requests_are_answered_in_order() {
        let (mut client, served) = connect(echo);
        client
            .write_all(b"GET /slow HTTP/1.1\r\nhost: a\r\n\r\nPOST /fast HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\n\r\nhiGET /last HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(
            read_all(&mut client).await,
            "HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\n/slow:\
             HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\n/fast:hi\
             HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 6\r\n\r\n/last:"
        );
        assert_eq!(served.await.unwrap(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn continue_is_sent_when_the_body_is_first_wanted() {
        let (mut client, _served) = connect(echo);
        client
            .write_all(b"PUT /up HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\ncontent-length: 5\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut interim = [0u8; CONTINUE.len()];
        client.read_exact(&mut interim).await.unwrap();
        assert_eq!(&interim, CONTINUE);
        client.write_all(b"hello").await.unwrap();
        assert_eq!(
            read_all(&mut client).await,
            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 9\r\n\r\n/up:hello"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_before_the_body_is_wanted_sends_no_continue_and_closes() {
        let (mut client, served) = connect(|_req: Request<Body>| async {
            let mut refused = Response::new(body::full("no"));
            *refused.status_mut() = StatusCode::FORBIDDEN;
            refused
        });
        client
            .write_all(
                b"PUT /up HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\ncontent-length: 5\r\n\r\n",
            )
            .await
            .unwrap();
        assert_eq!(
            read_all(&mut client).await,
            "HTTP/1.1 403 Forbidden\r\ncontent-length: 2\r\n\r\nno"
        );
        assert_eq!(served.await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_idle_connection_holds_no_buffer() {
        let (client, server) = tokio::io::duplex(1024);
        let (read, _write) = tokio::io::split(Box::new(server) as BoxedConnection);
        let mut reader = H1Reader::new(read);
        reader.buf = BytesMut::with_capacity(8192);
        let stop = CancellationToken::new();
        let deadline = Instant::now() + HEADER_READ_TIMEOUT;
        {
            let waiting = pin!(read_head(&mut reader, deadline, &stop));
            let mut waiting = waiting;
            let polled = poll_fn(|cx| Poll::Ready(waiting.as_mut().poll(cx))).await;
            assert!(polled.is_pending());
        }
        assert_eq!(
            reader.buf.capacity(),
            0,
            "waiting for a request holds no buffer"
        );

        let mut client = client;
        client
            .write_all(b"GET /a HTTP/1.1\r\nhost: a\r\n\r\nGET /b")
            .await
            .unwrap();
        let head = read_head(&mut reader, deadline, &stop)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(head.uri, "/a");
        assert_eq!(&reader.buf[..], b"GET /b", "the next request's bytes wait");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_lets_the_request_in_flight_finish_then_closes() {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let stop = CancellationToken::new();
        let served = tokio::spawn(serve(Box::new(server), stop.clone(), echo));
        let mut client = client;
        client
            .write_all(b"GET /slow HTTP/1.1\r\nhost: a\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        stop.cancel();
        assert_eq!(
            read_all(&mut client).await,
            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 6\r\n\r\n/slow:"
        );
        assert_eq!(served.await.unwrap(), None);

        let (mut idle, server) = tokio::io::duplex(1024);
        let served = tokio::spawn(serve(Box::new(server), stop.clone(), echo));
        assert_eq!(
            served.await.unwrap(),
            None,
            "an idle connection closes at once"
        );
        assert_eq!(read_all(&mut idle).await, "");
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_that_hangs_up_has_its_request_dropped() {
        let dropped = Arc::new(AtomicBool::new(false));
        struct Guard(Arc<AtomicBool>);
        impl Drop for Guard {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let seen = dropped.clone();
        let (mut client, served) = connect(move |_req: Request<Body>| {
            let guard = Guard(seen.clone());
            async move {
                std::future::pending::<()>().await;
                drop(guard);
                Response::new(body::full(""))
            }
        });
        client
            .write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(client);
        assert_eq!(served.await.unwrap(), None);
        assert!(dropped.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_are_answered_and_nothing_reaches_the_handler() {
        let cases: [(&[u8], Refusal, &str); 4] = [
            (
                b"GET / HTTP/1.1\r\nhost: a\r\nnot a header\r\n\r\n",
                Refusal::BadHead(H1Error::MalformedHead),
                "HTTP/1.1 400 Bad Request\r\n",
            ),
            (
                b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n",
                Refusal::BadHead(H1Error::ContentLengthWithTransferEncoding),
                "HTTP/1.1 400 Bad Request\r\n",
            ),
            (
                b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n-1\r\n",
                Refusal::MalformedBody(H1Error::InvalidChunk),
                "HTTP/1.1 400 Bad Request\r\n",
            ),
            (
                b"GET / HTTP/1.1\r\nhost: a\r\nx-slow: ",
                Refusal::HeaderTimeout,
                "HTTP/1.1 408 Request Timeout\r\n",
            ),
        ];
        for (request, refusal, status) in cases {
            let (mut client, served) = connect(unreachable);
            client.write_all(request).await.unwrap();
            let answer = read_all(&mut client).await;
            assert!(answer.starts_with(status), "{answer}");
            assert!(answer.contains("connection: close\r\n"), "{answer}");
            let reason = format!("weft-error: {}\r\n", refusal.reason());
            assert!(answer.contains(&reason), "{answer}");
            assert_eq!(served.await.unwrap(), Some(refusal));
        }
        let (mut client, served) = connect(echo);
        let mut long = b"GET /".to_vec();
        long.resize(MAX_HEADER_BYTES + 10, b'a');
        client.write_all(&long).await.unwrap();
        assert!(
            read_all(&mut client)
                .await
                .starts_with("HTTP/1.1 414 URI Too Long\r\n")
        );
        assert_eq!(served.await.unwrap(), Some(Refusal::UriTooLong));
    }

    #[tokio::test(start_paused = true)]
    async fn answers_are_framed_by_what_weft_knows_of_them() {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let streamed = std::sync::Mutex::new(Some(rx));
        let (mut client, _served) = connect(move |req: Request<Body>| {
            let stream = match req.uri().path() {
                "/stream" => streamed.lock().unwrap().take(),
                _ => None,
            };
            async move {
                let mut response = match req.uri().path() {
                    "/stream" => Response::new(Body::Channel(stream.unwrap())),
                    _ => Response::new(body::full("abc")),
                };
                response
                    .headers_mut()
                    .insert(CONTENT_LENGTH, HeaderValue::from_static("3"));
                response
            }
        });
        tx.send(Bytes::from_static(b"one")).await.unwrap();
        tx.send(Bytes::from(vec![b'x'; COPY_BELOW])).await.unwrap();
        drop(tx);
        client
            .write_all(b"HEAD /h HTTP/1.1\r\nhost: a\r\n\r\nGET /stream HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = read_all(&mut client).await;
        let large = "x".repeat(COPY_BELOW);
        assert_eq!(
            answer,
            format!(
                "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n\
                 HTTP/1.1 200 OK\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n\
                 3\r\none\r\n2000\r\n{large}\r\n0\r\n\r\n"
            )
        );

        let (mut client, _served) = connect(|_req: Request<Body>| async {
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            tx.send(Bytes::from_static(b"old")).await.unwrap();
            Response::new(Body::Channel(rx))
        });
        client
            .write_all(b"GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(
            read_all(&mut client).await,
            "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nold",
            "until the close for HTTP/1.0"
        );
    }
}

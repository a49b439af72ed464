//! One sidecar's tap stream: `GET /tap?<filters>` on its admin address, read line by line.
//!
//! A sidecar that cannot be reached, refuses (403, 429, 400) or answers something else ends
//! with one message naming it; the other sidecars' streams go on.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// The longest wait for a sidecar to accept and answer the tap request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A line longer than this is not an event: the stream is not a tap stream.
const MAX_LINE: usize = 64 * 1024;

/// What a source sends to the merged stream.
#[derive(Debug)]
pub enum Message {
    /// One JSON line from `sidecar`.
    Line { sidecar: String, line: String },
    /// The stream of `sidecar` is over: `Ok` when the sidecar ended it, `Err` with why not.
    Ended {
        sidecar: String,
        result: Result<(), String>,
    },
}

/// Reads `sidecar`'s tap stream into `out` until it ends or `out` is closed.
pub async fn follow(sidecar: String, query: String, out: mpsc::Sender<Message>) {
    let result = stream(&sidecar, &query, &out).await;
    let _ = out.send(Message::Ended { sidecar, result }).await;
}

async fn stream(sidecar: &str, query: &str, out: &mpsc::Sender<Message>) -> Result<(), String> {
    let answer = tokio::time::timeout(CONNECT_TIMEOUT, request(sidecar, query))
        .await
        .map_err(|_| format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()))??;
    let status = answer.status();
    let mut body = answer.into_body();
    if !status.is_success() {
        let text = body
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_owned())
            .unwrap_or_default();
        let reason = text.lines().next().unwrap_or("");
        return Err(format!("refused: {status}: {reason}"));
    }
    let mut pending = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("the stream broke: {e}"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line = pending.split_to(end + 1);
            let text = String::from_utf8_lossy(&line[..end]).trim().to_owned();
            if text.is_empty() {
                continue;
            }
            let message = Message::Line {
                sidecar: sidecar.to_owned(),
                line: text,
            };
            if out.send(message).await.is_err() {
                return Ok(());
            }
        }
        if pending.remaining() > MAX_LINE {
            return Err(format!(
                "a line longer than {MAX_LINE} bytes: not a tap stream"
            ));
        }
    }
    Ok(())
}

async fn request(
    sidecar: &str,
    query: &str,
) -> Result<http::Response<hyper::body::Incoming>, String> {
    let tcp = TcpStream::connect(sidecar)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("cannot speak HTTP: {e}"))?;
    tokio::spawn(connection);
    let path = if query.is_empty() {
        "/tap".to_owned()
    } else {
        format!("/tap?{query}")
    };
    let request = http::Request::get(path)
        .header(http::header::HOST, sidecar)
        .header(
            http::header::USER_AGENT,
            concat!("weft/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| format!("bad request: {e}"))?;
    sender
        .send_request(request)
        .await
        .map_err(|e| format!("no answer: {e}"))
}

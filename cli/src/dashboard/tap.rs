//! `GET /api/tap?…`: the page's tap panel reads the sidecars' `GET /tap` streams through the
//! dashboard (a page cannot reach admin ports itself). The query is passed on as it is (the
//! filters of the tap contract: `direction`, `from`, `to`, `path`, `method`, `status`, `rate`);
//! every sidecar is tapped at once and their lines are merged, each event with a `sidecar`
//! field naming where it came from. A sidecar that refuses (`403`, `429`, or a sidecar without
//! tap) sends one `{"sidecar", "error"}` line. When the page goes away the body is dropped, the
//! channel closes and every upstream stream is dropped with it.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

use super::response::{Body, text};

/// Lines buffered for a slow page before the relay waits (and the sidecar drops and counts).
const BUFFERED_LINES: usize = 256;
/// The longest line passed on; longer ones are cut off (events are a few hundred bytes).
const MAX_LINE: usize = 16 * 1024;

pub fn relay(sidecars: &[String], query: &str) -> Response<Body> {
    if sidecars.is_empty() {
        return text(
            StatusCode::BAD_REQUEST,
            "tap reads the sidecars: start the dashboard with their admin addresses\n",
        );
    }
    let (lines, body) = mpsc::channel(BUFFERED_LINES);
    for sidecar in sidecars {
        let (sidecar, lines) = (sidecar.clone(), lines.clone());
        let path = if query.is_empty() {
            "/tap".to_owned()
        } else {
            format!("/tap?{query}")
        };
        tokio::spawn(async move {
            let closed = lines.clone();
            tokio::select! {
                () = closed.closed() => {}
                () = stream(&sidecar, &path, &lines) => {}
            }
        });
    }
    let mut response = Response::new(BodyExt::boxed(ChannelBody(body)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

/// Copies one sidecar's tap stream into `lines`, tagging each object with `sidecar`.
async fn stream(sidecar: &str, path: &str, lines: &mpsc::Sender<Bytes>) {
    let error = |message: String| {
        let line = serde_json::json!({"sidecar": sidecar, "error": message}).to_string() + "\n";
        Bytes::from(line)
    };
    let response = async {
        let tcp = tokio::net::TcpStream::connect(sidecar)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let request = http::Request::get(path)
            .header("host", sidecar)
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())
    };
    let mut response = match response.await {
        Ok(response) => response,
        Err(e) => {
            let _ = lines.send(error(e)).await;
            return;
        }
    };
    if response.status() != StatusCode::OK {
        let status = response.status();
        let body = response.into_body().collect().await.map(|b| b.to_bytes());
        let reason = body.map(|b| String::from_utf8_lossy(&b).trim().to_owned());
        let _ = lines
            .send(error(format!(
                "status {status}: {}",
                reason.unwrap_or_default()
            )))
            .await;
        return;
    }
    let mut pending: Vec<u8> = Vec::new();
    while let Some(Ok(frame)) = response.body_mut().frame().await {
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            if let Some(tagged) = tag(&line, sidecar)
                && lines.send(tagged).await.is_err()
            {
                return;
            }
        }
        if pending.len() > MAX_LINE {
            pending.clear();
        }
    }
    let _ = lines.send(error("the tap stream ended".to_owned())).await;
}

/// One JSON object line with `"sidecar": name` added; `None` for blank or broken lines.
fn tag(line: &[u8], sidecar: &str) -> Option<Bytes> {
    let mut object: serde_json::Value = serde_json::from_slice(line).ok()?;
    object
        .as_object_mut()?
        .insert("sidecar".into(), sidecar.into());
    Some(Bytes::from(object.to_string() + "\n"))
}

/// A response body fed by a channel of lines.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|line| line.map(|l| Ok(Frame::data(l))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_tagged_with_their_sidecar() {
        let tagged = tag(b"{\"status\":200}\n", "127.0.0.1:15000").unwrap();
        let value: serde_json::Value = serde_json::from_slice(&tagged).unwrap();
        assert_eq!(value["sidecar"], "127.0.0.1:15000");
        assert_eq!(value["status"], 200);
        assert!(tag(b"\n", "x").is_none());
        assert!(tag(b"[1]\n", "x").is_none());
    }
}

//! One completed request as a tap session sees it, and what of the request it may see.
//!
//! Tap is for looking at live traffic, not for collecting it: an event carries the request's
//! metadata and never its body, its query string (query strings carry tokens and personal data)
//! or a header value outside [`HEADER_ALLOW_LIST`]. Events are built only while someone taps.

use http::{HeaderMap, Request};
use serde::Serialize;

use crate::telemetry::metrics::connections::Direction;

/// The request headers whose values an event shows: they describe the client and the payload's
/// kind, never who the caller is or what they may do (`authorization`, `cookie` and the like
/// stay out, and so does every header not named here).
pub const HEADER_ALLOW_LIST: [&str; 5] = [
    "user-agent",
    "content-type",
    "accept",
    "grpc-timeout",
    "grpc-encoding",
];

/// A header value shown longer than this is cut here.
const MAX_HEADER_VALUE: usize = 256;

/// The tap event: field names are the `GET /tap` contract (docs/visibility.md).
#[derive(Debug, Clone)]
pub struct TapEvent {
    /// RFC 3339, UTC, milliseconds: when the request arrived.
    pub time: String,
    pub direction: Direction,
    pub method: String,
    pub authority: Option<String>,
    /// Without its query string.
    pub path: String,
    /// `None`: no response head was sent (the caller went away first).
    pub status: Option<u16>,
    pub grpc_status: Option<u32>,
    /// Until the response head, as `weft_request_duration_seconds` measures.
    pub latency_ms: f64,
    pub source: Option<String>,
    pub destination: Option<String>,
    /// `name.namespace` of the destination service.
    pub service: Option<String>,
    pub route: String,
    /// Attempts the client half made (1 without retries, and on the inbound side).
    pub attempts: u32,
    pub weft_error: Option<String>,
    pub trace_id: Option<String>,
    /// The allow-listed request headers present, by lowercase name.
    pub headers: Vec<(&'static str, String)>,
}

/// What is read from a request for its event, only while someone taps.
#[derive(Debug, Default)]
pub struct TapRequest {
    pub headers: Vec<(&'static str, String)>,
    /// From a `traceparent` header, when tracing is off (otherwise the hop's trace id is used).
    pub trace_id: Option<String>,
}

impl TapRequest {
    pub fn of<B>(req: &Request<B>) -> Self {
        Self {
            headers: allowed_headers(req.headers()),
            trace_id: req
                .headers()
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .and_then(trace_id_of),
        }
    }
}

fn allowed_headers(headers: &HeaderMap) -> Vec<(&'static str, String)> {
    HEADER_ALLOW_LIST
        .iter()
        .filter_map(|&name| {
            let value = headers.get(name)?;
            let text = String::from_utf8_lossy(value.as_bytes());
            let cut = text
                .char_indices()
                .nth(MAX_HEADER_VALUE)
                .map_or(text.len(), |(i, _)| i);
            Some((name, text[..cut].to_owned()))
        })
        .collect()
}

/// The trace id of a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), unless it is all zeros.
fn trace_id_of(traceparent: &str) -> Option<String> {
    let mut parts = traceparent.trim().split('-');
    let (_version, id) = (parts.next()?, parts.next()?);
    let valid = id.len() == 32
        && id.bytes().all(|b| b.is_ascii_hexdigit())
        && id.bytes().any(|b| b != b'0');
    valid.then(|| id.to_ascii_lowercase())
}

impl TapEvent {
    /// The event as one line of the `GET /tap` stream, newline included.
    pub fn write_line(&self, out: &mut Vec<u8>) {
        // Serializing a struct of strings and numbers cannot fail.
        let _ = serde_json::to_writer(&mut *out, &Wire(self));
        out.push(b'\n');
    }
}

/// [`TapEvent`] with its headers as a JSON object.
struct Wire<'a>(&'a TapEvent);

impl Serialize for Wire<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let e = self.0;
        let mut out = s.serialize_struct("TapEvent", 16)?;
        out.serialize_field("time", &e.time)?;
        out.serialize_field("direction", e.direction.label())?;
        out.serialize_field("method", &e.method)?;
        out.serialize_field("authority", &e.authority)?;
        out.serialize_field("path", &e.path)?;
        out.serialize_field("status", &e.status)?;
        out.serialize_field("grpc_status", &e.grpc_status)?;
        out.serialize_field("latency_ms", &e.latency_ms)?;
        out.serialize_field("source", &e.source)?;
        out.serialize_field("destination", &e.destination)?;
        out.serialize_field("service", &e.service)?;
        out.serialize_field("route", &e.route)?;
        out.serialize_field("attempts", &e.attempts)?;
        out.serialize_field("weft_error", &e.weft_error)?;
        out.serialize_field("trace_id", &e.trace_id)?;
        let headers: serde_json::Map<String, serde_json::Value> = e
            .headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone().into()))
            .collect();
        out.serialize_field("headers", &headers)?;
        out.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allow_listed_headers_are_kept() {
        let req = Request::get("/x")
            .header("user-agent", "curl/8.0")
            .header("authorization", "Bearer secret")
            .header("cookie", "session=secret")
            .header("content-type", "text/plain")
            .header(
                "traceparent",
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            )
            .body(())
            .unwrap();
        let tapped = TapRequest::of(&req);
        assert_eq!(
            tapped.headers,
            [
                ("user-agent", "curl/8.0".to_owned()),
                ("content-type", "text/plain".to_owned())
            ]
        );
        assert_eq!(
            tapped.trace_id.as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
    }

    #[test]
    fn bad_traceparents_give_no_trace_id() {
        for bad in [
            "",
            "00",
            "00-xyz-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        ] {
            assert_eq!(trace_id_of(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn long_values_are_cut() {
        let long = "é".repeat(1000);
        let req = Request::get("/")
            .header("user-agent", &long)
            .body(())
            .unwrap();
        let tapped = TapRequest::of(&req);
        assert_eq!(tapped.headers[0].1.chars().count(), MAX_HEADER_VALUE);
    }
}

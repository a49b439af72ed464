//! One request's telemetry, from its arrival to its response's last byte.
//!
//! [`ConnectionTelemetry::begin`] runs when a request arrives: it takes the time, makes the
//! sampling decision and writes this hop's trace context into the request. The handler then
//! fills in what it learns (route, service, attempts). [`ConnectionTelemetry::respond`] runs at
//! the response headers and wraps the body; when the body ends (its gRPC status may be in the
//! trailers) or is dropped, [`Observed`] counts the request, ends the span and writes the access
//! log line, and publishes its tap event while someone taps. A request costs one extra
//! allocation (the wrapper) when it is not traced, and one relaxed atomic load for tap while
//! nobody taps.

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body::{Frame, SizeHint};
use opentelemetry::KeyValue;
use opentelemetry::trace::SpanKind;

use super::access_log::Line;
use super::attempts::AttemptLog;
use super::request_metrics::{AnsweredBy, RequestLabels, SeriesCache};
use super::sampling::Hop;
use super::span::{SpanFacts, span_data};
use super::tap::{TapEvent, TapRequest};
use super::trace_context::hex;
use super::{Label, Telemetry};
use crate::http::BoxError;
use crate::http::headers;
use crate::policy::DEFAULT_ROUTE;
use crate::resilience::retry;

pub use crate::telemetry::metrics::connections::Direction;

/// The telemetry of one connection's requests: the proxy's, plus the series its requests use.
pub struct ConnectionTelemetry {
    telemetry: Arc<Telemetry>,
    direction: Direction,
    series: SeriesCache,
}

/// One request in flight.
pub struct Exchange {
    started: Instant,
    start_time: SystemTime,
    grpc: bool,
    /// Set when tracing is on: this hop's span, recorded if sampled.
    hop: Option<Hop>,
    /// What spans, access logs and tap say of the request; kept only when one of them will.
    details: Option<Box<Details>>,
    /// The ServicePolicy route or the Gateway API `<route>/<rule>`; `None`: [`DEFAULT_ROUTE`].
    pub route: Option<Label>,
    pub service: Option<Label>,
    /// The Gateway API backend (`<name>.<namespace>`) a route sent the request to; `None`
    /// without routes.
    pub backend: Option<Label>,
    pub attempts: AttemptLog,
    answer: Option<Answer>,
    /// Until the request is recorded: a request dropped before its response headers (the
    /// caller went away) is recorded when it is dropped.
    connection: Option<Arc<ConnectionTelemetry>>,
}

struct Details {
    method: Method,
    authority: String,
    path: String,
    version: Version,
    request_bytes: Option<u64>,
    /// Set when someone tapped as the request arrived.
    tap: Option<TapRequest>,
}

/// What the response headers said.
struct Answer {
    /// `None`: no response headers were sent (the caller went away).
    status: Option<StatusCode>,
    grpc_status: Option<u32>,
    weft_error: Option<HeaderValue>,
    destination_identity: Option<HeaderValue>,
    headers_after: Duration,
}

impl ConnectionTelemetry {
    pub fn new(
        telemetry: &Arc<Telemetry>,
        direction: Direction,
        source_identity: String,
    ) -> Arc<Self> {
        Arc::new(Self {
            series: SeriesCache::new(&telemetry.families, direction.label(), source_identity),
            telemetry: telemetry.clone(),
            direction,
        })
    }

    /// The caller's identity (`unauthenticated` for plaintext) on the inbound side, this
    /// proxy's on the outbound side.
    pub fn source_identity(&self) -> &str {
        self.series.source_identity()
    }

    /// A request has arrived: the clock starts, and with tracing on, the request now carries
    /// this hop's span as its parent.
    pub fn begin<B>(self: &Arc<Self>, req: &mut Request<B>) -> Exchange {
        let hop = self.telemetry.tracing.as_ref().map(|tracing| {
            let hop = tracing.sampler.hop(req.headers());
            hop.inject(req.headers_mut());
            hop
        });
        // While nobody taps, this relaxed load is all tap costs a request.
        let tapped = self.telemetry.tap.tapping();
        let wants_details = tapped
            || hop.as_ref().is_some_and(|h| h.sampled)
            || self.telemetry.access_log.is_some();
        let details = wants_details.then(|| Box::new(Details::of(req, tapped)));
        Exchange {
            started: Instant::now(),
            start_time: SystemTime::now(),
            grpc: headers::is_grpc(req),
            attempts: AttemptLog::new(hop.as_ref().is_some_and(|h| h.sampled)),
            hop,
            details,
            route: None,
            service: None,
            backend: None,
            answer: None,
            connection: Some(self.clone()),
        }
    }

    /// The response headers are ready: note what they say and follow the body to its end.
    pub fn respond<B: http_body::Body>(
        &self,
        mut exchange: Exchange,
        response: Response<B>,
    ) -> Response<Observed<B>> {
        let headers = response.headers();
        // One pass over the answer's few names, rather than a lookup (hash and probe) for each.
        let (mut weft_error, mut destination_identity) = (None, None);
        let outbound = matches!(self.direction, Direction::Outbound);
        for (name, value) in headers {
            if *name == headers::ERROR {
                weft_error.get_or_insert_with(|| value.clone());
            } else if outbound && *name == headers::SERVER_IDENTITY {
                destination_identity.get_or_insert_with(|| value.clone());
            }
        }
        exchange.answer = Some(Answer {
            status: Some(response.status()),
            grpc_status: exchange.grpc.then(|| retry::grpc_status(headers)).flatten(),
            weft_error,
            destination_identity,
            headers_after: exchange.started.elapsed(),
        });
        response.map(|body| Observed {
            body,
            exchange: Some(exchange),
            bytes: 0,
        })
    }

    /// The request is over: count it, end its span, log it. Without an answer, its caller went
    /// away before the response headers.
    fn finish(
        &self,
        exchange: &mut Exchange,
        bytes: u64,
        trailers: Option<&HeaderMap>,
        complete: bool,
    ) {
        let answer = exchange.answer.take().unwrap_or_else(|| Answer {
            status: None,
            grpc_status: None,
            weft_error: None,
            destination_identity: None,
            headers_after: exchange.started.elapsed(),
        });
        let grpc_status = answer.grpc_status.or_else(|| {
            exchange
                .grpc
                .then(|| trailers.and_then(retry::grpc_status))
                .flatten()
        });
        let destination_identity = match self.direction {
            Direction::Inbound => self.telemetry.identity.as_str(),
            Direction::Outbound => answer
                .destination_identity
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
        };
        let weft_error = answer.weft_error.as_ref().and_then(|v| v.to_str().ok());
        let labels = RequestLabels {
            destination_identity,
            destination_service: exchange.service.as_deref().unwrap_or_default(),
            route: exchange.route.as_deref().unwrap_or(DEFAULT_ROUTE),
            backend: exchange.backend.as_deref().unwrap_or_default(),
            status: answer.status,
            grpc_status,
            answered_by: match (answer.status, weft_error) {
                (None, _) => AnsweredBy::Nobody,
                (Some(_), Some(_)) => AnsweredBy::Weft,
                (Some(_), None) => AnsweredBy::App,
            },
        };
        self.series.record(&labels, answer.headers_after);
        let Some(details) = exchange.details.as_deref() else {
            return;
        };
        let ended = Instant::now();
        let record = Finished {
            labels: &labels,
            grpc: exchange.grpc,
            source_identity: self.series.source_identity(),
            weft_error,
            details,
            duration: ended - exchange.started,
            headers_after: answer.headers_after,
            bytes,
            complete,
        };
        if let (Some(tracing), Some(hop)) = (&self.telemetry.tracing, &exchange.hop)
            && hop.sampled
        {
            let facts = record.span_facts(
                self.direction,
                exchange.start_time,
                exchange.attempts.made(),
                exchange.attempts.take_events(),
            );
            tracing.queue.push(span_data(hop, facts, &tracing.scope));
        }
        let attempts = exchange.attempts.made().max(1);
        if let Some(log) = &self.telemetry.access_log {
            log.log(record.line(
                self.direction,
                exchange.start_time,
                exchange.hop.as_ref(),
                attempts,
            ));
        }
        if let Some(tap) = &details.tap {
            let trace_id = match &exchange.hop {
                Some(hop) => Some(hex(&hop.trace_id)),
                None => tap.trace_id.clone(),
            };
            self.telemetry.tap.publish(record.tap_event(
                self.direction,
                exchange.start_time,
                attempts,
                trace_id,
                tap,
            ));
        }
    }
}

impl Exchange {
    /// Whether the request is gRPC (by its content type).
    pub fn grpc(&self) -> bool {
        self.grpc
    }
}

impl Details {
    fn of<B>(req: &Request<B>, tapped: bool) -> Self {
        let authority = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                req.headers()
                    .get(http::header::HOST)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        Self {
            method: req.method().clone(),
            authority,
            path: req.uri().path().to_owned(),
            version: req.version(),
            request_bytes: req
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok()),
            tap: tapped.then(|| TapRequest::of(req)),
        }
    }

    /// `/pkg.Service/Method` as its two parts.
    fn grpc_method(&self) -> Option<(&str, &str)> {
        let (service, method) = self.path.strip_prefix('/')?.split_once('/')?;
        (!service.is_empty() && !method.is_empty() && !method.contains('/'))
            .then_some((service, method))
    }

    fn protocol(&self) -> &'static str {
        match self.version {
            Version::HTTP_2 => "2",
            Version::HTTP_10 => "1.0",
            _ => "1.1",
        }
    }
}

/// A finished request, as spans and logs describe it.
struct Finished<'a> {
    labels: &'a RequestLabels<'a>,
    grpc: bool,
    source_identity: &'a str,
    weft_error: Option<&'a str>,
    details: &'a Details,
    duration: Duration,
    headers_after: Duration,
    bytes: u64,
    complete: bool,
}

impl Finished<'_> {
    /// The OpenTelemetry semantic conventions for HTTP and RPC spans, plus weft's own facts.
    fn span_facts(
        &self,
        direction: Direction,
        start: SystemTime,
        attempts: u32,
        events: Vec<opentelemetry::trace::Event>,
    ) -> SpanFacts {
        let d = self.details;
        let labels = self.labels;
        let mut attributes = vec![
            KeyValue::new("http.request.method", d.method.as_str().to_owned()),
            KeyValue::new("url.path", d.path.clone()),
            KeyValue::new("network.protocol.name", "http"),
            KeyValue::new("network.protocol.version", d.protocol()),
            KeyValue::new("weft.direction", direction.label()),
            KeyValue::new("weft.route", labels.route.to_owned()),
            KeyValue::new("weft.client.identity", self.source_identity.to_owned()),
            KeyValue::new(
                "weft.server.identity",
                labels.destination_identity.to_owned(),
            ),
            KeyValue::new(
                "weft.destination.service",
                labels.destination_service.to_owned(),
            ),
            KeyValue::new("weft.answered_by", labels.answered_by.label()),
        ];
        if !labels.backend.is_empty() {
            attributes.push(KeyValue::new("weft.backend", labels.backend.to_owned()));
        }
        if let Some(status) = labels.status {
            attributes.push(KeyValue::new(
                "http.response.status_code",
                i64::from(status.as_u16()),
            ));
        }
        let (host, port) = split_authority(&d.authority);
        if !host.is_empty() {
            attributes.push(KeyValue::new("server.address", host.to_owned()));
        }
        if let Some(port) = port {
            attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
        if direction == Direction::Outbound {
            attributes.push(KeyValue::new("weft.attempts", i64::from(attempts.max(1))));
        }
        if let Some(error) = self.weft_error {
            attributes.push(KeyValue::new("weft.error", error.to_owned()));
        }
        let name: Cow<'static, str> = match (self.grpc, d.grpc_method()) {
            (true, Some((service, method))) => {
                attributes.push(KeyValue::new("rpc.system", "grpc"));
                attributes.push(KeyValue::new("rpc.service", service.to_owned()));
                attributes.push(KeyValue::new("rpc.method", method.to_owned()));
                if let Some(code) = labels.grpc_status {
                    attributes.push(KeyValue::new("rpc.grpc.status_code", i64::from(code)));
                }
                format!("{service}/{method}").into()
            }
            _ if labels.route == DEFAULT_ROUTE => d.method.as_str().to_owned().into(),
            _ => format!("{} {}", d.method, labels.route).into(),
        };
        let error = self.error(direction);
        if let Some(kind) = &error {
            attributes.push(KeyValue::new("error.type", kind.clone()));
        }
        SpanFacts {
            kind: match direction {
                Direction::Inbound => SpanKind::Server,
                Direction::Outbound => SpanKind::Client,
            },
            name,
            start,
            end: start + self.duration,
            attributes,
            error,
            events,
        }
    }

    /// The span's error, by the conventions: a client span fails on 4xx and 5xx, a server span
    /// on 5xx; gRPC by its status; and any answer weft produced, named by its `weft-error`.
    fn error(&self, direction: Direction) -> Option<String> {
        if let Some(reason) = self.weft_error {
            return Some(reason.to_owned());
        }
        let labels = self.labels;
        if let Some(code) = labels.grpc_status {
            // Server errors by the RPC conventions: UNKNOWN, DEADLINE_EXCEEDED,
            // UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS.
            let server_error = matches!(code, 2 | 4 | 12 | 13 | 14 | 15);
            let failed = match direction {
                Direction::Outbound => code != 0,
                Direction::Inbound => server_error,
            };
            return failed.then(|| retry::grpc_name(code).to_owned());
        }
        let Some(status) = labels.status else {
            return Some("cancelled".to_owned());
        };
        let failed = match direction {
            Direction::Outbound => status.as_u16() >= 400,
            Direction::Inbound => status.as_u16() >= 500,
        };
        failed.then(|| status.as_str().to_owned())
    }

    /// The request as a tap session sees it (see [`crate::telemetry::tap::event`]).
    fn tap_event(
        &self,
        direction: Direction,
        start: SystemTime,
        attempts: u32,
        trace_id: Option<String>,
        tap: &TapRequest,
    ) -> TapEvent {
        let d = self.details;
        let labels = self.labels;
        let known = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        TapEvent {
            time: humantime::format_rfc3339_millis(start).to_string(),
            direction,
            method: d.method.as_str().to_owned(),
            authority: known(&d.authority),
            path: d.path.clone(),
            status: labels.status.map(|s| s.as_u16()),
            grpc_status: labels.grpc_status,
            latency_ms: self.headers_after.as_secs_f64() * 1000.0,
            source: known(self.source_identity),
            destination: known(labels.destination_identity),
            service: known(labels.destination_service),
            route: labels.route.to_owned(),
            attempts,
            weft_error: self.weft_error.map(str::to_owned),
            trace_id,
            headers: tap.headers.clone(),
        }
    }

    fn line(
        &self,
        direction: Direction,
        start: SystemTime,
        hop: Option<&Hop>,
        attempts: u32,
    ) -> Line {
        let d = self.details;
        let labels = self.labels;
        Line {
            time: humantime::format_rfc3339_millis(start).to_string(),
            direction: direction.label(),
            trace_id: hop.map(|h| hex(&h.trace_id)),
            span_id: hop.filter(|h| h.sampled).map(|h| hex(&h.span_id)),
            source_identity: self.source_identity.to_owned(),
            destination_identity: labels.destination_identity.to_owned(),
            destination_service: labels.destination_service.to_owned(),
            route: labels.route.to_owned(),
            backend: labels.backend.to_owned(),
            method: d.method.as_str().to_owned(),
            authority: d.authority.clone(),
            path: d.path.clone(),
            protocol: match d.version {
                Version::HTTP_2 => "HTTP/2",
                Version::HTTP_10 => "HTTP/1.0",
                _ => "HTTP/1.1",
            },
            status: labels.status.map_or(0, |s| s.as_u16()),
            grpc_status: labels.grpc_status,
            weft_error: self.weft_error.map(str::to_owned),
            answered_by: labels.answered_by.label(),
            duration_seconds: self.duration.as_secs_f64(),
            response_headers_seconds: self.headers_after.as_secs_f64(),
            attempts,
            request_bytes: d.request_bytes,
            response_bytes: self.bytes,
            complete: self.complete,
        }
    }
}

/// `host:port`, `[v6]:port`, or a host alone.
fn split_authority(authority: &str) -> (&str, Option<u16>) {
    if let Some(rest) = authority.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return (authority, None);
        };
        return (host, after.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => match port.parse() {
            Ok(port) => (host, Some(port)),
            Err(_) => (authority, None),
        },
        None => (authority, None),
    }
}

/// A response body followed to its end for the request's telemetry.
#[derive(Debug)]
pub struct Observed<B: http_body::Body> {
    body: B,
    exchange: Option<Exchange>,
    bytes: u64,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ConnectionTelemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionTelemetry")
            .field("direction", &self.direction)
            .finish_non_exhaustive()
    }
}

impl<B: http_body::Body> Observed<B> {
    fn finish(&mut self, trailers: Option<&HeaderMap>, complete: bool) {
        if let Some(mut exchange) = self.exchange.take()
            && let Some(connection) = exchange.connection.take()
        {
            connection.finish(&mut exchange, self.bytes, trailers, complete);
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            connection.finish(self, 0, None, false);
        }
    }
}

impl<B> http_body::Body for Observed<B>
where
    B: http_body::Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                } else if let Some(trailers) = frame.trailers_ref() {
                    self.finish(Some(trailers), true);
                }
            }
            Poll::Ready(None) => self.finish(None, true),
            Poll::Ready(Some(Err(_))) => self.finish(None, false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl<B: http_body::Body> Drop for Observed<B> {
    fn drop(&mut self) {
        // Ended without its last frame read: the caller went away, or the body was empty and
        // never polled.
        let complete = self.body.is_end_stream();
        self.finish(None, complete);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_authorities() {
        assert_eq!(
            split_authority("hello.demo:8080"),
            ("hello.demo", Some(8080))
        );
        assert_eq!(split_authority("hello"), ("hello", None));
        assert_eq!(split_authority("[::1]:80"), ("::1", Some(80)));
        assert_eq!(split_authority("[::1]"), ("::1", None));
    }
}

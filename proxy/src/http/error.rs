//! The one place that turns a failure to forward into what the caller sees and what is counted.
//!
//! Every error the proxy produces on the request path is a [`ProxyError`]; it decides the HTTP
//! status (or the gRPC status for gRPC callers), the `weft-error` header and the metric label,
//! so the same failure always looks the same wherever it happened.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};

use crate::http::body::caller::BodyFailure;
use crate::http::headers;
use crate::policy::server::Abort;
use crate::telemetry::Label;
use crate::tls::ConnectError;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Connecting to the peer proxy failed (TCP, timeout, or a refused TLS handshake).
    #[error(transparent)]
    PeerConnect(#[from] ConnectError),
    #[error("{detail} (the last connect to {peer} failed; next one in {retry_in:?})")]
    PeerDown {
        /// The reason of the connect failure.
        reason: &'static str,
        peer: String,
        detail: String,
        retry_in: Duration,
    },
    #[error("HTTP/2 with the peer proxy at {addr} failed: {source}")]
    PeerHttp {
        addr: SocketAddr,
        source: crate::http::BoxError,
    },
    #[error("the answer of the peer proxy at {addr} broke off: {detail}")]
    PeerBody { addr: SocketAddr, detail: String },
    #[error("cannot connect to the app at {addr}: {detail}")]
    AppConnect { addr: SocketAddr, detail: String },
    #[error("the app at {addr} failed the request: {detail}")]
    AppHttp { addr: SocketAddr, detail: String },
    #[error("no endpoint is known for {0}")]
    NoEndpoints(Label),
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The caller's request body failed on its way in (see [`crate::http::body::caller`]).
    #[error("{0}")]
    RequestBody(BodyFailure),
    #[error("{destination} did not answer within the request timeout of {after:?}")]
    Timeout { destination: Label, after: Duration },
    #[error("{destination} did not answer within the per-try timeout of {after:?}")]
    PerTryTimeout { destination: Label, after: Duration },
    #[error("every endpoint of {0} is ejected by its circuit breaker")]
    CircuitOpen(Label),
    #[error("{destination} has too many requests in flight ({why})")]
    Overloaded {
        destination: Label,
        why: &'static str,
    },
    #[error(
        "{caller} is not allowed to call {service} (route {route}) by its ServicePolicy {version}"
    )]
    Unauthorized {
        caller: String,
        service: String,
        route: String,
        version: String,
    },
    #[error("{caller} is over the {limit} rate limit of {service}; retry in {retry_after:?}")]
    RateLimited {
        caller: String,
        service: String,
        limit: &'static str,
        retry_after: Duration,
    },
    #[error("a fault drill of {version} aborted this request")]
    FaultInjected { version: String, abort: Abort },
    /// The destination has Gateway API routes and none matches the request.
    #[error("no rule of the routes of {service} ({version}) matches the request")]
    NoRoute { service: Label, version: String },
    /// The matched rule has no backend to send to (none listed, or every weight 0).
    #[error("rule {rule} has no backend with a weight above 0")]
    NoBackend { rule: Label },
    /// The backend the weights chose is not a service discovery knows.
    #[error("backend {backend} of rule {rule} is not a known service")]
    BackendNotFound { backend: String, rule: Label },
    /// The backend is a Service in another namespace that no ReferenceGrant there allows.
    #[error(
        "backend {backend} of rule {rule} is in another namespace that no ReferenceGrant opens"
    )]
    BackendNotPermitted { backend: String, rule: Label },
}

impl ProxyError {
    /// A stable label for metrics and the `weft-error` header.
    pub fn reason(&self) -> &'static str {
        match self {
            ProxyError::PeerConnect(e) => e.reason(),
            ProxyError::PeerDown { reason, .. } => reason,
            ProxyError::PeerHttp { .. } | ProxyError::PeerBody { .. } => "peer_http_error",
            ProxyError::AppConnect { .. } => "app_unreachable",
            ProxyError::AppHttp { .. } => "app_http_error",
            ProxyError::NoEndpoints(_) => "no_endpoints",
            ProxyError::BadRequest(_) => "bad_request",
            ProxyError::RequestBody(failure) => failure.reason(),
            ProxyError::Timeout { .. } | ProxyError::PerTryTimeout { .. } => "timeout",
            ProxyError::CircuitOpen(_) => "circuit_open",
            ProxyError::Overloaded { .. } => "overloaded",
            ProxyError::Unauthorized { .. } => "unauthorized",
            ProxyError::RateLimited { .. } => "rate_limited",
            ProxyError::FaultInjected { .. } => "fault_injected",
            ProxyError::NoRoute { .. } => "no_route",
            ProxyError::NoBackend { .. } => "no_backend",
            ProxyError::BackendNotFound { .. } => "backend_not_found",
            ProxyError::BackendNotPermitted { .. } => "backend_not_permitted",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            // This proxy is out of resources (or has no certificate yet): it is unavailable.
            _ if self.is_local_connect() => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::PeerConnect(ConnectError::Timeout { .. })
            | ProxyError::Timeout { .. }
            | ProxyError::PerTryTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::PeerConnect(ConnectError::NoIdentity)
            | ProxyError::NoEndpoints(_)
            | ProxyError::CircuitOpen(_)
            | ProxyError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::BadRequest(_) | ProxyError::RequestBody(_) => StatusCode::BAD_REQUEST,
            ProxyError::Unauthorized { .. } => StatusCode::FORBIDDEN,
            ProxyError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::NoRoute { .. } => StatusCode::NOT_FOUND,
            // The spec's answer for a rule without a usable backend.
            ProxyError::NoBackend { .. }
            | ProxyError::BackendNotFound { .. }
            | ProxyError::BackendNotPermitted { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            ProxyError::FaultInjected {
                abort: Abort::Http(status),
                ..
            } => *status,
            _ => StatusCode::BAD_GATEWAY,
        }
    }

    /// Whether this side failed, not the endpoint: the app's own request (its body broke), or
    /// this proxy's connect (no certificate yet, out of descriptors, too busy: see
    /// [`ConnectError::is_local`]). A circuit breaker must not count it against the endpoint.
    pub fn is_local(&self) -> bool {
        matches!(self, ProxyError::RequestBody(_)) || self.is_local_connect()
    }

    fn is_local_connect(&self) -> bool {
        match self {
            ProxyError::PeerConnect(e) => e.is_local(),
            ProxyError::PeerDown { reason, .. } => crate::tls::is_local_reason(reason),
            _ => false,
        }
    }

    /// The gRPC status code for gRPC callers. UNAVAILABLE (14) tells gRPC clients the call may
    /// be retried; DEADLINE_EXCEEDED (4) that it ran out of time.
    fn grpc_code(&self) -> u32 {
        match self {
            ProxyError::Unauthorized { .. } => 7,
            ProxyError::RateLimited { .. } => 8,
            ProxyError::FaultInjected {
                abort: Abort::Grpc(code),
                ..
            } => *code,
            _ => match self.status() {
                StatusCode::BAD_REQUEST | StatusCode::INTERNAL_SERVER_ERROR => 13,
                StatusCode::NOT_FOUND => 12,
                StatusCode::GATEWAY_TIMEOUT => 4,
                _ => 14,
            },
        }
    }

    /// How long the caller should wait before trying again, when the proxy knows.
    fn retry_after(&self) -> Option<Duration> {
        match self {
            ProxyError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// The response for a caller whose request failed with this error (in any body type, so
    /// the bodies can use this module).
    pub fn response<B: From<Bytes>>(&self, grpc: bool) -> Response<B> {
        let reason = HeaderValue::from_static(self.reason());
        let message = self.to_string();
        let retry_after = self.retry_after();
        if grpc {
            // gRPC clients read statuses from trailers; a trailers-only response carries them in
            // the headers.
            let mut response = Response::builder()
                .status(StatusCode::OK)
                .header(http::header::CONTENT_TYPE, "application/grpc")
                .header("grpc-status", self.grpc_code())
                .header("grpc-message", percent_encode(&message))
                .header(headers::ERROR, reason);
            if let Some(wait) = retry_after {
                response =
                    response.header("grpc-retry-pushback-ms", wait.as_millis().max(1) as u64);
            }
            return response
                .body(B::from(Bytes::new()))
                .expect("the response parts are valid");
        }
        let mut response = Response::builder()
            .status(self.status())
            .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .header(headers::ERROR, reason);
        if let Some(wait) = retry_after {
            // Whole seconds, rounded up: `Retry-After: 0` would invite an immediate retry.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response = response.header(http::header::RETRY_AFTER, seconds.max(1));
        }
        response
            .body(B::from(Bytes::from(format!("weft: {message}\n"))))
            .expect("the response parts are valid")
    }
}

/// `grpc-message` is percent-encoded (gRPC over HTTP/2 spec).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x20..0x7f).contains(&byte) && byte != b'%' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// An error and its causes on one line: hyper's top-level messages alone are vague.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::body::Body;

    #[test]
    fn the_same_failure_maps_to_http_and_grpc() {
        let err = ProxyError::NoEndpoints("hello.demo".into());
        let http: Response<Body> = err.response(false);
        assert_eq!(http.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(http.headers()["weft-error"], "no_endpoints");
        let grpc: Response<Body> = err.response(true);
        assert_eq!(grpc.status(), StatusCode::OK);
        assert_eq!(grpc.headers()["grpc-status"], "14");
        assert_eq!(
            grpc.headers()["grpc-message"],
            "no endpoint is known for hello.demo"
        );
        assert_eq!(percent_encode("100% ünïcode"), "100%25 %C3%BCn%C3%AFcode");
    }
}

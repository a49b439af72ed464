//! Retries: which outcomes of an attempt deserve another attempt, within a budget.
//!
//! The loop itself lives in [`crate::outbound::request`], where the other layers are; this
//! module holds its parts: the classification of an attempt's [`Outcome`], the retry
//! [`budget`], the server's [`pushback`], the replayable request body ([`Replay`]) and the
//! read-ahead of gRPC trailers ([`peek_grpc_status`]). The wait between attempts is a
//! [`crate::resilience::backoff`].
//!
//! What is retried (docs/resilience.md): conditions the app never saw (a failed connect
//! to the peer proxy, a refused HTTP/2 stream, a peer proxy that could not reach its app) for any
//! method; every other condition only for idempotent methods, unless the route acknowledges
//! otherwise (`nonIdempotent: true`, implied for gRPC routes).

pub mod budget;
mod peek;
pub mod pushback;
mod replay;

use http::{HeaderMap, Method, StatusCode};

pub use peek::{Peeked, peek_grpc_status};
pub use replay::{Replay, ReplayBody};

use crate::policy::{BreakerConfig, Conditions};

/// How an attempt ended, as far as retries and the breaker care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An answer (from the app, or a peer proxy speaking for it), with its gRPC status if known.
    Response {
        status: StatusCode,
        grpc: Option<u32>,
    },
    /// The peer proxy could not be reached, or it could not reach its app.
    ConnectFailure,
    /// The peer refused the stream before processing it.
    RefusedStream,
    /// The connection or stream broke before an answer.
    Reset,
    /// The per-try timeout expired.
    PerTryTimeout,
    /// This side failed, not the endpoint (the app's request body broke, this proxy is out of
    /// resources: [`crate::http::error::ProxyError::is_local`]): never retried, and the breaker
    /// hears nothing.
    LocalFailure,
    /// Anything else (a bad request, no endpoint): never retried.
    Fatal,
}

impl Outcome {
    /// The `reason` label of `weft_outbound_retries_total`.
    pub fn reason(&self) -> String {
        match self {
            Outcome::Response {
                grpc: Some(code), ..
            } if *code != 0 => format!("grpc_{}", grpc_name(*code)),
            Outcome::Response { status, .. } => format!("http_{}", status.as_u16()),
            Outcome::ConnectFailure => "connect_failure".to_owned(),
            Outcome::RefusedStream => "refused_stream".to_owned(),
            Outcome::Reset => "reset".to_owned(),
            Outcome::PerTryTimeout => "per_try_timeout".to_owned(),
            Outcome::LocalFailure => "local_failure".to_owned(),
            Outcome::Fatal => "fatal".to_owned(),
        }
    }

    /// Whether the app can have seen the request.
    fn unprocessed(&self) -> bool {
        matches!(self, Outcome::ConnectFailure | Outcome::RefusedStream)
    }

    /// Whether `on` asks for another attempt after this outcome; `any_method` when the method is
    /// idempotent or the route acknowledged retrying it.
    pub fn retryable(&self, on: &Conditions, any_method: bool) -> bool {
        let listed = match self {
            Outcome::Response { status, grpc } => match grpc {
                Some(code) if *code != 0 => on.grpc(*code) || on.status(*status),
                _ => on.status(*status),
            },
            Outcome::ConnectFailure => on.connect_failure,
            Outcome::RefusedStream => on.refused_stream,
            Outcome::Reset => on.reset,
            // A per-try timeout is always worth another try, as the policy's perTry promises.
            Outcome::PerTryTimeout => true,
            Outcome::LocalFailure | Outcome::Fatal => false,
        };
        listed && (any_method || self.unprocessed())
    }

    /// Whether the breaker counts this as the endpoint failing.
    pub fn breaker_failure(&self, config: &BreakerConfig) -> bool {
        match self {
            Outcome::Response { status, grpc } => {
                config.failure_on.status(*status)
                    || grpc.is_some_and(|code| config.failure_on.grpc(code))
            }
            Outcome::ConnectFailure | Outcome::Reset => true,
            Outcome::RefusedStream
            | Outcome::PerTryTimeout
            | Outcome::LocalFailure
            | Outcome::Fatal => false,
        }
    }
}

/// Methods that may be repeated without changing the result (RFC 9110, 9.2.2).
pub fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// `grpc-status` of a header or trailer block.
pub fn grpc_status(headers: &HeaderMap) -> Option<u32> {
    headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The documents' name of a gRPC code (`unavailable`), for labels.
pub fn grpc_name(code: u32) -> &'static str {
    weft_api::policy_defaults::GRPC_CODES
        .iter()
        .find(|(_, c)| *c == code)
        .map_or("other", |(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ClientPolicy;

    #[test]
    fn the_builtin_policy_retries_only_what_the_app_never_saw() {
        let policy = ClientPolicy::builtin();
        let req = http::Request::get("/").body(()).unwrap();
        let on = &policy.route(&req).retries.on;
        assert!(Outcome::ConnectFailure.retryable(on, false));
        assert!(Outcome::RefusedStream.retryable(on, false));
        let unavailable = Outcome::Response {
            status: StatusCode::SERVICE_UNAVAILABLE,
            grpc: None,
        };
        assert!(!unavailable.retryable(on, true));
        assert!(!Outcome::Reset.retryable(on, true));
        assert!(unavailable.breaker_failure(&policy.breaker));
        assert_eq!(unavailable.reason(), "http_503");
        let grpc = Outcome::Response {
            status: StatusCode::OK,
            grpc: Some(14),
        };
        assert_eq!(grpc.reason(), "grpc_unavailable");
        assert!(grpc.breaker_failure(&policy.breaker));
        assert!(!idempotent(&Method::POST) && idempotent(&Method::PUT));
    }
}

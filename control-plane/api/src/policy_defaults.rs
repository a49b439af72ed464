//! The built-in client policy: what a caller's proxy applies to a service without a
//! ServicePolicy, and what every field of a document falls back to.
//!
//! It lives in the contract crate because both sides need the same values: the control plane
//! merges documents over them (and `weft policy check --explain` shows them), and the proxy uses
//! them for destinations the control plane sent no policy for. The defaults retry only what the
//! app never saw (a failed connect, a refused stream, a peer proxy that could not reach its
//! app), once, within the budget; they set no timeout, because a mesh cannot know how long a
//! long poll or a streaming call may legitimately take.

use crate::policy::{
    CircuitBreaker, ClientPolicy, Limits, Retries, RetryBudget, RetryOn, RouteRules, Timeouts,
};

/// `version` of the built-in policy.
pub const BUILTIN_VERSION: &str = "builtin";

/// The most extra attempts a document may ask for.
pub const MAX_RETRY_LIMIT: u32 = 5;

/// gRPC codes by the names documents use (`grpc:unavailable`), lower-case with dashes.
pub const GRPC_CODES: [(&str, u32); 17] = [
    ("ok", 0),
    ("cancelled", 1),
    ("unknown", 2),
    ("invalid-argument", 3),
    ("deadline-exceeded", 4),
    ("not-found", 5),
    ("already-exists", 6),
    ("permission-denied", 7),
    ("resource-exhausted", 8),
    ("failed-precondition", 9),
    ("aborted", 10),
    ("out-of-range", 11),
    ("unimplemented", 12),
    ("internal", 13),
    ("unavailable", 14),
    ("data-loss", 15),
    ("unauthenticated", 16),
];

pub fn timeouts() -> Timeouts {
    Timeouts {
        request_ms: 0,
        per_try_ms: 0,
        idle_ms: 0,
    }
}

/// Conditions retried whatever a document says: the request never reached the app.
pub fn always_retried() -> RetryOn {
    RetryOn {
        statuses: Vec::new(),
        grpc_codes: Vec::new(),
        connect_failure: true,
        refused_stream: true,
        reset: false,
    }
}

pub fn retries() -> Retries {
    Retries {
        limit: 1,
        on: Some(always_retried()),
        backoff_base_ms: 25,
        backoff_max_ms: 250,
        max_buffered_body_bytes: 64 * 1024,
        pushback_max_ms: 5_000,
        non_idempotent: false,
    }
}

pub fn route_rules() -> RouteRules {
    RouteRules {
        timeouts: Some(timeouts()),
        retries: Some(retries()),
    }
}

/// Linkerd's and Finagle's budget: 20 % of recent requests plus 10 per second, over 10 s.
pub fn budget() -> RetryBudget {
    RetryBudget {
        ratio: 0.2,
        min_per_second: 10,
        window_ms: 10_000,
    }
}

/// Linkerd's failure accrual: 7 consecutive failures, 1 s growing to 60 s; Envoy's guard of
/// never ejecting more than half of a service.
pub fn circuit_breaker() -> CircuitBreaker {
    CircuitBreaker {
        consecutive_failures: 7,
        failure_statuses: (500..600).collect(),
        // unknown, internal, unavailable, data-loss
        failure_grpc_codes: vec![2, 13, 14, 15],
        penalty_base_ms: 1_000,
        penalty_max_ms: 60_000,
        penalty_jitter: 0.5,
        max_ejected_percent: 50,
    }
}

pub fn limits() -> Limits {
    Limits {
        max_concurrent: 1024,
        max_pending: 1024,
        queue_timeout_ms: 1_000,
    }
}

/// The policy of a destination without a ServicePolicy.
pub fn builtin() -> ClientPolicy {
    ClientPolicy {
        version: BUILTIN_VERSION.to_owned(),
        routes: Vec::new(),
        default_rules: Some(route_rules()),
        budget: Some(budget()),
        circuit_breaker: Some(circuit_breaker()),
        limits: Some(limits()),
        gateway_rules: Vec::new(),
    }
}

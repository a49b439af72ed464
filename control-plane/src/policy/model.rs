//! A checked `ServicePolicy`, as written: every optional field stays optional here, because
//! "not set" is what lets a value come from the next level (override ▸ defaults ▸ built-in).
//! [`super::effective`] does the merging; [`super::check`] builds these from the YAML tree.

use std::time::SystemTime;

use weft_api::policy::{Match, RetryOn};

use super::node::Pos;

/// A value with the place it was written, for problems found after the walk (contradictions
/// between levels) and for `--explain`.
#[derive(Debug, Clone, PartialEq)]
pub struct At<T> {
    pub value: T,
    pub at: Pos,
    /// The dotted field path, e.g. `spec.client.overrides[0].retries.limit`.
    pub path: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServicePolicy {
    pub name: String,
    pub namespace: String,
    /// Where `metadata.name` was written (for "defined twice").
    pub at: Pos,
    /// First 8 hex digits of the SHA-256 of the document's canonical form.
    pub hash: String,
    pub routes: Vec<Route>,
    pub client: Client,
    /// Checked now, enforced by the service's own sidecars later.
    pub server: Option<Server>,
}

impl ServicePolicy {
    /// `<name>.<namespace>`, the key shared with the MeshService it governs.
    pub fn key(&self) -> String {
        format!("{}.{}", self.name, self.namespace)
    }

    /// `<namespace>/<route>/<rule>` of a `gatewayRules` entry (`<route>/<rule>` names a route
    /// in the policy's own namespace).
    pub fn gateway_rule_key(&self, written: &str) -> String {
        match written.matches('/').count() {
            1 => format!("{}/{written}", self.namespace),
            _ => written.to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub name: At<String>,
    pub matches: Match,
    /// `match.methods` as written, for the idempotency check.
    pub methods: Vec<At<String>>,
}

impl Route {
    pub fn is_grpc(&self) -> bool {
        self.matches.grpc.is_some()
    }
}

/// `timeouts` and `retries`: what a route override may change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rules {
    pub request: Option<At<u64>>,
    pub per_try: Option<At<u64>>,
    pub idle: Option<At<u64>>,
    pub limit: Option<At<u32>>,
    pub on: Option<At<RetryOn>>,
    pub backoff_base: Option<At<u64>>,
    pub backoff_max: Option<At<u64>>,
    pub max_buffered_body: Option<At<u64>>,
    pub pushback_max: Option<At<u64>>,
    pub non_idempotent: Option<At<bool>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Client {
    pub defaults: Rules,
    pub budget: Budget,
    pub circuit_breaker: CircuitBreaker,
    pub limits: Limits,
    pub overrides: Vec<Override>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Budget {
    pub ratio: Option<f64>,
    pub min_per_second: Option<u32>,
    pub window_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CircuitBreaker {
    pub consecutive_failures: Option<u32>,
    /// (HTTP statuses, gRPC codes)
    pub failure_on: Option<(Vec<u32>, Vec<u32>)>,
    pub penalty_base_ms: Option<u64>,
    pub penalty_max_ms: Option<u64>,
    pub penalty_jitter: Option<f64>,
    pub max_ejected_percent: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    pub max_concurrent: Option<u32>,
    pub max_pending: Option<u32>,
    pub queue_timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub routes: Vec<At<String>>,
    /// Gateway API route rules as written: `<route>/<rule>` or `<namespace>/<route>/<rule>`
    /// (see [`ServicePolicy::gateway_rule_key`]).
    pub gateway_rules: Vec<At<String>>,
    pub rules: Rules,
}

/// The server half. Defaults: `mode: enforce`; `mtls` unset (the proxy's `--inbound-mode`
/// decides); no `authorization` section means every caller is allowed, and with one,
/// `default` is `deny`.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub mode: Mode,
    pub mtls: Option<Mtls>,
    pub ports: Vec<(u16, Mtls)>,
    pub authorization: Option<Authorization>,
    pub rate_limit: Option<RateLimit>,
    pub faults: Vec<Fault>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Audit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mtls {
    Strict,
    Permissive,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Authorization {
    pub default_allow: bool,
    pub unauthenticated: bool,
    pub allow: Vec<Allow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Allow {
    /// SPIFFE IDs, or prefixes ending in `/*`.
    pub from: Vec<String>,
    /// Route names; empty means every request.
    pub routes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    pub total: Option<Bucket>,
    pub per_identity: Option<Bucket>,
    pub overrides: Vec<(String, Bucket)>,
}

/// Requests per second, and how many may come at once (default: `rps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub rps: u32,
    pub burst: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub routes: Vec<String>,
    pub from: Vec<String>,
    pub abort: Option<(Abort, u32)>,
    /// (delay in ms, percent)
    pub delay: Option<(u64, u32)>,
    pub until: SystemTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abort {
    Status(u32),
    Grpc(u32),
}

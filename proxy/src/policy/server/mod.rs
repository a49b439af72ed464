//! The server half of this pod's services' ServicePolicies, as this proxy enforces it on
//! inbound traffic: who may call ([`authorization`]), how fast ([`rate_limit`]), which requests
//! a drill disturbs ([`fault`]), and whether plaintext is accepted on the port (`mtls`).
//!
//! The proxy learns it by watching its own address and port through discovery (see
//! `crate::discovery`, `WatchRequest.server`): one answer per port, live, with the last one kept
//! while the control plane is away. Without a server section everything is allowed, as without a
//! policy at all.

pub mod authorization;
pub mod fault;
pub mod identity_pattern;
pub mod rate_limit;

use std::sync::Arc;
use std::time::SystemTime;

use weft_api::discovery as discovery_proto;
use weft_api::policy as proto;

use crate::policy::RouteMatch;
use crate::telemetry::Label;
use crate::telemetry::metrics::Metrics;
use crate::transport::port_protocol::PortProtocol;
pub use authorization::Authorization;
pub use fault::{Abort, Fault, Injection};
pub use rate_limit::{Limited, RateLimiter};

/// How the inbound listener treats callers that are not mesh proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InboundMode {
    /// Accept them, marked unauthenticated (no `weft-client-identity`). The default, so a
    /// service keeps working while its callers are being meshed.
    Permissive,
    /// Require mutual TLS with a mesh certificate; refuse everything else.
    Strict,
}

/// `enforce` refuses; `audit` lets through, logs and counts what enforce would refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Enforce,
    Audit,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
        }
    }
}

#[derive(Debug)]
pub struct ServerPolicy {
    /// `<name>.<namespace>` of the service whose endpoint the port is, for messages.
    pub service: String,
    /// `<name>.<namespace>@<hash>`.
    pub version: String,
    pub mode: Mode,
    /// For this port; `None` leaves it to `--inbound-mode`.
    pub mtls: Option<InboundMode>,
    routes: Vec<(Label, RouteMatch)>,
    pub authorization: Option<Authorization>,
    pub rate_limiter: Option<Arc<RateLimiter>>,
    pub faults: Vec<Fault>,
}

impl ServerPolicy {
    /// Converts an answer; the rate limiter's buckets carry over from `previous` when the
    /// limits did not change (an unrelated edit must not hand every caller a fresh burst).
    pub fn from_proto(
        service: String,
        policy: proto::ServerPolicy,
        previous: Option<&ServerPolicy>,
        metrics: &Metrics,
    ) -> Self {
        let mode = match policy.mode() {
            proto::Mode::Enforce => Mode::Enforce,
            proto::Mode::Audit => Mode::Audit,
        };
        let mtls = match policy.mtls() {
            proto::Mtls::Unset => None,
            proto::Mtls::Strict => Some(InboundMode::Strict),
            proto::Mtls::Permissive => Some(InboundMode::Permissive),
        };
        let rate_limiter = policy.rate_limit.map(|limit| {
            let limits = rate_limit::Limits::from_proto(limit);
            match previous.and_then(|p| p.rate_limiter.as_ref()) {
                Some(kept) if kept.limits == limits => kept.clone(),
                _ => Arc::new(RateLimiter::new(
                    limits,
                    metrics.server_policy.rate_limit_buckets.clone(),
                )),
            }
        });
        Self {
            service,
            version: policy.version,
            mode,
            mtls,
            routes: policy
                .routes
                .into_iter()
                .map(|r| {
                    (
                        r.name.into(),
                        RouteMatch::from_proto(r.r#match.unwrap_or_default()),
                    )
                })
                .collect(),
            authorization: policy.authorization.map(Authorization::from_proto),
            rate_limiter,
            faults: policy.faults.into_iter().map(Fault::from_proto).collect(),
        }
    }

    /// The name of the first route `req` matches; `None`: [`DEFAULT_ROUTE`].
    pub fn route<B>(&self, req: &http::Request<B>) -> Option<&Label> {
        self.routes
            .iter()
            .find(|(_, m)| m.matches(req))
            .map(|(name, _)| name)
    }

    /// What the admin endpoint shows.
    pub fn describe(&self, now: SystemTime) -> serde_json::Value {
        serde_json::json!({
            "version": self.version,
            "mode": self.mode,
            "mtls": self.mtls,
            "routes": self.routes.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            "authorization": self.authorization.as_ref().map(|a| serde_json::json!({
                "default": if a.default_allow { "allow" } else { "deny" },
                "unauthenticated": a.unauthenticated,
                "allow": a.allow.iter().map(|rule| serde_json::json!({
                    "from": rule.from.iter().map(pattern_text).collect::<Vec<_>>(),
                    "routes": rule.routes,
                })).collect::<Vec<_>>(),
            })),
            "rate_limit": self.rate_limiter.as_ref().map(|l| serde_json::json!({
                "limits": l.limits.describe(),
                "identity_buckets": l.buckets(),
            })),
            "faults": self.faults.iter().map(|f| serde_json::json!({
                "active": f.active(now),
                "routes": f.routes,
                "from": f.from.iter().map(pattern_text).collect::<Vec<_>>(),
                "abort": f.abort.map(|(abort, percent)| match abort {
                    Abort::Http(status) => serde_json::json!({"status": status.as_u16(), "percent": percent}),
                    Abort::Grpc(code) => serde_json::json!({"grpc": code, "percent": percent}),
                }),
                "delay": f.delay.map(|(d, percent)| serde_json::json!({
                    "duration": humantime::format_duration(d).to_string(),
                    "percent": percent,
                })),
                "until": humantime::format_rfc3339_seconds(f.until).to_string(),
                "expires_in_seconds": f.until.duration_since(now).map_or(0, |d| d.as_secs()),
            })).collect::<Vec<_>>(),
        })
    }
}

pub(crate) fn pattern_text(p: &identity_pattern::IdentityPattern) -> String {
    match p {
        identity_pattern::IdentityPattern::Exact(id) => id.clone(),
        identity_pattern::IdentityPattern::Prefix(prefix) => format!("{prefix}*"),
    }
}

/// The control plane's answer for one of this pod's ports.
#[derive(Debug, Clone, Default)]
pub struct InboundPolicy {
    /// `<name>.<namespace>` of the service whose endpoint this port is; `None` when no
    /// MeshService lists it (then nothing is enforced).
    pub service: Option<Label>,
    /// `None`: the service's policy has no server half; every caller is allowed.
    pub policy: Option<Arc<ServerPolicy>>,
    /// What the port carries, as discovery declares it.
    pub protocol: PortProtocol,
}

impl InboundPolicy {
    pub fn from_proto(
        answer: discovery_proto::Resolution,
        previous: Option<&InboundPolicy>,
        metrics: &Metrics,
    ) -> Self {
        let previous = previous.and_then(|p| p.policy.as_deref());
        let protocol = PortProtocol::from_proto(answer.protocol(), answer.opaque);
        let policy = answer.server_policy.map(|p| {
            Arc::new(ServerPolicy::from_proto(
                answer.service.clone(),
                p,
                previous,
                metrics,
            ))
        });
        Self {
            protocol,
            service: answer.known.then(|| answer.service.into()),
            policy,
        }
    }

    pub fn summary(&self) -> String {
        match (&self.service, &self.policy) {
            (None, _) => "not an endpoint of a mesh service: nothing enforced".to_owned(),
            (Some(service), None) => format!("{service}: no server policy, every caller allowed"),
            (Some(service), Some(p)) => format!("{service}: server policy {}", p.version),
        }
    }

    pub fn describe(&self, now: SystemTime) -> serde_json::Value {
        serde_json::json!({
            "service": self.service,
            "protocol": self.protocol,
            "server_policy": self.policy.as_ref().map(|p| p.describe(now)),
        })
    }
}

//! What the server half of the policy does to one inbound request, in this order:
//! authorization (so a refused request uses no rate-limit tokens), the rate limit, then the
//! fault drills. In `audit` mode the first two only log and count.

use std::time::{Duration, SystemTime};

use crate::http::error::ProxyError;
use crate::policy::server::{Mode, ServerPolicy, fault};
use crate::telemetry::metrics::Metrics;

/// The caller as the policy sees it.
pub struct Caller<'a> {
    /// The SPIFFE ID from its mesh certificate; `None` for plaintext callers.
    pub identity: Option<&'a str>,
    /// `identity`, or `unauthenticated`: the metric label.
    pub label: &'a str,
}

/// `Ok(delay)`: forward the request (after `delay`, if a drill says so); `Err`: answer with it
/// (an aborted request is answered at once, without its delay).
/// `route` is the one of `policy`'s routes that the request matches.
pub fn admit(
    policy: &ServerPolicy,
    route: &str,
    caller: &Caller<'_>,
    metrics: &Metrics,
) -> Result<Option<Duration>, ProxyError> {
    if let Some(authz) = &policy.authorization
        && !authz.allows(caller.identity, Some(route))
    {
        metrics
            .server_policy
            .unauthorized
            .with_label_values(&[caller.label, route, policy.mode.label()])
            .inc();
        let refusal = ProxyError::Unauthorized {
            caller: caller.label.to_owned(),
            service: policy.service.clone(),
            route: route.to_owned(),
            version: policy.version.clone(),
        };
        match policy.mode {
            Mode::Enforce => {
                tracing::info!(caller = caller.label, route, "refused: {refusal}");
                return Err(refusal);
            }
            Mode::Audit => tracing::info!(
                caller = caller.label,
                route,
                "audit, let through: {refusal}"
            ),
        }
    }
    if let Some(limiter) = &policy.rate_limiter
        && let Err(limited) = limiter.check(caller.identity, tokio::time::Instant::now())
    {
        metrics
            .server_policy
            .rate_limited
            .with_label_values(&[caller.label, limited.limit, policy.mode.label()])
            .inc();
        let refusal = ProxyError::RateLimited {
            caller: caller.label.to_owned(),
            service: policy.service.clone(),
            limit: limited.limit,
            retry_after: limited.retry_after,
        };
        match policy.mode {
            Mode::Enforce => {
                tracing::debug!(caller = caller.label, "refused: {refusal}");
                return Err(refusal);
            }
            Mode::Audit => tracing::debug!(caller = caller.label, "audit, let through: {refusal}"),
        }
    }
    if policy.faults.is_empty() {
        return Ok(None);
    }
    let injection = fault::inject(
        &policy.faults,
        route,
        caller.identity,
        SystemTime::now(),
        || fastrand::u32(0..100),
    );
    if injection.delay.is_some() {
        metrics
            .server_policy
            .faults_injected
            .with_label_values(&[route, "delay"])
            .inc();
    }
    if let Some(abort) = injection.abort {
        metrics
            .server_policy
            .faults_injected
            .with_label_values(&[route, "abort"])
            .inc();
        return Err(ProxyError::FaultInjected {
            version: policy.version.clone(),
            abort,
        });
    }
    Ok(injection.delay)
}

/// Whether an opaque TCP connection from `caller` may reach the app (it has no route, so only
/// allow rules without routes admit it).
pub fn admit_connection(policy: &ServerPolicy, caller: &Caller<'_>, metrics: &Metrics) -> bool {
    let Some(authz) = &policy.authorization else {
        return true;
    };
    if authz.allows(caller.identity, None) {
        return true;
    }
    metrics
        .server_policy
        .unauthorized
        .with_label_values(&[caller.label, "tcp", policy.mode.label()])
        .inc();
    match policy.mode {
        Mode::Enforce => {
            tracing::info!(caller = caller.label, policy = %policy.version, "refused an opaque connection: no allow rule admits the caller");
            false
        }
        Mode::Audit => {
            tracing::info!(caller = caller.label, policy = %policy.version, "audit, let through an opaque connection no allow rule admits");
            true
        }
    }
}

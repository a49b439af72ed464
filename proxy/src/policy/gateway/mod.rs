//! Gateway API routes (HTTPRoute) for a destination, as this proxy applies them: the table the
//! control plane sent (rules, and their matches already sorted by the spec's precedence), with
//! everything parsed once so that a request costs a walk over the matches, a random number for
//! the weights, and the filters its rule has.
//!
//! The rule's timeouts and retry are mapped onto weft's own layers ([`GatewayRule::policy`]):
//! they replace the backend's ServicePolicy values for the requests of that rule (its override
//! naming the rule, [`super::ClientPolicy::gateway_rule`], or else the route the request
//! matches), and every retry still draws on the backend's retry budget, which no route can
//! switch off.

mod filters;
mod matcher;

use std::sync::Arc;
use std::time::Duration;

use weft_api::policy as proto;

pub use filters::{HeaderModifier, Redirect, Rewrite};
use matcher::{Matcher, PathMatcher};

use super::{Conditions, RoutePolicy, StatusSet};
use crate::telemetry::Label;

#[derive(Debug)]
pub struct RouteTable {
    /// `<namespace>/<name>@<hash>` of each route, for logs and the admin endpoint.
    pub version: String,
    pub rules: Vec<Arc<GatewayRule>>,
    matches: Vec<Matcher>,
}

#[derive(Debug)]
pub struct GatewayRule {
    /// `<namespace>/<name>` of the route.
    pub route: String,
    pub name: String,
    /// `<route name>/<rule name>`: the `route` label of the request's metrics.
    pub label: Label,
    pub backends: Vec<Backend>,
    /// The sum of the backends' weights; 0: nothing can be sent.
    total_weight: u64,
    pub request_headers: Option<HeaderModifier>,
    pub response_headers: Option<HeaderModifier>,
    pub redirect: Option<Redirect>,
    pub rewrite: Option<Rewrite>,
    pub request_timeout: Option<Duration>,
    pub backend_timeout: Option<Duration>,
    retry: Option<proto::RouteRetry>,
    /// `RequestMirror` filters (empty for most rules: no cost for them).
    pub mirrors: Vec<Mirror>,
}

/// A Service that gets copies of a rule's requests (see [`crate::outbound`]'s `mirror`).
#[derive(Debug)]
pub struct Mirror {
    /// `<name>.<namespace>`
    pub service: String,
    /// `<name>.<namespace>:<port>`, what discovery is asked.
    pub address: String,
    /// The share of the rule's requests copied, in `[0, 1]`.
    pub fraction: f64,
}

#[derive(Debug)]
pub struct Backend {
    /// `<name>.<namespace>`
    pub service: Label,
    /// `<name>.<namespace>:<port>`, what discovery is asked.
    pub address: String,
    pub weight: u32,
    pub request_headers: Option<HeaderModifier>,
    pub response_headers: Option<HeaderModifier>,
    /// A Service in another namespace that no ReferenceGrant allows: its share is answered 500.
    pub ref_not_permitted: bool,
}

/// The rule a request matched, and the path prefix its match named (for `ReplacePrefixMatch`).
pub struct Matched<'t> {
    pub rule: &'t Arc<GatewayRule>,
    pub prefix: &'t str,
}

impl RouteTable {
    pub fn from_proto(table: proto::RouteTable) -> Self {
        let rules: Vec<Arc<GatewayRule>> = table
            .rules
            .into_iter()
            .map(|r| Arc::new(GatewayRule::from_proto(r)))
            .collect();
        let matches = table
            .matches
            .iter()
            .map(Matcher::from_proto)
            .filter(|m| m.rule < rules.len())
            .collect();
        Self {
            version: table.version,
            rules,
            matches,
        }
    }

    /// The first match (in precedence order) that `req` holds.
    pub fn find<B>(&self, req: &http::Request<B>) -> Option<Matched<'_>> {
        let m = self.matches.iter().find(|m| m.matches(req))?;
        let prefix = match &m.path {
            PathMatcher::Prefix(prefix) => prefix.as_str(),
            _ => "",
        };
        Some(Matched {
            rule: &self.rules[m.rule],
            prefix,
        })
    }
}

fn millis(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

impl GatewayRule {
    fn from_proto(r: proto::RouteRule) -> Self {
        let route_name = r.route.rsplit('/').next().unwrap_or_default();
        let backends: Vec<Backend> = r
            .backends
            .into_iter()
            .map(|b| Backend {
                address: format!("{}:{}", b.service, b.port),
                service: b.service.into(),
                weight: b.weight,
                request_headers: HeaderModifier::from_proto(b.request_headers),
                response_headers: HeaderModifier::from_proto(b.response_headers),
                ref_not_permitted: b.ref_not_permitted,
            })
            .collect();
        Self {
            label: format!("{route_name}/{}", r.name).into(),
            route: r.route,
            name: r.name,
            total_weight: backends.iter().map(|b| u64::from(b.weight)).sum(),
            backends,
            request_headers: HeaderModifier::from_proto(r.request_headers),
            response_headers: HeaderModifier::from_proto(r.response_headers),
            redirect: Redirect::from_proto(r.redirect),
            rewrite: Rewrite::from_proto(r.rewrite),
            request_timeout: millis(r.request_timeout_ms),
            backend_timeout: millis(r.backend_timeout_ms),
            retry: r.retry,
            mirrors: r
                .mirrors
                .into_iter()
                .map(|m| Mirror {
                    address: format!("{}:{}", m.service, m.port),
                    service: m.service,
                    fraction: m.fraction.clamp(0.0, 1.0),
                })
                .collect(),
        }
    }

    /// A backend chosen by weight (`random` in `[0, 1)`); `None` when every weight is 0.
    pub fn pick(&self, random: f64) -> Option<&Backend> {
        if self.total_weight == 0 {
            return None;
        }
        let mut point = ((random * self.total_weight as f64) as u64).min(self.total_weight - 1);
        for backend in &self.backends {
            let weight = u64::from(backend.weight);
            if point < weight {
                return Some(backend);
            }
            point -= weight;
        }
        None
    }

    /// What the request's attempts get: the backend's ServicePolicy route `base`, with the
    /// rule's timeouts and retry in place of its own where the rule sets them.
    pub fn policy(&self, base: &Arc<RoutePolicy>) -> Arc<RoutePolicy> {
        let unchanged = self.request_timeout.is_none()
            && self.backend_timeout.is_none()
            && self.retry.is_none();
        if unchanged {
            return base.clone();
        }
        let mut timeouts = base.timeouts;
        timeouts.request = self.request_timeout.or(timeouts.request);
        timeouts.per_try = self.backend_timeout.or(timeouts.per_try);
        let mut retries = base.retries.clone();
        if let Some(retry) = &self.retry {
            retries.limit = retry
                .attempts
                .min(weft_api::policy_defaults::MAX_RETRY_LIMIT);
            retries.on = Conditions {
                statuses: StatusSet::from_codes(&retry.codes),
                grpc_codes: 0,
                ..retries.on
            };
            if let Some(backoff) = millis(retry.backoff_ms) {
                retries.backoff_base = backoff;
                retries.backoff_max = retries.backoff_max.max(backoff);
            }
        }
        Arc::new(base.with(timeouts, retries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(weights: &[u32]) -> GatewayRule {
        GatewayRule::from_proto(proto::RouteRule {
            route: "demo/hello".into(),
            name: "rule-0".into(),
            backends: weights
                .iter()
                .enumerate()
                .map(|(i, w)| proto::Backend {
                    service: format!("v{i}.demo"),
                    port: 80,
                    weight: *w,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    }

    #[test]
    fn weights_split_the_unit_interval_and_zero_gets_nothing() {
        let r = rule(&[90, 0, 10]);
        assert_eq!(&*r.label, "hello/rule-0");
        assert_eq!(r.backends[0].address, "v0.demo:80");
        let pick = |x: f64| r.pick(x).unwrap().service.to_string();
        assert_eq!(pick(0.0), "v0.demo");
        assert_eq!(pick(0.899), "v0.demo");
        assert_eq!(pick(0.9), "v2.demo");
        assert_eq!(pick(0.999_999), "v2.demo");
        assert!(rule(&[0, 0]).pick(0.5).is_none());
        assert!(rule(&[]).pick(0.5).is_none());
    }

    #[test]
    fn a_rule_s_timeouts_and_retry_replace_the_policy_s() {
        let base = crate::policy::ClientPolicy::builtin()
            .route(&http::Request::get("/").body(()).unwrap())
            .clone();
        let plain = rule(&[1]);
        assert!(
            Arc::ptr_eq(&plain.policy(&base), &base),
            "nothing set: no copy"
        );
        let mut proto_rule = proto::RouteRule {
            request_timeout_ms: 3_000,
            retry: Some(proto::RouteRetry {
                attempts: 2,
                codes: vec![500],
                backoff_ms: 10,
            }),
            ..Default::default()
        };
        proto_rule.backend_timeout_ms = 1_000;
        let routed = GatewayRule::from_proto(proto_rule).policy(&base);
        assert_eq!(routed.timeouts.request, Some(Duration::from_secs(3)));
        assert_eq!(routed.timeouts.per_try, Some(Duration::from_secs(1)));
        assert_eq!(routed.retries.limit, 2);
        assert!(
            routed
                .retries
                .on
                .status(http::StatusCode::INTERNAL_SERVER_ERROR)
        );
        assert!(
            routed.retries.on.connect_failure,
            "what the app never saw, still"
        );
        assert_eq!(routed.retries.backoff_base, Duration::from_millis(10));
    }
}

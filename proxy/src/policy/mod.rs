//! The client half of a destination's ServicePolicy, as this proxy applies it.
//!
//! The control plane sends effective values (every route already merged with the document's
//! defaults and the built-in ones, see `weft.policy.v1`), so this module only converts them into
//! types the request path reads without further work: durations as [`Duration`], retry
//! conditions as small sets, and route matchers. A destination without a ServicePolicy gets
//! [`ClientPolicy::builtin`], the same values the control plane would have merged over.
//!
//! Values that make no sense (a proxy must never trust its input blindly, even from its own
//! control plane) are clamped to something safe rather than rejected: the control plane already
//! refused documents with them, so only a mismatch of versions could bring one here.
//!
//! A destination's Gateway API routes, which decide where a request goes before any of this
//! applies, are in [`gateway`].

pub mod gateway;
mod route_match;
pub mod server;

use std::sync::Arc;
use std::time::Duration;

use weft_api::policy as proto;
use weft_api::policy_defaults;

use crate::telemetry::Label;

pub use route_match::RouteMatch;

/// The name requests matching no route are counted under.
pub const DEFAULT_ROUTE: &str = "default";

#[derive(Debug, Clone)]
pub struct ClientPolicy {
    /// `<service>@<hash>` or `builtin`, shown on the admin endpoint.
    pub version: String,
    routes: Vec<Arc<RoutePolicy>>,
    default_route: Arc<RoutePolicy>,
    /// Overrides naming Gateway API rules (`<namespace>/<route>/<rule>`), for the requests those
    /// rules send here; empty for most destinations.
    gateway_rules: Vec<(String, Arc<RoutePolicy>)>,
    pub budget: BudgetConfig,
    pub breaker: BreakerConfig,
    pub limits: LimitsConfig,
}

/// What one class of requests gets.
#[derive(Debug)]
pub struct RoutePolicy {
    pub name: Label,
    /// The position in [`ClientPolicy::routes`], for state kept per route.
    pub index: usize,
    matcher: RouteMatch,
    pub timeouts: Timeouts,
    pub retries: RetryRules,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub request: Option<Duration>,
    pub per_try: Option<Duration>,
    pub idle: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryRules {
    /// Extra attempts after the first.
    pub limit: u32,
    pub on: Conditions,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub max_buffered_body: u64,
    pub pushback_max: Duration,
    /// Conditions other than the app-never-saw-it ones apply to non-idempotent methods too.
    pub non_idempotent: bool,
}

/// Outcomes that are worth another attempt (or, for the breaker, that count as failures).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    /// One bit per HTTP status 100..=599.
    statuses: StatusSet,
    /// One bit per gRPC code 0..=16.
    grpc_codes: u32,
    pub connect_failure: bool,
    pub refused_stream: bool,
    pub reset: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetConfig {
    pub ratio: f64,
    pub min_per_second: u32,
    pub window: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    /// 0: the breaker never opens.
    pub consecutive_failures: u32,
    pub failure_on: Conditions,
    pub penalty_base: Duration,
    pub penalty_max: Duration,
    pub jitter: f64,
    pub max_ejected_percent: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    pub max_concurrent: u32,
    pub max_pending: u32,
    pub queue_timeout: Duration,
}

impl ClientPolicy {
    /// The policy of a destination without a ServicePolicy.
    pub fn builtin() -> Self {
        Self::from_proto(policy_defaults::builtin())
    }

    pub fn from_proto(policy: proto::ClientPolicy) -> Self {
        let default_rules = policy
            .default_rules
            .unwrap_or_else(policy_defaults::route_rules);
        let routes_len = policy.routes.len();
        // Their attempts are counted with the default route's (its index), under their name.
        let gateway_rules = policy
            .gateway_rules
            .into_iter()
            .map(|g| {
                let rules = g.rules.unwrap_or_else(policy_defaults::route_rules);
                let route = RoutePolicy::new(
                    routes_len,
                    g.rule.as_str().into(),
                    RouteMatch::default(),
                    rules,
                );
                (g.rule, Arc::new(route))
            })
            .collect();
        Self {
            version: policy.version,
            routes: policy
                .routes
                .into_iter()
                .enumerate()
                .map(|(index, route)| {
                    Arc::new(RoutePolicy::new(
                        index,
                        route.name.into(),
                        route
                            .r#match
                            .map(RouteMatch::from_proto)
                            .unwrap_or_default(),
                        route.rules.unwrap_or_else(policy_defaults::route_rules),
                    ))
                })
                .collect(),
            default_route: Arc::new(RoutePolicy::new(
                routes_len,
                DEFAULT_ROUTE.into(),
                RouteMatch::default(),
                default_rules,
            )),
            gateway_rules,
            budget: BudgetConfig::from_proto(policy.budget.unwrap_or_else(policy_defaults::budget)),
            breaker: BreakerConfig::from_proto(
                policy
                    .circuit_breaker
                    .unwrap_or_else(policy_defaults::circuit_breaker),
            ),
            limits: LimitsConfig::from_proto(policy.limits.unwrap_or_else(policy_defaults::limits)),
        }
    }

    /// The route a request belongs to: the first that matches, else the default.
    pub fn route<B>(&self, req: &http::Request<B>) -> &Arc<RoutePolicy> {
        self.routes
            .iter()
            .find(|route| route.matcher.matches(req))
            .unwrap_or(&self.default_route)
    }

    /// What an override naming the Gateway API rule `rule` of `route` (`<namespace>/<name>`)
    /// sets, if one does.
    pub fn gateway_rule(&self, route: &str, rule: &str) -> Option<&Arc<RoutePolicy>> {
        self.gateway_rules.iter().find_map(|(key, policy)| {
            let named = key.len() == route.len() + 1 + rule.len()
                && key.starts_with(route)
                && key.ends_with(rule)
                && key.as_bytes()[route.len()] == b'/';
            named.then_some(policy)
        })
    }

    /// Every route, the default last.
    pub fn routes(&self) -> impl Iterator<Item = &Arc<RoutePolicy>> {
        self.routes
            .iter()
            .chain(std::iter::once(&self.default_route))
    }
}

impl RoutePolicy {
    /// This route with other timeouts and retries (what a Gateway API rule sets), keeping its
    /// name and index, under which its metrics are kept.
    pub fn with(&self, timeouts: Timeouts, retries: RetryRules) -> Self {
        Self {
            name: self.name.clone(),
            index: self.index,
            matcher: RouteMatch::default(),
            timeouts,
            retries,
        }
    }

    fn new(index: usize, name: Label, matcher: RouteMatch, rules: proto::RouteRules) -> Self {
        Self {
            name,
            index,
            matcher,
            timeouts: Timeouts::from_proto(
                rules.timeouts.unwrap_or_else(policy_defaults::timeouts),
            ),
            retries: RetryRules::from_proto(rules.retries.unwrap_or_else(policy_defaults::retries)),
        }
    }
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

fn optional_millis(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| millis(ms))
}

impl Timeouts {
    fn from_proto(t: proto::Timeouts) -> Self {
        Self {
            request: optional_millis(t.request_ms),
            per_try: optional_millis(t.per_try_ms),
            idle: optional_millis(t.idle_ms),
        }
    }
}

impl RetryRules {
    fn from_proto(r: proto::Retries) -> Self {
        let backoff_max = millis(r.backoff_max_ms);
        Self {
            limit: r.limit.min(policy_defaults::MAX_RETRY_LIMIT),
            on: Conditions::from_retry_on(r.on.unwrap_or_else(policy_defaults::always_retried)),
            backoff_base: millis(r.backoff_base_ms).min(backoff_max),
            backoff_max,
            max_buffered_body: r.max_buffered_body_bytes,
            pushback_max: millis(r.pushback_max_ms),
            non_idempotent: r.non_idempotent,
        }
    }
}

impl Conditions {
    fn from_retry_on(on: proto::RetryOn) -> Self {
        Self {
            statuses: StatusSet::from_codes(&on.statuses),
            grpc_codes: grpc_bits(&on.grpc_codes),
            connect_failure: on.connect_failure,
            refused_stream: on.refused_stream,
            reset: on.reset,
        }
    }

    pub fn status(&self, status: http::StatusCode) -> bool {
        self.statuses.contains(status.as_u16())
    }

    pub fn grpc(&self, code: u32) -> bool {
        code < 32 && self.grpc_codes & (1 << code) != 0
    }

    /// Whether any gRPC code is listed: only then is a gRPC response's status worth waiting for.
    pub fn any_grpc(&self) -> bool {
        self.grpc_codes != 0
    }
}

fn grpc_bits(codes: &[u32]) -> u32 {
    codes
        .iter()
        .filter(|&&c| c < 32)
        .fold(0, |bits, c| bits | (1 << c))
}

/// HTTP statuses 100..=599 as bits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct StatusSet([u64; 8]);

impl StatusSet {
    fn from_codes(codes: &[u32]) -> Self {
        let mut set = Self::default();
        for &code in codes {
            if (100..600).contains(&code) {
                let bit = (code - 100) as usize;
                set.0[bit / 64] |= 1 << (bit % 64);
            }
        }
        set
    }

    fn contains(&self, code: u16) -> bool {
        if !(100..600).contains(&code) {
            return false;
        }
        let bit = usize::from(code - 100);
        self.0[bit / 64] & (1 << (bit % 64)) != 0
    }
}

impl BudgetConfig {
    fn from_proto(b: proto::RetryBudget) -> Self {
        Self {
            ratio: if b.ratio.is_finite() {
                b.ratio.clamp(0.0, 1.0)
            } else {
                0.2
            },
            min_per_second: b.min_per_second,
            window: millis(b.window_ms.max(1_000)),
        }
    }
}

impl BreakerConfig {
    fn from_proto(c: proto::CircuitBreaker) -> Self {
        let penalty_max = millis(c.penalty_max_ms.max(1));
        Self {
            consecutive_failures: c.consecutive_failures,
            failure_on: Conditions {
                statuses: StatusSet::from_codes(&c.failure_statuses),
                grpc_codes: grpc_bits(&c.failure_grpc_codes),
                connect_failure: true,
                refused_stream: false,
                reset: false,
            },
            penalty_base: millis(c.penalty_base_ms.max(1)).min(penalty_max),
            penalty_max,
            jitter: if c.penalty_jitter.is_finite() {
                c.penalty_jitter.clamp(0.0, 1.0)
            } else {
                0.5
            },
            max_ejected_percent: c.max_ejected_percent.min(100),
        }
    }
}

impl LimitsConfig {
    fn from_proto(l: proto::Limits) -> Self {
        Self {
            max_concurrent: l.max_concurrent.max(1),
            max_pending: l.max_pending,
            queue_timeout: millis(l.queue_timeout_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_retries_only_what_the_app_never_saw() {
        let policy = ClientPolicy::builtin();
        let req = http::Request::get("/x").body(()).unwrap();
        let route = policy.route(&req);
        assert_eq!(&*route.name, DEFAULT_ROUTE);
        assert_eq!(route.retries.limit, 1);
        assert!(route.retries.on.connect_failure && route.retries.on.refused_stream);
        assert!(!route.retries.on.reset && !route.retries.on.any_grpc());
        assert!(
            !route
                .retries
                .on
                .status(http::StatusCode::SERVICE_UNAVAILABLE)
        );
        assert_eq!(route.timeouts.request, None);
        assert!(
            policy
                .breaker
                .failure_on
                .status(http::StatusCode::INTERNAL_SERVER_ERROR)
        );
        assert!(policy.breaker.failure_on.grpc(14));
        assert!(!policy.breaker.failure_on.grpc(7));
    }

    #[test]
    fn an_override_names_one_gateway_rule_exactly() {
        let mut proto = policy_defaults::builtin();
        proto.gateway_rules.push(proto::GatewayRulePolicy {
            rule: "demo/hello/flaky".into(),
            rules: Some(policy_defaults::route_rules()),
        });
        let policy = ClientPolicy::from_proto(proto);
        let flaky = policy.gateway_rule("demo/hello", "flaky").unwrap();
        assert_eq!(&*flaky.name, "demo/hello/flaky");
        assert!(policy.gateway_rule("demo/hello", "flak").is_none());
        assert!(policy.gateway_rule("demo/hell", "o/flaky").is_none());
        assert!(policy.gateway_rule("demo/hello", "steady").is_none());
    }

    #[test]
    fn status_sets_hold_exactly_their_codes() {
        let set = StatusSet::from_codes(&[502, 503, 504, 99, 600]);
        assert!(set.contains(503) && set.contains(502) && set.contains(504));
        assert!(!set.contains(500) && !set.contains(200) && !set.contains(599));
        assert!(!StatusSet::default().contains(503));
    }
}

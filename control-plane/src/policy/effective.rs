//! From a checked document to the effective client policy a caller's proxy enforces.
//!
//! One level of precedence, field by field: a route's override beats `client.defaults`, which
//! beats the built-in defaults of `weft_api::policy_defaults`. So an override that says only
//! `retries: {limit: 0}` keeps the defaults' backoff and timeouts. The proxy receives every
//! field set and merges nothing; `weft policy check --explain` shows where each value came
//! from, which is why each one carries its [`Source`].

use std::fmt;

use ring::digest::{SHA256, digest};
use weft_api::policy::{self as pb, RetryOn};
use weft_api::policy_defaults as builtin;

use super::model::{At, Route, Rules, ServicePolicy};
use super::node::Pos;

/// Which level a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Override,
    Defaults,
    BuiltIn,
    /// `nonIdempotent` of a route with a `grpc` match: gRPC names retryable methods itself.
    GrpcRoute,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Override => "override",
            Source::Defaults => "defaults",
            Source::BuiltIn => "built-in",
            Source::GrpcRoute => "grpc route",
        })
    }
}

/// An effective value, where it came from and (unless built in) where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Sourced<T> {
    pub value: T,
    pub from: Source,
    pub at: Option<(Pos, String)>,
}

impl<T: Clone> Sourced<T> {
    fn pick(over: Option<&At<T>>, defaults: Option<&At<T>>, builtin: T) -> Self {
        match (over, defaults) {
            (Some(v), _) => Self::written(v, Source::Override),
            (None, Some(v)) => Self::written(v, Source::Defaults),
            (None, None) => Self::builtin(builtin),
        }
    }

    fn written(v: &At<T>, from: Source) -> Self {
        Self {
            value: v.value.clone(),
            from,
            at: Some((v.at, v.path.clone())),
        }
    }

    fn builtin(value: T) -> Self {
        Self {
            value,
            from: Source::BuiltIn,
            at: None,
        }
    }

    fn plain(value: Option<T>, builtin: T) -> Self {
        match value {
            Some(value) => Self {
                value,
                from: Source::Defaults,
                at: None,
            },
            None => Self::builtin(builtin),
        }
    }
}

/// The effective timeouts and retries of one route (or of requests matching no route).
#[derive(Debug, Clone, PartialEq)]
pub struct EffectiveRules {
    pub request_ms: Sourced<u64>,
    pub per_try_ms: Sourced<u64>,
    pub idle_ms: Sourced<u64>,
    pub limit: Sourced<u32>,
    /// Always including connect-failure and refused-stream.
    pub on: Sourced<RetryOn>,
    pub backoff_base_ms: Sourced<u64>,
    pub backoff_max_ms: Sourced<u64>,
    pub max_buffered_body_bytes: Sourced<u64>,
    pub pushback_max_ms: Sourced<u64>,
    pub non_idempotent: Sourced<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EffectiveRoute {
    pub route: Route,
    /// Index of the override that names the route, if one does.
    pub override_index: Option<usize>,
    pub rules: EffectiveRules,
}

/// A document's whole effective client half.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    pub version: String,
    pub routes: Vec<EffectiveRoute>,
    /// Overrides naming Gateway API rules: `<namespace>/<route>/<rule>`, the override's index,
    /// and the rules (the override over `client.defaults`).
    pub gateway_rules: Vec<(String, usize, EffectiveRules)>,
    pub default_rules: EffectiveRules,
    pub budget: (Sourced<f64>, Sourced<u32>, Sourced<u64>),
    pub circuit_breaker: pb::CircuitBreaker,
    pub limits: pb::Limits,
}

/// `<name>.<namespace>@<first 8 hex digits of the SHA-256 of the canonical document>`.
pub fn hash_of(canonical: &str) -> String {
    let sum = digest(&SHA256, canonical.as_bytes());
    sum.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn with_always_retried(mut on: RetryOn) -> RetryOn {
    let always = builtin::always_retried();
    on.connect_failure |= always.connect_failure;
    on.refused_stream |= always.refused_stream;
    on
}

pub fn rules(over: Option<&Rules>, defaults: &Rules, grpc: bool) -> EffectiveRules {
    let none = Rules::default();
    let over = over.unwrap_or(&none);
    let t = builtin::timeouts();
    let r = builtin::retries();
    let mut on = Sourced::pick(
        over.on.as_ref(),
        defaults.on.as_ref(),
        r.on.clone().unwrap_or_default(),
    );
    on.value = with_always_retried(on.value);
    let mut non_idempotent = Sourced::pick(
        over.non_idempotent.as_ref(),
        defaults.non_idempotent.as_ref(),
        r.non_idempotent,
    );
    if grpc && over.non_idempotent.is_none() {
        non_idempotent = Sourced {
            value: true,
            from: Source::GrpcRoute,
            at: None,
        };
    }
    EffectiveRules {
        request_ms: Sourced::pick(
            over.request.as_ref(),
            defaults.request.as_ref(),
            t.request_ms,
        ),
        per_try_ms: Sourced::pick(
            over.per_try.as_ref(),
            defaults.per_try.as_ref(),
            t.per_try_ms,
        ),
        idle_ms: Sourced::pick(over.idle.as_ref(), defaults.idle.as_ref(), t.idle_ms),
        limit: Sourced::pick(over.limit.as_ref(), defaults.limit.as_ref(), r.limit),
        on,
        backoff_base_ms: Sourced::pick(
            over.backoff_base.as_ref(),
            defaults.backoff_base.as_ref(),
            r.backoff_base_ms,
        ),
        backoff_max_ms: Sourced::pick(
            over.backoff_max.as_ref(),
            defaults.backoff_max.as_ref(),
            r.backoff_max_ms,
        ),
        max_buffered_body_bytes: Sourced::pick(
            over.max_buffered_body.as_ref(),
            defaults.max_buffered_body.as_ref(),
            r.max_buffered_body_bytes,
        ),
        pushback_max_ms: Sourced::pick(
            over.pushback_max.as_ref(),
            defaults.pushback_max.as_ref(),
            r.pushback_max_ms,
        ),
        non_idempotent,
    }
}

/// Merges `doc` over the built-in defaults, every value with its source.
pub fn effective(doc: &ServicePolicy) -> Effective {
    let client = &doc.client;
    let routes = doc
        .routes
        .iter()
        .map(|route| {
            let override_index = client
                .overrides
                .iter()
                .position(|o| o.routes.iter().any(|r| r.value == route.name.value));
            let over = override_index.map(|i| &client.overrides[i].rules);
            EffectiveRoute {
                route: route.clone(),
                override_index,
                rules: rules(over, &client.defaults, route.is_grpc()),
            }
        })
        .collect();
    let mut gateway_rules: Vec<(String, usize, EffectiveRules)> = Vec::new();
    for (i, o) in client.overrides.iter().enumerate() {
        for written in &o.gateway_rules {
            let key = doc.gateway_rule_key(&written.value);
            if gateway_rules.iter().all(|(k, _, _)| *k != key) {
                gateway_rules.push((key, i, rules(Some(&o.rules), &client.defaults, false)));
            }
        }
    }
    let b = builtin::budget();
    let cb = builtin::circuit_breaker();
    let l = builtin::limits();
    let doc_cb = &client.circuit_breaker;
    let (failure_statuses, failure_grpc_codes) = doc_cb
        .failure_on
        .clone()
        .unwrap_or((cb.failure_statuses, cb.failure_grpc_codes));
    Effective {
        version: format!("{}@{}", doc.key(), doc.hash),
        routes,
        gateway_rules,
        default_rules: rules(None, &client.defaults, false),
        budget: (
            Sourced::plain(client.budget.ratio, b.ratio),
            Sourced::plain(client.budget.min_per_second, b.min_per_second),
            Sourced::plain(client.budget.window_ms, b.window_ms),
        ),
        circuit_breaker: pb::CircuitBreaker {
            consecutive_failures: doc_cb
                .consecutive_failures
                .unwrap_or(cb.consecutive_failures),
            failure_statuses,
            failure_grpc_codes,
            penalty_base_ms: doc_cb.penalty_base_ms.unwrap_or(cb.penalty_base_ms),
            penalty_max_ms: doc_cb.penalty_max_ms.unwrap_or(cb.penalty_max_ms),
            penalty_jitter: doc_cb.penalty_jitter.unwrap_or(cb.penalty_jitter),
            max_ejected_percent: doc_cb.max_ejected_percent.unwrap_or(cb.max_ejected_percent),
        },
        limits: pb::Limits {
            max_concurrent: client.limits.max_concurrent.unwrap_or(l.max_concurrent),
            max_pending: client.limits.max_pending.unwrap_or(l.max_pending),
            queue_timeout_ms: client.limits.queue_timeout_ms.unwrap_or(l.queue_timeout_ms),
        },
    }
}

impl EffectiveRules {
    pub fn to_proto(&self) -> pb::RouteRules {
        pb::RouteRules {
            timeouts: Some(pb::Timeouts {
                request_ms: self.request_ms.value,
                per_try_ms: self.per_try_ms.value,
                idle_ms: self.idle_ms.value,
            }),
            retries: Some(pb::Retries {
                limit: self.limit.value,
                on: Some(self.on.value.clone()),
                backoff_base_ms: self.backoff_base_ms.value,
                backoff_max_ms: self.backoff_max_ms.value,
                max_buffered_body_bytes: self.max_buffered_body_bytes.value,
                pushback_max_ms: self.pushback_max_ms.value,
                non_idempotent: self.non_idempotent.value,
            }),
        }
    }
}

impl Effective {
    pub fn to_proto(&self) -> pb::ClientPolicy {
        pb::ClientPolicy {
            version: self.version.clone(),
            routes: self
                .routes
                .iter()
                .map(|r| pb::Route {
                    name: r.route.name.value.clone(),
                    r#match: Some(r.route.matches.clone()),
                    rules: Some(r.rules.to_proto()),
                })
                .collect(),
            default_rules: Some(self.default_rules.to_proto()),
            budget: Some(pb::RetryBudget {
                ratio: self.budget.0.value,
                min_per_second: self.budget.1.value,
                window_ms: self.budget.2.value,
            }),
            circuit_breaker: Some(self.circuit_breaker.clone()),
            limits: Some(self.limits),
            gateway_rules: self
                .gateway_rules
                .iter()
                .map(|(rule, _, rules)| pb::GatewayRulePolicy {
                    rule: rule.clone(),
                    rules: Some(rules.to_proto()),
                })
                .collect(),
        }
    }
}

/// The effective `weft.policy.v1.ClientPolicy` of a checked document.
pub fn client_policy(doc: &ServicePolicy) -> pb::ClientPolicy {
    effective(doc).to_proto()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{check, node};

    fn policy(spec: &str) -> ServicePolicy {
        let text = format!(
            "apiVersion: weft.dev/v1alpha1\nkind: ServicePolicy\nmetadata: {{name: payments, namespace: prod}}\nspec:\n{spec}"
        );
        let docs = node::parse(&text).unwrap();
        check::document(&docs[0]).unwrap()
    }

    const SPEC: &str = "  routes:
    - name: create
      match: {path: /v1/charges, methods: [POST]}
    - name: get
      match: {grpc: {service: pay.v1.Charges, method: Get}}
    - name: read
      match: {pathPrefix: /v1}
  client:
    defaults:
      timeouts: {request: 10s}
      retries:
        limit: 2
        on: [5xx, \"grpc:unavailable\"]
        backoff: {max: 1s}
        budget: {ratio: 0.5}
      limits: {maxPending: 0}
    overrides:
      - routes: [create]
        retries: {limit: 0}
      - routes: [get]
        retries: {on: [gateway-error, reset]}
";

    #[test]
    fn an_override_naming_gateway_rules_gets_their_full_names() {
        let spec = format!(
            "{SPEC}      - gatewayRules: [checkout/pay, web/shop/rule-0]\n        timeouts: {{request: 2s}}\n"
        );
        let p = client_policy(&policy(&spec));
        let rules: Vec<(&str, u64, u32)> = p
            .gateway_rules
            .iter()
            .map(|g| {
                let r = g.rules.as_ref().unwrap();
                let limit = r.retries.as_ref().unwrap().limit;
                (g.rule.as_str(), r.timeouts.unwrap().request_ms, limit)
            })
            .collect();
        // The override's timeout, the defaults' retries.
        assert_eq!(
            rules,
            [
                ("prod/checkout/pay", 2_000, 2),
                ("web/shop/rule-0", 2_000, 2)
            ]
        );
    }

    #[test]
    fn an_override_changes_only_the_fields_it_names() {
        let p = client_policy(&policy(SPEC));
        let create = p.routes[0].rules.clone().unwrap();
        let retries = create.retries.unwrap();
        assert_eq!(retries.limit, 0);
        // Kept from the defaults, and from the built-in below them.
        assert_eq!(retries.backoff_max_ms, 1_000);
        assert_eq!(retries.backoff_base_ms, 25);
        assert_eq!(create.timeouts.unwrap().request_ms, 10_000);
        assert_eq!(
            retries.on.unwrap().statuses,
            (500..=599).collect::<Vec<_>>()
        );
    }

    #[test]
    fn conditions_expand_and_always_include_what_the_app_never_saw() {
        let p = client_policy(&policy(SPEC));
        let on = p.default_rules.unwrap().retries.unwrap().on.unwrap();
        assert_eq!(on.statuses.len(), 100);
        assert_eq!(on.grpc_codes, vec![14]);
        assert!(on.connect_failure && on.refused_stream && !on.reset);
        let get = p.routes[1].rules.clone().unwrap().retries.unwrap();
        let on = get.on.unwrap();
        assert_eq!(on.statuses, vec![502, 503, 504]);
        assert!(on.reset && on.connect_failure && on.refused_stream);
        assert!(on.grpc_codes.is_empty());
    }

    #[test]
    fn grpc_routes_are_acknowledged_and_others_are_not() {
        let p = client_policy(&policy(SPEC));
        let non_idempotent: Vec<bool> = p
            .routes
            .iter()
            .map(|r| r.rules.clone().unwrap().retries.unwrap().non_idempotent)
            .collect();
        assert_eq!(non_idempotent, vec![false, true, false]);
        let names: Vec<&str> = p.routes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["create", "get", "read"]);
    }

    #[test]
    fn per_destination_values_fall_back_to_the_built_in_ones() {
        let p = client_policy(&policy(SPEC));
        let budget = p.budget.unwrap();
        assert_eq!(
            (budget.ratio, budget.min_per_second, budget.window_ms),
            (0.5, 10, 10_000)
        );
        let limits = p.limits.unwrap();
        assert_eq!((limits.max_concurrent, limits.max_pending), (1024, 0));
        assert_eq!(p.circuit_breaker, Some(builtin::circuit_breaker()));
    }

    #[test]
    fn without_a_client_half_it_is_the_built_in_policy_with_a_version() {
        let p = client_policy(&policy("  routes: []\n"));
        let mut expected = builtin::builtin();
        expected.version = p.version.clone();
        assert_eq!(p, expected);
    }

    #[test]
    fn the_version_follows_meaning_not_layout() {
        let a = policy(SPEC);
        let b = policy(&format!("{SPEC}# a comment\n"));
        let c = policy(&SPEC.replace("ratio: 0.5", "ratio: 0.4"));
        assert_eq!(client_policy(&a).version, client_policy(&b).version);
        assert_ne!(client_policy(&a).version, client_policy(&c).version);
        let version = client_policy(&a).version;
        let (name, hash) = version.split_once('@').unwrap();
        assert_eq!(name, "payments.prod");
        assert_eq!(hash.len(), 8);
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}

//! Walking `spec.client`: the half every caller's sidecar enforces.
//!
//! `budget`, `circuitBreaker` and `limits` exist once per destination (one budget that no route
//! can spend for another, one breaker per endpoint, one queue), so they are refused inside a
//! route override with a message that says where they belong.

use weft_api::policy_defaults::MAX_RETRY_LIMIT;

use super::conditions::{Conditions, conditions, retry_on};
use super::model::{At, Budget, CircuitBreaker, Client, Limits, Override, Rules};
use super::node::Node;
use super::walk::{Cx, index, join};

pub fn client(cx: &mut Cx, node: &Node, path: &str) -> Client {
    let mut client = Client::default();
    let Some(fields) = cx.map(node, path, &["defaults", "overrides"]) else {
        return client;
    };
    if let Some(defaults) = fields.get("defaults") {
        let path = join(path, "defaults");
        let allowed = ["timeouts", "retries", "circuitBreaker", "limits"];
        if let Some(f) = cx.map(defaults, &path, &allowed) {
            client.defaults = rules(cx, f.get("timeouts"), f.get("retries"), &path, true);
            if let Some(retries) = f.get("retries") {
                let retries_path = join(&path, "retries");
                if let Some(Some(budget_node)) =
                    retries.get("budget").map(|b| (!b.is_null()).then_some(b))
                {
                    client.budget = budget(cx, budget_node, &join(&retries_path, "budget"));
                }
            }
            if let Some(n) = f.get("circuitBreaker") {
                client.circuit_breaker = circuit_breaker(cx, n, &join(&path, "circuitBreaker"));
            }
            if let Some(n) = f.get("limits") {
                client.limits = limits(cx, n, &join(&path, "limits"));
            }
        }
    }
    if let Some(overrides) = fields.get("overrides") {
        let path = join(path, "overrides");
        for (i, item) in cx
            .list(overrides, &path)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let path = index(&path, i);
            let allowed = [
                "routes",
                "gatewayRules",
                "timeouts",
                "retries",
                "circuitBreaker",
                "limits",
            ];
            let Some(f) = cx.map(item, &path, &allowed) else {
                continue;
            };
            for name in ["circuitBreaker", "limits"] {
                if let Some(at) = f.key_at(name) {
                    per_destination(cx, at, &join(&path, name));
                }
            }
            let routes = named(cx, f.get("routes"), &join(&path, "routes"), "route");
            let gateway_rules = f
                .get("gatewayRules")
                .map(|n| gateway_rules(cx, n, &join(&path, "gatewayRules")))
                .unwrap_or_default();
            if f.get("routes").is_none() && f.get("gatewayRules").is_none() {
                cx.problem(
                    item.at,
                    &join(&path, "routes"),
                    "missing: name the routes (or the Gateway API rules, gatewayRules) this override applies to",
                );
            }
            let rules = rules(cx, f.get("timeouts"), f.get("retries"), &path, false);
            client.overrides.push(Override {
                routes,
                gateway_rules,
                rules,
            });
        }
    }
    client
}

/// The names of a list (`what`: `route`), each with where it was written.
fn named(cx: &mut Cx, node: Option<&Node>, path: &str, what: &str) -> Vec<At<String>> {
    let Some(n) = node else {
        return Vec::new();
    };
    let names: Vec<At<String>> = cx
        .strings(n, path)
        .unwrap_or_default()
        .into_iter()
        .map(|(value, at, path)| At { value, at, path })
        .collect();
    if names.is_empty() && matches!(n.value, super::node::Value::Seq(_)) {
        cx.problem(n.at, path, format!("names no {what}"));
    }
    names
}

/// `gatewayRules`: Gateway API route rules, `<route>/<rule>` (a route of the policy's
/// namespace) or `<namespace>/<route>/<rule>`; the rule is its `name` or `rule-<index>`.
fn gateway_rules(cx: &mut Cx, node: &Node, path: &str) -> Vec<At<String>> {
    let mut out = named(cx, Some(node), path, "rule");
    out.retain(|rule| {
        let parts: Vec<&str> = rule.value.split('/').collect();
        let shaped = matches!(parts.len(), 2 | 3) && parts.iter().all(|p| !p.is_empty());
        if !shaped {
            let why = format!(
                "`{}` is not `<route>/<rule>` or `<namespace>/<route>/<rule>`",
                rule.value
            );
            cx.problem(rule.at, &rule.path, why);
        }
        shaped
    });
    out
}

fn per_destination(cx: &mut Cx, at: super::node::Pos, path: &str) {
    let name = path.rsplit('.').next().unwrap_or(path);
    let place = if name == "budget" {
        "spec.client.defaults.retries"
    } else {
        "spec.client.defaults"
    };
    cx.problem(
        at,
        path,
        format!("`{name}` applies per destination, not per route; set it in {place}"),
    );
}

fn at<T>(value: Option<T>, node: &Node, path: String) -> Option<At<T>> {
    value.map(|value| At {
        value,
        at: node.at,
        path,
    })
}

/// `timeouts` and `retries` of the defaults (`in_defaults`: `retries.budget` allowed) or of an
/// override.
fn rules(
    cx: &mut Cx,
    timeouts: Option<&Node>,
    retries: Option<&Node>,
    path: &str,
    in_defaults: bool,
) -> Rules {
    let mut rules = Rules::default();
    if let Some(node) = timeouts {
        let path = join(path, "timeouts");
        if let Some(f) = cx.map(node, &path, &["request", "perTry", "idle"]) {
            for (name, slot) in [
                ("request", &mut rules.request),
                ("perTry", &mut rules.per_try),
                ("idle", &mut rules.idle),
            ] {
                if let Some(n) = f.get(name) {
                    let here = join(&path, name);
                    *slot = at(cx.duration(n, &here, true), n, here);
                }
            }
        }
    }
    let Some(node) = retries else {
        return rules;
    };
    let path = join(path, "retries");
    let allowed = [
        "limit",
        "on",
        "backoff",
        "maxBufferedBody",
        "pushback",
        "budget",
        "nonIdempotent",
    ];
    let Some(f) = cx.map(node, &path, &allowed) else {
        return rules;
    };
    if !in_defaults && let Some(key) = f.key_at("budget") {
        per_destination(cx, key, &join(&path, "budget"));
    }
    if let Some(n) = f.get("limit") {
        let here = join(&path, "limit");
        rules.limit = at(cx.integer_u32(n, &here, 0, MAX_RETRY_LIMIT), n, here);
    }
    if let Some(n) = f.get("on") {
        let here = join(&path, "on");
        rules.on = at(retry_on(cx, n, &here), n, here);
    }
    if let Some(n) = f.get("backoff") {
        let path = join(&path, "backoff");
        if let Some(b) = cx.map(n, &path, &["base", "max"]) {
            for (name, slot) in [
                ("base", &mut rules.backoff_base),
                ("max", &mut rules.backoff_max),
            ] {
                if let Some(n) = b.get(name) {
                    let here = join(&path, name);
                    *slot = at(cx.duration(n, &here, false), n, here);
                }
            }
        }
    }
    if let Some(n) = f.get("maxBufferedBody") {
        let here = join(&path, "maxBufferedBody");
        rules.max_buffered_body = at(cx.size(n, &here), n, here);
    }
    if let Some(n) = f.get("pushback") {
        let path = join(&path, "pushback");
        if let Some(p) = cx.map(n, &path, &["max"])
            && let Some(n) = p.get("max")
        {
            let here = join(&path, "max");
            rules.pushback_max = at(cx.duration(n, &here, true), n, here);
        }
    }
    if let Some(n) = f.get("nonIdempotent") {
        let here = join(&path, "nonIdempotent");
        rules.non_idempotent = at(cx.boolean(n, &here), n, here);
    }
    rules
}

fn budget(cx: &mut Cx, node: &Node, path: &str) -> Budget {
    let mut budget = Budget::default();
    let Some(f) = cx.map(node, path, &["ratio", "minPerSecond", "window"]) else {
        return budget;
    };
    if let Some(n) = f.get("ratio") {
        budget.ratio = cx.ratio(n, &join(path, "ratio"));
    }
    if let Some(n) = f.get("minPerSecond") {
        budget.min_per_second = cx.integer_u32(n, &join(path, "minPerSecond"), 0, u32::MAX);
    }
    if let Some(n) = f.get("window") {
        budget.window_ms = cx.duration(n, &join(path, "window"), false);
    }
    budget
}

fn circuit_breaker(cx: &mut Cx, node: &Node, path: &str) -> CircuitBreaker {
    let mut cb = CircuitBreaker::default();
    let allowed = [
        "consecutiveFailures",
        "failureOn",
        "penalty",
        "maxEjectedPercent",
    ];
    let Some(f) = cx.map(node, path, &allowed) else {
        return cb;
    };
    if let Some(n) = f.get("consecutiveFailures") {
        cb.consecutive_failures = cx.integer_u32(n, &join(path, "consecutiveFailures"), 0, 1000);
    }
    if let Some(n) = f.get("failureOn") {
        cb.failure_on = conditions(cx, n, &join(path, "failureOn"), Conditions::Failure)
            .map(|on| (on.statuses, on.grpc_codes));
    }
    if let Some(n) = f.get("penalty") {
        let path = join(path, "penalty");
        if let Some(p) = cx.map(n, &path, &["base", "max", "jitter"]) {
            if let Some(n) = p.get("base") {
                cb.penalty_base_ms = cx.duration(n, &join(&path, "base"), false);
            }
            if let Some(n) = p.get("max") {
                cb.penalty_max_ms = cx.duration(n, &join(&path, "max"), false);
            }
            if let Some(n) = p.get("jitter") {
                cb.penalty_jitter = cx.ratio(n, &join(&path, "jitter"));
            }
            let base = cb
                .penalty_base_ms
                .unwrap_or(weft_api::policy_defaults::circuit_breaker().penalty_base_ms);
            let max = cb
                .penalty_max_ms
                .unwrap_or(weft_api::policy_defaults::circuit_breaker().penalty_max_ms);
            if base > max {
                let at = p.get("base").or(p.get("max")).map(|n| n.at).unwrap_or(n.at);
                cx.problem(
                    at,
                    &join(&path, "base"),
                    format!("base ({}) is longer than max ({})", ms(base), ms(max)),
                );
            }
        }
    }
    if let Some(n) = f.get("maxEjectedPercent") {
        cb.max_ejected_percent = cx.percent(n, &join(path, "maxEjectedPercent"));
    }
    cb
}

fn limits(cx: &mut Cx, node: &Node, path: &str) -> Limits {
    let mut limits = Limits::default();
    let Some(f) = cx.map(node, path, &["maxConcurrent", "maxPending", "queueTimeout"]) else {
        return limits;
    };
    if let Some(n) = f.get("maxConcurrent") {
        limits.max_concurrent = cx.integer_u32(n, &join(path, "maxConcurrent"), 1, u32::MAX);
    }
    if let Some(n) = f.get("maxPending") {
        limits.max_pending = cx.integer_u32(n, &join(path, "maxPending"), 0, u32::MAX);
    }
    if let Some(n) = f.get("queueTimeout") {
        limits.queue_timeout_ms = cx.duration(n, &join(path, "queueTimeout"), false);
    }
    limits
}

/// Milliseconds in the document's own spelling (the largest unit that divides evenly).
pub fn ms(value: u64) -> String {
    weft_api::duration::format_ms(value)
}

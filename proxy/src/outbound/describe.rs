//! What the proxy applies to each destination, for the admin endpoint's `/destinations`: the
//! policy version in force, the Gateway API route table with its weights, the limit's
//! occupancy, and per endpoint the breaker state, the balancer's latency average and the
//! requests in flight. A user asking "which pod did weft eject, and why is my retry not
//! happening" reads it here (Istio users cannot: istio#52962).

use serde_json::{Value, json};

use super::Target;
use crate::destination::Destination;
use crate::discovery::{Discovery, Resolution};
use crate::policy::gateway::RouteTable;

/// Every destination this proxy knows: its fixed `--forward` listeners, then discovery's answers
/// (which include the `--forward NAME.NAMESPACE:PORT` listeners', once each).
pub fn destinations(forwards: &[Target], discovery: Option<&Discovery>) -> Value {
    let mut all = Vec::new();
    for target in forwards {
        if let Target::Fixed(destination) = target {
            all.push(describe(destination, "forward"));
        }
    }
    for (watched, answer) in discovery.map(Discovery::answers).unwrap_or_default() {
        if let Some(Resolution::Known(destination)) = answer {
            let mut entry = describe(&destination, "discovery");
            entry["watched"] = Value::from(watched);
            all.push(entry);
        }
    }
    Value::Array(all)
}

fn describe(destination: &Destination, source: &str) -> Value {
    let now = tokio::time::Instant::now();
    let std_now = std::time::Instant::now();
    let policy = &destination.policy;
    json!({
        "destination": destination.name,
        "source": source,
        "policy_version": policy.version,
        "routes": policy.routes().map(|r| r.name.clone()).collect::<Vec<_>>(),
        "in_flight": destination.limit.in_flight(),
        "pending": destination.limit.pending(),
        "limits": {
            "max_concurrent": policy.limits.max_concurrent,
            "max_pending": policy.limits.max_pending,
            "queue_timeout_ms": policy.limits.queue_timeout.as_millis() as u64,
        },
        "protocol": destination.protocol,
        "endpoints": destination.endpoints().iter().map(|e| json!({
            "address": e.addr.to_string(),
            "identity": e.identity.to_string(),
            "state": e.breaker.shown(now).as_str(),
            "consecutive_failures": e.breaker.consecutive_failures(),
            "in_flight": e.load.in_flight(),
            "ewma_ms": (e.load.latency_ms(std_now) * 1000.0).round() / 1000.0,
        })).collect::<Vec<_>>(),
        "unmeshed": destination.unmeshed().iter().map(ToString::to_string).collect::<Vec<_>>(),
        "gateway_routes": destination.routes.as_deref().map(gateway_routes),
    })
}

/// The route table in force: its version, and each rule with its backends and weights and its
/// mirrors (the rules in the table's order; which match comes first is the control plane's
/// sorting).
fn gateway_routes(table: &RouteTable) -> Value {
    let millis = |d: Option<std::time::Duration>| d.map(|d| d.as_millis() as u64);
    json!({
        "version": table.version,
        "rules": table.rules.iter().map(|rule| json!({
            "route": rule.route,
            "rule": rule.name,
            "redirect": rule.redirect.is_some(),
            "rewrite": rule.rewrite.is_some(),
            "request_timeout_ms": millis(rule.request_timeout),
            "backend_timeout_ms": millis(rule.backend_timeout),
            "backends": rule.backends.iter().map(|b| json!({
                "backend": b.address,
                "weight": b.weight,
                "ref_not_permitted": b.ref_not_permitted,
            })).collect::<Vec<_>>(),
            "mirrors": rule.mirrors.iter().map(|m| json!({
                "mirror": m.address,
                "fraction": m.fraction,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

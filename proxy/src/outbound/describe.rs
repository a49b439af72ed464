//! What the proxy applies to each destination, for the admin endpoint's `/destinations`: the
//! policy version in force, the limit's occupancy, and per endpoint the breaker state, the
//! balancer's latency average and the requests in flight. A user asking "which pod did weft
//! eject, and why is my retry not happening" reads it here (Istio users cannot: istio#52962).

use serde_json::{Value, json};

use super::Target;
use crate::destination::Destination;
use crate::discovery::{Discovery, Resolution};

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
    })
}

//! `weft policy check --explain`: the effective client policy of each document, every value
//! with the level it came from (`override`, `defaults`, `built-in`), and the worst cases a
//! reader should know before shipping it: attempts per request, time per request, and how much
//! extra load retries can add to the service. Then the server half, in the order the service's
//! own sidecars apply it (mTLS per port, authorization, rate limits, fault drills), each value
//! with what it means for a caller.

use std::fmt::Write as _;

use weft_api::policy::{Match, RetryOn};
use weft_api::policy_defaults::GRPC_CODES;

use super::check_client::ms;
use super::effective::{self, EffectiveRules, Source, Sourced};
use super::load::Loaded;
use super::model::{Abort, Bucket, Fault, Mode, Mtls, Server};

/// The explanation of one document, ending with a newline.
pub fn explain(loaded: &Loaded) -> String {
    let doc = &loaded.policy;
    let e = effective::effective(doc);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({}): version {}",
        doc.key(),
        loaded.file,
        e.version
    );
    for route in &e.routes {
        let _ = writeln!(
            out,
            "  route {} ({}):",
            route.route.name.value,
            describe_match(&route.route.matches)
        );
        rules(&mut out, &route.rules);
    }
    for (rule, _, values) in &e.gateway_rules {
        let _ = writeln!(
            out,
            "  Gateway API rule {rule} (its requests to this service; the rule's own timeouts and retry win):"
        );
        rules(&mut out, values);
    }
    let _ = writeln!(out, "  requests matching no route:");
    rules(&mut out, &e.default_rules);
    let _ = writeln!(out, "  per destination:");
    let (ratio, min, window) = &e.budget;
    row(
        &mut out,
        "retries.budget.ratio",
        ratio.value.to_string(),
        ratio.from,
    );
    row(
        &mut out,
        "retries.budget.minPerSecond",
        min.value.to_string(),
        min.from,
    );
    row(
        &mut out,
        "retries.budget.window",
        ms(window.value),
        window.from,
    );
    let cb = &e.circuit_breaker;
    let dc = &doc.client.circuit_breaker;
    let src = |set: bool| {
        if set {
            Source::Defaults
        } else {
            Source::BuiltIn
        }
    };
    row(
        &mut out,
        "circuitBreaker.consecutiveFailures",
        match cb.consecutive_failures {
            0 => "0 (off)".to_owned(),
            n => n.to_string(),
        },
        src(dc.consecutive_failures.is_some()),
    );
    let failures = RetryOn {
        statuses: cb.failure_statuses.clone(),
        grpc_codes: cb.failure_grpc_codes.clone(),
        ..RetryOn::default()
    };
    row(
        &mut out,
        "circuitBreaker.failureOn",
        conditions(&failures),
        src(dc.failure_on.is_some()),
    );
    row(
        &mut out,
        "circuitBreaker.penalty.base",
        ms(cb.penalty_base_ms),
        src(dc.penalty_base_ms.is_some()),
    );
    row(
        &mut out,
        "circuitBreaker.penalty.max",
        ms(cb.penalty_max_ms),
        src(dc.penalty_max_ms.is_some()),
    );
    row(
        &mut out,
        "circuitBreaker.penalty.jitter",
        cb.penalty_jitter.to_string(),
        src(dc.penalty_jitter.is_some()),
    );
    row(
        &mut out,
        "circuitBreaker.maxEjectedPercent",
        cb.max_ejected_percent.to_string(),
        src(dc.max_ejected_percent.is_some()),
    );
    let l = &e.limits;
    let dl = &doc.client.limits;
    row(
        &mut out,
        "limits.maxConcurrent",
        l.max_concurrent.to_string(),
        src(dl.max_concurrent.is_some()),
    );
    row(
        &mut out,
        "limits.maxPending",
        l.max_pending.to_string(),
        src(dl.max_pending.is_some()),
    );
    row(
        &mut out,
        "limits.queueTimeout",
        ms(l.queue_timeout_ms),
        src(dl.queue_timeout_ms.is_some()),
    );
    let _ = writeln!(
        out,
        "    load amplification: at most {} × the request rate + {} retries/s (budget over {})",
        decimal(1.0 + ratio.value),
        min.value,
        ms(window.value)
    );
    match &doc.server {
        Some(s) => server(&mut out, s),
        None => {
            let _ = writeln!(
                out,
                "  server: none (every caller allowed, mTLS as the proxy's --inbound-mode, no rate limit, no fault drill)"
            );
        }
    }
    out
}

/// The server half, in the order the sidecars apply it. Its values have no levels: what the
/// document says, else the default shown.
fn server(out: &mut String, s: &Server) {
    let _ = writeln!(out, "  server (the service's own sidecars, in this order):");
    let line = |out: &mut String, field: &str, value: String| {
        let _ = writeln!(out, "    {field:<36} {value}");
    };
    let mode = match s.mode {
        Mode::Enforce => "enforce: refusals are answered",
        Mode::Audit => {
            "audit: what enforce would refuse is only logged and counted (mtls and faults apply)"
        }
    };
    line(out, "mode", mode.to_owned());
    let mtls = |m: Option<Mtls>| match m {
        None => "the proxy's --inbound-mode".to_owned(),
        Some(Mtls::Strict) => "strict (mesh callers only)".to_owned(),
        Some(Mtls::Permissive) => "permissive (plaintext callers too)".to_owned(),
    };
    for (port, m) in &s.ports {
        line(out, &format!("mtls on port {port}"), mtls(Some(*m)));
    }
    let others = if s.ports.is_empty() {
        "mtls"
    } else {
        "mtls on other ports"
    };
    line(out, others, mtls(s.mtls));
    match &s.authorization {
        None => line(
            out,
            "authorization",
            "none: every caller is allowed".to_owned(),
        ),
        Some(a) => {
            let default = match a.default_allow {
                true => "allow: a request no rule allows passes",
                false => "deny: a request no rule allows gets 403 (gRPC PERMISSION_DENIED)",
            };
            line(out, "authorization.default", default.to_owned());
            let unauthenticated = match a.unauthenticated {
                true => "true: callers without a mesh identity may pass",
                false => "false: callers without a mesh identity are refused",
            };
            line(
                out,
                "authorization.unauthenticated",
                unauthenticated.to_owned(),
            );
            for (i, rule) in a.allow.iter().enumerate() {
                let routes = match rule.routes.as_slice() {
                    [] => "every request".to_owned(),
                    routes => format!("routes {}", routes.join(", ")),
                };
                line(
                    out,
                    &format!("authorization.allow[{i}]"),
                    format!("allows {} on {routes}", callers(&rule.from)),
                );
            }
        }
    }
    match &s.rate_limit {
        None => line(out, "rateLimit", "none".to_owned()),
        Some(r) => {
            if let Some(b) = r.total {
                line(
                    out,
                    "rateLimit.total",
                    format!("{}, all callers together", bucket(b)),
                );
            }
            if let Some(b) = r.per_identity {
                line(
                    out,
                    "rateLimit.perIdentity",
                    format!(
                        "{}, each caller (unauthenticated callers share one bucket)",
                        bucket(b)
                    ),
                );
            }
            for (i, (from, b)) in r.overrides.iter().enumerate() {
                line(
                    out,
                    &format!("rateLimit.overrides[{i}]"),
                    format!("{}: {}, instead of perIdentity", pattern(from), bucket(*b)),
                );
            }
        }
    }
    if s.faults.is_empty() {
        line(out, "faults", "none".to_owned());
    }
    for (i, f) in s.faults.iter().enumerate() {
        line(out, &format!("faults[{i}]"), fault(f));
    }
}

fn bucket(b: Bucket) -> String {
    format!("{} requests/s, bursts of {}", b.rps, b.burst)
}

/// A SPIFFE ID or pattern, with what a wildcard admits.
fn pattern(id: &str) -> String {
    match id.strip_suffix("/*") {
        Some(prefix) if prefix.contains("/ns/") => format!("{id} (every account of the namespace)"),
        Some(_) => format!("{id} (the whole trust domain)"),
        None => id.to_owned(),
    }
}

fn callers(from: &[String]) -> String {
    from.iter()
        .map(|id| pattern(id))
        .collect::<Vec<_>>()
        .join(", ")
}

fn fault(f: &Fault) -> String {
    let mut what = Vec::new();
    if let Some((abort, percent)) = f.abort {
        let answer = match abort {
            Abort::Status(status) => format!("status {status}"),
            Abort::Grpc(code) => match GRPC_CODES.iter().find(|(_, c)| *c == code) {
                Some((name, _)) => format!("grpc {name}"),
                None => format!("grpc {code}"),
            },
        };
        what.push(format!("{percent} % answered {answer} at once"));
    }
    if let Some((delay, percent)) = f.delay {
        what.push(format!("{percent} % delayed {}", ms(delay)));
    }
    let routes = match f.routes.as_slice() {
        [] => "every request".to_owned(),
        routes => format!("routes {}", routes.join(", ")),
    };
    let from = match f.from.as_slice() {
        [] => "every caller".to_owned(),
        from => callers(from),
    };
    let until = humantime::format_rfc3339_seconds(f.until);
    let expired = if f.until <= std::time::SystemTime::now() {
        " (expired: no longer applied)"
    } else {
        ""
    };
    format!(
        "{}; {routes}; from {from}; until {until}{expired}",
        what.join(", ")
    )
}

/// At most 3 decimals, without trailing zeros (`1.2`, not `1.2000000000000002`).
fn decimal(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn row(out: &mut String, field: &str, value: String, from: Source) {
    let _ = writeln!(out, "    {field:<36} {:<10} {value}", from.to_string());
}

fn sourced<T>(out: &mut String, field: &str, v: &Sourced<T>, render: impl Fn(&T) -> String) {
    row(out, field, render(&v.value), v.from);
}

fn optional_ms(value: &u64) -> String {
    match value {
        0 => "none".to_owned(),
        v => ms(*v),
    }
}

fn rules(out: &mut String, r: &EffectiveRules) {
    sourced(out, "timeouts.request", &r.request_ms, optional_ms);
    sourced(out, "timeouts.perTry", &r.per_try_ms, optional_ms);
    sourced(out, "timeouts.idle", &r.idle_ms, optional_ms);
    sourced(out, "retries.limit", &r.limit, u32::to_string);
    sourced(out, "retries.on", &r.on, conditions);
    sourced(out, "retries.backoff.base", &r.backoff_base_ms, |v| ms(*v));
    sourced(out, "retries.backoff.max", &r.backoff_max_ms, |v| ms(*v));
    sourced(
        out,
        "retries.maxBufferedBody",
        &r.max_buffered_body_bytes,
        |v| size(*v),
    );
    sourced(
        out,
        "retries.pushback.max",
        &r.pushback_max_ms,
        |v| match v {
            0 => "0s (ignored)".to_owned(),
            v => ms(*v),
        },
    );
    sourced(
        out,
        "retries.nonIdempotent",
        &r.non_idempotent,
        bool::to_string,
    );
    let attempts = u64::from(r.limit.value) + 1;
    let time = worst_case_time(r);
    let s = if attempts == 1 { "" } else { "s" };
    let _ = writeln!(
        out,
        "    worst case: {attempts} attempt{s} per request, {time}"
    );
}

/// The longest a request can take, by the policy's own numbers.
pub fn worst_case_time(r: &EffectiveRules) -> String {
    let attempts = u64::from(r.limit.value) + 1;
    if r.request_ms.value > 0 {
        return format!("{} (the request timeout)", ms(r.request_ms.value));
    }
    if r.per_try_ms.value == 0 {
        return "unbounded (no request or perTry timeout)".to_owned();
    }
    let backoff: u64 = (0..r.limit.value)
        .map(|n| {
            r.backoff_base_ms
                .value
                .saturating_mul(1u64 << n.min(32))
                .min(r.backoff_max_ms.value)
        })
        .sum();
    format!(
        "{} ({attempts} × perTry {} + backoff up to {})",
        ms(attempts * r.per_try_ms.value + backoff),
        ms(r.per_try_ms.value),
        ms(backoff)
    )
}

/// Conditions in the document's spelling: `5xx`, `gateway-error`, `"429"`, `grpc:unavailable`.
pub fn conditions(on: &RetryOn) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut statuses = on.statuses.clone();
    if (500..=599).all(|s| statuses.contains(&s)) {
        parts.push("5xx".to_owned());
        statuses.retain(|s| !(500..=599).contains(s));
    }
    if [502, 503, 504].iter().all(|s| statuses.contains(s)) {
        parts.push("gateway-error".to_owned());
        statuses.retain(|s| ![502, 503, 504].contains(s));
    }
    parts.extend(statuses.iter().map(|s| format!("\"{s}\"")));
    for code in &on.grpc_codes {
        match GRPC_CODES.iter().find(|(_, c)| c == code) {
            Some((name, _)) => parts.push(format!("grpc:{name}")),
            None => parts.push(format!("grpc:{code}")),
        }
    }
    for (set, name) in [
        (on.connect_failure, "connect-failure"),
        (on.refused_stream, "refused-stream"),
        (on.reset, "reset"),
    ] {
        if set {
            parts.push(name.to_owned());
        }
    }
    if parts.is_empty() {
        "nothing".to_owned()
    } else {
        parts.join(", ")
    }
}

fn size(bytes: u64) -> String {
    for (unit, scale) in [("MiB", 1024 * 1024), ("KiB", 1024)] {
        if bytes >= scale && bytes.is_multiple_of(scale) {
            return format!("{}{unit}", bytes / scale);
        }
    }
    format!("{bytes}B")
}

fn describe_match(m: &Match) -> String {
    let mut parts = Vec::new();
    if !m.path.is_empty() {
        parts.push(format!("path {}", m.path));
    }
    if !m.path_prefix.is_empty() {
        parts.push(format!("pathPrefix {}", m.path_prefix));
    }
    if !m.methods.is_empty() {
        parts.push(format!("methods {}", m.methods.join(", ")));
    }
    for h in &m.headers {
        if h.exact.is_empty() {
            parts.push(format!("header {}", h.name));
        } else {
            parts.push(format!("header {}: {}", h.name, h.exact));
        }
    }
    if let Some(g) = &m.grpc {
        if g.method.is_empty() {
            parts.push(format!("grpc {}/*", g.service));
        } else {
            parts.push(format!("grpc {}/{}", g.service, g.method));
        }
    }
    parts.join("; ")
}

//! The demo's results: what the client received, what the apps did, what the sidecars counted,
//! and the checks that decide between `ok` and `FAILED`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::files::{DRILL_PERCENT, DRILL_PREFIX, SERVICE, SLOW_PREFIX, SLOW_TIMEOUT};
use super::flaky::App;
use super::metrics::{by_label, sum};
use super::timeline::Change;
use super::traffic::Tally;
use super::watch::Seen;

/// Everything a run produced.
pub struct Run<'a> {
    pub web_id: String,
    pub hello_id: String,
    /// `web`, then the sidecars in front of the steady and the flaky app.
    pub sidecars: [&'static str; 3],
    pub endpoints: [SocketAddr; 2],
    /// The steady app, then the flaky one.
    pub apps: [&'a App; 2],
    /// Requests to `/`, and to the slow route.
    pub fast: Tally,
    pub slow: Tally,
    /// Requests to the drill route, after the rest.
    pub drill: Tally,
    /// What a caller without a mesh certificate got from a hello sidecar: (status, body).
    pub plaintext: (u16, String),
    /// `/metrics` of each sidecar, in the order of `sidecars`.
    pub metrics: Vec<String>,
    pub certificates: Vec<Seen>,
    pub breakers: Vec<Change>,
    /// When the flaky app listened again.
    pub back_at: Duration,
    /// The endpoints' breaker states after the traffic.
    pub final_states: Vec<(String, String)>,
    pub duration: Duration,
    pub cert_ttl: Duration,
}

fn statuses(tally: &Tally) -> String {
    let mut parts: Vec<String> = tally
        .statuses
        .iter()
        .map(|((status, error), count)| match error.as_str() {
            "" => format!("{count} answered {status}"),
            error => format!("{count} answered {status} weft-error: {error}"),
        })
        .collect();
    parts.extend(
        tally
            .errors
            .iter()
            .map(|(error, count)| format!("{count} failed: {error}")),
    );
    if parts.is_empty() {
        parts.push("no answers".to_owned());
    }
    parts.join(", ")
}

fn times(n: u64) -> String {
    match n {
        1 => "1 time".to_owned(),
        n => format!("{n} times"),
    }
}

fn listed(counts: &BTreeMap<String, u64>, prefix: &str) -> String {
    let parts: Vec<String> = counts
        .iter()
        .map(|(key, n)| format!("{prefix}{key} {n}"))
        .collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

/// Prints the results; returns the problems found (none: the demo succeeded).
pub fn print(run: &Run) -> Vec<String> {
    let web = &run.metrics[0];
    let dest = [("destination", SERVICE)];
    // The drill's retries are reported with the drill.
    let drill_route = [("destination", SERVICE), ("route", "drill")];
    let drill_retries: u64 = sum(web, "weft_outbound_retries_total", &drill_route);
    let mut retries = by_label(web, "weft_outbound_retries_total", &dest, "reason");
    for (reason, n) in by_label(web, "weft_outbound_retries_total", &drill_route, "reason") {
        if let Some(count) = retries.get_mut(&reason) {
            *count -= n;
        }
    }
    retries.retain(|_, n| *n > 0);
    let retried: u64 = retries.values().sum();
    let aborted: u64 = run.metrics[1..]
        .iter()
        .map(|m| {
            sum(
                m,
                "weft_inbound_faults_injected_total",
                &[("route", "drill"), ("kind", "abort")],
            )
        })
        .sum();
    let drill_ok = run.drill.count(200, "");
    let exhausted = sum(web, "weft_outbound_retry_budget_exhausted_total", &dest);
    let timeouts = sum(
        web,
        "weft_outbound_timeouts_total",
        &[("destination", SERVICE), ("kind", "request")],
    );
    let opened = sum(
        web,
        "weft_outbound_breaker_transitions_total",
        &[("destination", SERVICE), ("to", "open")],
    );
    let closed = sum(
        web,
        "weft_outbound_breaker_transitions_total",
        &[("destination", SERVICE), ("to", "closed")],
    );
    let shed = by_label(web, "weft_outbound_shed_total", &dest, "reason");
    let outbound = by_label(
        web,
        "weft_requests_total",
        &[("direction", "outbound"), ("destination_service", SERVICE)],
        "status_code",
    );
    let attempts = sum(web, "weft_outbound_request_attempts_sum", &dest);
    let requests = sum(web, "weft_outbound_request_attempts_count", &dest);
    let timed_out = run.slow.count(504, "timeout");
    let fast_ok = run.fast.count(200, "");
    let flaky_endpoint = run.endpoints[1].to_string();

    println!("\nresults");
    println!(
        "  requests       {} sent: {} to /, {} to {SLOW_PREFIX}",
        run.fast.sent + run.slow.sent,
        run.fast.sent,
        run.slow.sent
    );
    println!("  /              {}", statuses(&run.fast));
    println!("  {SLOW_PREFIX:<14} {}", statuses(&run.slow));
    println!("  {DRILL_PREFIX:<14} {}", statuses(&run.drill));
    for (i, app) in run.apps.iter().enumerate() {
        println!(
            "  app of {:<7} {} answered 200, {} answered 503 on purpose, {} began on {SLOW_PREFIX}",
            run.sidecars[i + 1],
            app.behaviour.answered(),
            app.behaviour.failed(),
            app.behaviour.slow(),
        );
    }
    let unreachable = sum(
        &run.metrics[2],
        "weft_proxy_errors_total",
        &[("direction", "inbound"), ("reason", "app_unreachable")],
    );
    println!(
        "  sidecar {:<6} answered 502 app_unreachable {unreachable} times while its app was down",
        run.sidecars[2]
    );
    println!(
        "  retries        {retried} hid them (weft_outbound_retries_total by the answer before: {}); the budget refused {exhausted}",
        listed(&retries, "")
    );
    println!(
        "  attempts       {attempts} for {requests} requests (weft_outbound_request_attempts); shed before any attempt: {}",
        listed(&shed, "")
    );
    println!(
        "  breaker        opened {}, closed {}; at the end {}",
        times(opened),
        times(closed),
        run.final_states
            .iter()
            .map(|(endpoint, state)| format!("{endpoint} {state}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  timeouts       {timeouts} requests cut at {} (weft_outbound_timeouts_total{{kind=\"request\"}}); the client got {timed_out} × 504 timeout",
        humantime::format_duration(SLOW_TIMEOUT)
    );
    println!(
        "  web metrics    weft_requests_total{{direction=\"outbound\"}} by status: {}",
        listed(&outbound, "")
    );
    println!(
        "  fault drill    the hello sidecars aborted {aborted} attempts on {DRILL_PREFIX} ({DRILL_PERCENT} %, weft_inbound_faults_injected_total); web retried {drill_retries}, so {drill_ok} of {} requests answered 200 (the apps answered {})",
        run.drill.sent,
        run.apps.iter().map(|a| a.behaviour.drill()).sum::<u64>()
    );
    println!(
        "  authorization  a caller without a mesh certificate got {} from hello1's sidecar: {}",
        run.plaintext.0,
        run.plaintext.1.trim()
    );
    let callers = run
        .fast
        .caller_identities
        .iter()
        .chain(&run.slow.caller_identities);
    for (caller, count) in callers {
        println!("  app saw        caller {caller} on {count} requests");
    }
    for (server, count) in &run.fast.server_identities {
        println!(
            "  client saw     server {server} (verified by the web sidecar) on {count} requests"
        );
    }
    let rotations = |sidecar: &str| {
        run.certificates
            .iter()
            .filter(|c| c.sidecar == sidecar)
            .count()
            .saturating_sub(1)
    };
    println!(
        "  rotations      {} under traffic (last certificates expire {})",
        run.sidecars
            .iter()
            .map(|s| format!("{s} {}", rotations(s)))
            .collect::<Vec<_>>()
            .join(", "),
        run.certificates
            .last()
            .map(|c| c.not_after.as_str())
            .unwrap_or("?")
    );

    let mut problems = Vec::new();
    if run.fast.sent == 0 || fast_ok != run.fast.sent {
        problems.push(format!(
            "{} of {} requests to / did not answer 200 ({})",
            run.fast.sent - fast_ok,
            run.fast.sent,
            statuses(&run.fast)
        ));
    }
    if run.slow.sent == 0 || timed_out != run.slow.sent {
        problems.push(format!(
            "{} of {} requests to {SLOW_PREFIX} did not answer 504 timeout ({})",
            run.slow.sent - timed_out,
            run.slow.sent,
            statuses(&run.slow)
        ));
    }
    if timeouts != timed_out {
        problems.push(format!(
            "the web sidecar counted {timeouts} request timeouts, the client got {timed_out}"
        ));
    }
    if aborted == 0 || run.drill.sent == 0 || drill_ok * 100 < run.drill.sent * 95 {
        problems.push(format!(
            "the drill: {aborted} aborts injected; {drill_ok} of {} requests answered 200 (expected at least 95 % thanks to retries)",
            run.drill.sent
        ));
    }
    if run.plaintext.0 != 403 || !run.plaintext.1.contains("not allowed") {
        problems.push(format!(
            "a caller without a mesh certificate got {} {}, expected 403 unauthorized",
            run.plaintext.0,
            run.plaintext.1.trim()
        ));
    }
    if retried == 0 {
        problems.push("the web sidecar retried nothing".to_owned());
    }
    if run.apps[1].behaviour.failed() == 0 {
        problems.push("the flaky app failed no request".to_owned());
    }
    if opened == 0 {
        problems.push("the breaker never opened".to_owned());
    }
    let closed_after_back = run
        .breakers
        .iter()
        .any(|c| c.endpoint == flaky_endpoint && !c.ejected && c.at >= run.back_at);
    let closed_at_end = run
        .final_states
        .iter()
        .any(|(e, state)| *e == flaky_endpoint && state == "closed");
    if !closed_after_back || !closed_at_end {
        problems.push(format!(
            "the breaker did not close for {flaky_endpoint} after its app came back (at +{:.1}s)",
            run.back_at.as_secs_f64()
        ));
    }
    if run.fast.caller_identities.keys().any(|c| *c != run.web_id) {
        problems.push("the app saw a caller identity other than web's".to_owned());
    }
    if run
        .fast
        .server_identities
        .keys()
        .any(|s| *s != run.hello_id)
    {
        problems.push("the client saw a server identity other than hello's".to_owned());
    }
    if run.sidecars.iter().any(|s| rotations(s) == 0) {
        problems.push(format!(
            "expected each sidecar to rotate its certificate at least once (lifetime {}, traffic for {})",
            humantime::format_duration(run.cert_ttl),
            humantime::format_duration(run.duration)
        ));
    }
    problems
}

/// Prints `ok` or `FAILED` and the problems; true when there were none.
pub fn verdict(problems: &[String]) -> bool {
    if problems.is_empty() {
        println!(
            "\nok: every request crossed the mesh over mutual TLS while certificates rotated; retries and the breaker hid the flaky and the dead app and the fault drill, the deadline cut every slow request, and only web was let in"
        );
        return true;
    }
    println!("\nFAILED:");
    for p in problems {
        println!("  - {p}");
    }
    false
}

//! Watching the caller's circuit breakers through the web sidecar's admin `/destinations`:
//! each endpoint's state (closed, open, half-open), printed when it changes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::files::SERVICE;

/// One line of the demo's timeline: `  + 3.1s  <what>`.
pub fn print(started: Instant, what: &str) {
    println!("  +{:>4.1}s  {what}", started.elapsed().as_secs_f64());
}

/// A breaker change seen on an endpoint.
#[derive(Debug, Clone)]
pub struct Change {
    pub at: Duration,
    pub endpoint: String,
    /// Ejected (open or half-open), or back (closed).
    pub ejected: bool,
}

/// Polls `/destinations` (and the breaker-open counter of `/metrics`) every 50 ms until `stop`,
/// printing when an endpoint is ejected, ejected again after a failed probe, and restored;
/// `why` says what the app behind an endpoint is doing.
pub async fn breakers(
    admin: SocketAddr,
    started: Instant,
    why: impl Fn(&str) -> String,
    stop: Arc<AtomicBool>,
) -> Vec<Change> {
    let mut ejected: HashMap<String, bool> = HashMap::new();
    let mut opened = 0;
    let mut changes = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let opened_now = opens(admin).await.unwrap_or(opened);
        let mut explained = 0;
        for (endpoint, state) in endpoint_states(admin).await {
            let now = state != "closed";
            let before = ejected.insert(endpoint.clone(), now).unwrap_or(false);
            let line = match (before, now) {
                (false, true) => {
                    explained += 1;
                    format!("breaker opened for {endpoint} ({})", why(&endpoint))
                }
                (true, false) => format!("breaker closed for {endpoint} (probe succeeded)"),
                (true, true) if opened_now > opened + explained => {
                    explained += 1;
                    format!(
                        "breaker probe failed: {endpoint} ejected again ({})",
                        why(&endpoint)
                    )
                }
                _ => continue,
            };
            print(started, &line);
            changes.push(Change {
                at: started.elapsed(),
                endpoint,
                ejected: now,
            });
        }
        opened = opened_now;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    changes
}

/// `weft_outbound_breaker_transitions_total{destination="hello.demo",to="open"}`.
async fn opens(admin: SocketAddr) -> Option<u64> {
    let Ok((200, text)) = super::http_get(admin, "/metrics").await else {
        return None;
    };
    Some(super::metrics::sum(
        &text,
        "weft_outbound_breaker_transitions_total",
        &[("destination", SERVICE), ("to", "open")],
    ))
}

/// `(address, state)` of every endpoint of the service, as the web sidecar shows them.
pub async fn endpoint_states(admin: SocketAddr) -> Vec<(String, String)> {
    destination(admin)
        .await
        .and_then(|d| d["endpoints"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|e| {
            (
                e["address"].as_str().unwrap_or("?").to_owned(),
                e["state"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect()
}

/// The service's entry in the sidecar's `/destinations`, if listed.
pub async fn destination(admin: SocketAddr) -> Option<serde_json::Value> {
    let Ok((200, body)) = super::http_get(admin, "/destinations").await else {
        return None;
    };
    let all: serde_json::Value = serde_json::from_str(&body).ok()?;
    all.as_array()?
        .iter()
        .find(|d| d["destination"] == SERVICE)
        .cloned()
}

//! `weft routes SERVICE`: per route of the service's ServicePolicy (`default` for requests no
//! route matches), the *effective* success and rate (what callers got, after retries) beside
//! the *actual* (what the servers answered, every attempt counted), the retries and the retries
//! the budget refused. Where effective success is above actual, retries hid failures.

use super::Output;
use super::snapshot::MeshSnapshot;
use super::stat::names_service;
use super::table::{self, millis, percent, rps};

pub fn print(
    snapshot: &MeshSnapshot,
    service: &str,
    output: Option<Output>,
) -> Result<String, String> {
    let routes: Vec<_> = snapshot
        .routes
        .iter()
        .filter(|r| names_service(service, &r.service))
        .collect();
    if routes.is_empty() {
        let known: Vec<&str> = snapshot.services.iter().map(|s| s.name.as_str()).collect();
        return Err(format!(
            "no requests to service {service:?} in the window (services seen: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        ));
    }
    if output == Some(Output::Json) {
        return serde_json::to_string_pretty(&routes)
            .map(|json| json + "\n")
            .map_err(|e| e.to_string());
    }
    let wide = output == Some(Output::Wide);
    let mut header = vec![
        "ROUTE",
        "SERVICE",
        "EFFECTIVE_SUCCESS",
        "EFFECTIVE_RPS",
        "ACTUAL_SUCCESS",
        "ACTUAL_RPS",
        "RETRIES",
        "BUDGET_EXHAUSTED",
        "LATENCY_P99",
    ];
    if wide {
        header.extend(["LATENCY_P50", "LATENCY_P95"]);
    }
    let rows: Vec<Vec<String>> = routes
        .iter()
        .map(|r| {
            let mut row = vec![
                r.route.clone(),
                r.service.clone(),
                percent(r.effective.success_rate),
                rps(r.effective.requests_per_second),
                percent(r.actual.success_rate),
                rps(r.actual.requests_per_second),
                format!("{}", r.retries),
                format!("{}", r.budget_exhausted),
                millis(r.effective.p99_ms),
            ];
            if wide {
                row.extend([millis(r.effective.p50_ms), millis(r.effective.p95_ms)]);
            }
            row
        })
        .collect();
    Ok(table::render(&header, &rows))
}

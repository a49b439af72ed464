//! `weft edges`: who calls whom. One row per caller and service: the caller's and the answering
//! workload's SPIFFE identities, whether every request that reached an app went over mutual TLS,
//! and what the caller got (rate, success; `-o wide` adds p99 and open breakers).

use super::Output;
use super::snapshot::MeshSnapshot;
use super::table::{self, millis, percent, rps};

pub fn print(snapshot: &MeshSnapshot, output: Option<Output>) -> Result<String, String> {
    if output == Some(Output::Json) {
        return serde_json::to_string_pretty(&snapshot.edges)
            .map(|json| json + "\n")
            .map_err(|e| e.to_string());
    }
    let wide = output == Some(Output::Wide);
    let mut header = vec![
        "SOURCE",
        "DESTINATION",
        "SERVICE",
        "SRC_IDENTITY",
        "DST_IDENTITY",
        "MTLS",
        "RPS",
        "SUCCESS",
    ];
    if wide {
        header.extend(["LATENCY_P99", "BREAKERS_OPEN"]);
    }
    let rows: Vec<Vec<String>> = snapshot
        .edges
        .iter()
        .map(|e| {
            let or_dash = |s: &str| {
                if s.is_empty() {
                    "-".to_owned()
                } else {
                    s.to_owned()
                }
            };
            let mut row = vec![
                e.source.clone(),
                e.destination.clone(),
                e.service.clone(),
                or_dash(&e.source_identity),
                or_dash(&e.destination_identity),
                if e.mtls { "yes" } else { "no" }.to_owned(),
                rps(e.stats.requests_per_second),
                percent(e.stats.success_rate),
            ];
            if wide {
                row.extend([millis(e.stats.p99_ms), e.breakers_open.to_string()]);
            }
            row
        })
        .collect();
    Ok(table::render(&header, &rows))
}

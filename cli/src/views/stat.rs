//! `weft stat`: per workload, what its sidecars served (inbound: meshed pods, success, rate,
//! latency, connections); per service, what its callers got (outbound, after retries) beside
//! what its servers answered. `--from`/`--to` narrow the rows to the edges between workloads.

use serde::Serialize;

use super::Output;
use super::golden::Golden;
use super::snapshot::{Edge, MeshSnapshot};
use super::table::{self, millis, percent, rps};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Workloads,
    Services,
}

impl Kind {
    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "deploy" | "deployment" | "deployments" | "workload" | "workloads" => {
                Some(Kind::Workloads)
            }
            "svc" | "service" | "services" => Some(Kind::Services),
            _ => None,
        }
    }
}

/// One row of `weft stat` (`-o json` prints a list of these).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Row {
    /// `deploy` or `svc`.
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub identity: Option<String>,
    pub meshed_pods: Option<usize>,
    pub tcp_connections: Option<f64>,
    /// The row's signals: served (workloads), got by callers (services, edges).
    pub stats: Golden,
    /// Services only: what the servers answered, each attempt counted.
    pub actual: Option<Golden>,
}

/// Whether `wanted` names the workload `id` (`ns/name`), by id, name or identity.
pub fn names_workload(wanted: &str, id: &str, identity: &str) -> bool {
    wanted == id || wanted == identity || id.split_once('/').is_some_and(|(_, n)| n == wanted)
}

/// Whether `wanted` names the service `name.namespace`, whole or by name.
pub fn names_service(wanted: &str, service: &str) -> bool {
    wanted == service || service.split_once('.').is_some_and(|(n, _)| n == wanted)
}

pub fn print(
    snapshot: &MeshSnapshot,
    kind: Kind,
    from: Option<&str>,
    to: Option<&str>,
    output: Option<Output>,
) -> Result<String, String> {
    let rows = rows(snapshot, kind, from, to);
    if output == Some(Output::Json) {
        return serde_json::to_string_pretty(&rows)
            .map(|json| json + "\n")
            .map_err(|e| e.to_string());
    }
    let wide = output == Some(Output::Wide);
    let mut header = vec!["NAMESPACE", "NAME"];
    if kind == Kind::Workloads {
        header.push("MESHED");
    }
    header.extend([
        "SUCCESS",
        "RPS",
        "LATENCY_P50",
        "LATENCY_P95",
        "LATENCY_P99",
    ]);
    if kind == Kind::Workloads {
        header.push("TCP_CONN");
    }
    if wide {
        header.push(if kind == Kind::Workloads {
            "IDENTITY"
        } else {
            "ACTUAL_SUCCESS"
        });
        header.push("REQUESTS");
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let mut cells = vec![row.namespace.clone(), row.name.clone()];
            if kind == Kind::Workloads {
                cells.push(row.meshed_pods.map_or("-".into(), |n| n.to_string()));
            }
            cells.extend([
                percent(row.stats.success_rate),
                rps(row.stats.requests_per_second),
                millis(row.stats.p50_ms),
                millis(row.stats.p95_ms),
                millis(row.stats.p99_ms),
            ]);
            if kind == Kind::Workloads {
                cells.push(row.tcp_connections.map_or("-".into(), |n| n.to_string()));
            }
            if wide {
                cells.push(match kind {
                    Kind::Workloads => row.identity.clone().unwrap_or_else(|| "-".into()),
                    Kind::Services => percent(row.actual.as_ref().and_then(|a| a.success_rate)),
                });
                cells.push(format!("{}", row.stats.requests));
            }
            cells
        })
        .collect();
    Ok(table::render(&header, &cells))
}

fn rows(snapshot: &MeshSnapshot, kind: Kind, from: Option<&str>, to: Option<&str>) -> Vec<Row> {
    if from.is_some() || (to.is_some() && kind == Kind::Workloads) {
        return edge_rows(snapshot, kind, from, to);
    }
    match kind {
        Kind::Workloads => snapshot
            .workloads
            .iter()
            .map(|w| Row {
                kind: "deploy",
                namespace: w.namespace.clone(),
                name: w.name.clone(),
                identity: Some(w.identity.clone()),
                meshed_pods: Some(w.meshed_pods),
                tcp_connections: Some(w.tcp_connections),
                stats: w.inbound.clone(),
                actual: None,
            })
            .collect(),
        Kind::Services => snapshot
            .services
            .iter()
            .filter(|s| to.is_none_or(|to| names_service(to, &s.name)))
            .map(|s| {
                let (name, namespace) = s.name.split_once('.').unwrap_or((&s.name, ""));
                Row {
                    kind: "svc",
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    stats: s.effective.clone(),
                    actual: Some(s.actual.clone()),
                    ..Row::default()
                }
            })
            .collect(),
    }
}

/// With `--from`: one row per destination of that workload; with `--to` alone: one row per
/// caller of that workload or service. Each row is an edge, seen by its caller.
fn edge_rows(
    snapshot: &MeshSnapshot,
    kind: Kind,
    from: Option<&str>,
    to: Option<&str>,
) -> Vec<Row> {
    let matches = |edge: &&Edge| {
        from.is_none_or(|f| names_workload(f, &edge.source, &edge.source_identity))
            && to.is_none_or(|t| {
                names_workload(t, &edge.destination, &edge.destination_identity)
                    || names_service(t, &edge.service)
            })
    };
    snapshot
        .edges
        .iter()
        .filter(matches)
        .map(|edge| {
            let shown = match (from.is_some(), kind) {
                (true, Kind::Workloads) => edge.destination.clone(),
                (true, Kind::Services) => edge.service.replacen('.', "/", 1),
                (false, _) => edge.source.clone(),
            };
            let (namespace, name) = match kind {
                Kind::Services if from.is_some() => {
                    let (name, ns) = edge.service.split_once('.').unwrap_or((&edge.service, ""));
                    (ns.to_owned(), name.to_owned())
                }
                _ => match shown.split_once('/') {
                    Some((ns, name)) => (ns.to_owned(), name.to_owned()),
                    None => (String::new(), shown.clone()),
                },
            };
            Row {
                kind: if kind == Kind::Workloads {
                    "deploy"
                } else {
                    "svc"
                },
                namespace,
                name,
                identity: Some(if from.is_some() {
                    edge.destination_identity.clone()
                } else {
                    edge.source_identity.clone()
                }),
                stats: edge.stats.clone(),
                ..Row::default()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_whole_or_short() {
        let web = "spiffe://cluster.local/ns/demo/sa/web";
        assert!(names_workload("demo/web", "demo/web", web));
        assert!(names_workload("web", "demo/web", web));
        assert!(names_workload(web, "demo/web", web));
        assert!(!names_workload("hello", "demo/web", web));
        assert!(names_service("hello", "hello.demo"));
        assert!(names_service("hello.demo", "hello.demo"));
        assert!(!names_service("demo", "hello.demo"));
        assert_eq!(Kind::parse("svc"), Some(Kind::Services));
        assert_eq!(Kind::parse("127.0.0.1:15000"), None);
    }
}

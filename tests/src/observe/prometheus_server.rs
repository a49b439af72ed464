//! A real Prometheus server (Debian's `prometheus`, `/usr/bin/prometheus`) scraping weft's
//! `/metrics`, queried with PromQL over its HTTP API.
//!
//! `promtool check metrics` lints the text; this checks what a dashboard would see: that the
//! server accepts the exposition (`up == 1`), and that queries over the stored series give the
//! numbers they should.
//!
//! Timing (Prometheus 2.42, measured here): `/-/ready` answers within ~0.1 s, but the first
//! scrape comes ~5–6 s after the start, because the scrape manager applies its targets on a 5 s
//! tick; after that, scrapes run every second. So a test starts one server, as soon as it knows
//! its targets' addresses, does its other setup and traffic while the server warms up, and only
//! then calls [`PrometheusServer::wait_up`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::clients;
use crate::ports::free_port;
use crate::process::programs;

/// One series of an instant vector: its labels and value.
pub type Sample = (BTreeMap<String, String>, f64);

/// How long the server gets to answer `/-/ready` (it replays an empty WAL: about a second).
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// A Prometheus server scraping some targets every second, killed when dropped.
pub struct PrometheusServer {
    /// Its HTTP API and UI: `127.0.0.1:PORT`.
    pub addr: SocketAddr,
    jobs: Vec<String>,
    child: Child,
    _dir: TempDir,
}

impl PrometheusServer {
    /// Starts Prometheus scraping each `(job, address)`'s `/metrics` every second, and waits
    /// until it is ready; `None` (the test is skipped) when it is not installed.
    pub async fn start(targets: &[(&str, SocketAddr)]) -> Option<Self> {
        Self::start_with_rules(targets, &[]).await
    }

    /// [`PrometheusServer::start`], also evaluating the recording and alerting rules of
    /// `rule_files` every second (alerts are then in the `ALERTS` series).
    pub async fn start_with_rules(
        targets: &[(&str, SocketAddr)],
        rule_files: &[&Path],
    ) -> Option<Self> {
        if !programs::available("prometheus", "prometheus") {
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, config_yaml(targets, rule_files)).expect("write prometheus.yml");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start prometheus: {e}"));
        let mut server = Self {
            addr,
            jobs: targets.iter().map(|(job, _)| (*job).to_owned()).collect(),
            child,
            _dir: dir,
        };
        server.wait_ready().await;
        Some(server)
    }

    async fn wait_ready(&mut self) {
        let give_up = tokio::time::Instant::now() + READY_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll prometheus") {
                panic!("prometheus exited before it was ready ({status}); its log is above");
            }
            // Refused until it listens; `clients::get` would panic on that.
            let listening = tokio::net::TcpStream::connect(self.addr).await.is_ok();
            let ready = listening
                && clients::get(self.addr, "/-/ready", "prometheus")
                    .await
                    .is_ok_and(|reply| reply.status == 200);
            if ready {
                return;
            }
            if tokio::time::Instant::now() >= give_up {
                panic!(
                    "prometheus on {} was not ready within {READY_DEADLINE:?}",
                    self.addr
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every target has been scraped successfully (`up == 1` for each job).
    pub async fn wait_up(&self, deadline: Duration) {
        let jobs = self.jobs.clone();
        self.wait_for(
            "up",
            |samples| {
                jobs.iter().all(|job| {
                    samples
                        .iter()
                        .any(|(labels, value)| labels.get("job") == Some(job) && *value == 1.0)
                })
            },
            deadline,
        )
        .await;
    }

    /// The instant vector `promql` evaluates to now; panics with Prometheus's answer if the
    /// query fails or is not a vector.
    pub async fn query(&self, promql: &str) -> Vec<Sample> {
        let path = format!("/api/v1/query?query={}", percent_encode(promql));
        let reply = clients::get(self.addr, &path, "prometheus")
            .await
            .unwrap_or_else(|e| panic!("GET {path} from prometheus: {e}"));
        let answer: Value = serde_json::from_str(&reply.body).unwrap_or_else(|e| {
            panic!(
                "prometheus answered {promql:?} with {} and no JSON ({e}): {}",
                reply.status, reply.body
            )
        });
        if reply.status != 200 || answer["status"] != "success" {
            panic!(
                "prometheus refused {promql:?} ({}): {}",
                reply.status, reply.body
            );
        }
        if answer["data"]["resultType"] != "vector" {
            panic!("{promql:?} is not an instant vector: {}", reply.body);
        }
        answer["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|series| sample(series, promql, &reply.body))
            .collect()
    }

    /// Polls `promql` until `done` holds for its result and returns that result; panics with
    /// the last result if `deadline` passes first.
    pub async fn wait_for(
        &self,
        promql: &str,
        mut done: impl FnMut(&[Sample]) -> bool,
        deadline: Duration,
    ) -> Vec<Sample> {
        let give_up = tokio::time::Instant::now() + deadline;
        loop {
            let samples = self.query(promql).await;
            if done(&samples) {
                return samples;
            }
            if tokio::time::Instant::now() >= give_up {
                panic!(
                    "timed out after {deadline:?} waiting on {promql:?}; last result: {samples:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A configuration scraping every target each second (the timeout may not exceed the interval)
/// and evaluating `rule_files` as often.
fn config_yaml(targets: &[(&str, SocketAddr)], rule_files: &[&Path]) -> String {
    let mut yaml = String::from(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n",
    );
    if !rule_files.is_empty() {
        yaml.push_str("rule_files:\n");
        for file in rule_files {
            yaml.push_str(&format!("  - {:?}\n", file.display().to_string()));
        }
    }
    yaml.push_str("scrape_configs:\n");
    for (job, addr) in targets {
        yaml.push_str(&format!(
            "  - job_name: {job:?}\n    static_configs:\n      - targets: [\"{addr}\"]\n"
        ));
    }
    yaml
}

/// One `{"metric": {...}, "value": [time, "value"]}` of a vector result.
fn sample(series: &Value, promql: &str, body: &str) -> Sample {
    let labels = series["metric"]
        .as_object()
        .unwrap_or_else(|| panic!("a series of {promql:?} has no labels: {body}"))
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    let value = series["value"][1]
        .as_str()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("a series of {promql:?} has no value: {body}"));
    (labels, value)
}

/// `text` for a URL query parameter: unreserved characters as they are, every other byte as
/// `%XX`.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promql_is_percent_encoded_and_targets_become_jobs() {
        assert_eq!(
            percent_encode(r#"sum(x{a="b c"}) > 1"#),
            "sum%28x%7Ba%3D%22b%20c%22%7D%29%20%3E%201"
        );
        let yaml = config_yaml(&[("control-plane", "127.0.0.1:9".parse().unwrap())], &[]);
        assert!(yaml.contains(
            "  - job_name: \"control-plane\"\n    static_configs:\n      - targets: [\"127.0.0.1:9\"]\n"
        ));
    }
}

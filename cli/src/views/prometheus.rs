//! The Prometheus source: instant queries over its HTTP API (`/api/v1/query`), increases over
//! the window, per-sidecar gauges joined with `weft_identity_info` on `instance` and `job` to
//! learn whose they are. Latency quantiles come from the bucket increases (see
//! [`super::golden`]), exactly as `histogram_quantile` would compute them.
//!
//! Prometheus knows what the metrics say; breaker states are `ejected` or `closed`, and EWMA
//! latencies, policy versions and fault drills in force need the sidecars themselves.

use std::collections::BTreeMap;
use std::time::Duration;

use super::golden::{add_bucket, parse_le};
use super::http_get::{self, percent_encode};
use super::window::{Histogram, Sample, Window};

const REQUEST_LABELS: &str = "direction, source_identity, destination_identity, \
                              destination_service, route, status_code, grpc_status, answered_by";
const BUCKET_LABELS: &str = "direction, source_identity, destination_identity, \
                             destination_service, route, answered_by, le";
const OWNED: &str = "* on (instance, job) group_left (identity) weft_identity_info";

/// One window ending now, read from the Prometheus server at `url` (`http://host:port`).
pub async fn window(url: &str, window: Duration) -> Result<Window, String> {
    let (authority, prefix) = http_get::split_url(url)?;
    let w = format!("{}s", window.as_secs().max(1));
    let queries = [
        format!("sum by ({REQUEST_LABELS}) (increase(weft_requests_total[{w}]))"),
        format!("sum by ({BUCKET_LABELS}) (increase(weft_request_duration_seconds_bucket[{w}]))"),
        format!("sum by (destination, route, reason) (increase(weft_outbound_retries_total[{w}]))"),
        format!(
            "sum by (destination, route) (increase(weft_outbound_retry_budget_exhausted_total[{w}]))"
        ),
        format!("sum by (direction, identity) (weft_tcp_connections_open {OWNED})"),
        "weft_identity_info".to_owned(),
        format!(
            "max by (identity, destination, endpoint) (weft_outbound_endpoint_ejected {OWNED})"
        ),
        format!(
            "sum by (identity, route, kind) (increase(weft_inbound_faults_injected_total[{w}]) {OWNED})"
        ),
    ];
    let answers = futures_join(queries.iter().map(|q| query(&authority, &prefix, q))).await;
    let mut out = Window {
        seconds: window.as_secs().max(1) as f64,
        end_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
        ..Window::default()
    };
    let mut results = Vec::new();
    for answer in answers {
        let (samples, time) = answer?;
        if time > 0.0 {
            out.end_unix = time;
        }
        results.push(samples);
    }
    let mut results = results.into_iter();
    let mut next = || results.next().unwrap_or_default();
    out.requests = next();
    out.latency = histograms(next());
    out.retries = next();
    out.budget_exhausted = next();
    out.tcp_open = next();
    out.sidecars = next();
    out.ejected = next();
    out.faults_injected = next();
    Ok(out)
}

/// Runs every query at once; the answers in order.
async fn futures_join<F>(
    futures: impl Iterator<Item = F>,
) -> Vec<Result<(Vec<Sample>, f64), String>>
where
    F: std::future::Future<Output = Result<(Vec<Sample>, f64), String>> + Send + 'static,
{
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(
            task.await
                .unwrap_or_else(|e| Err(format!("a query failed: {e}"))),
        );
    }
    out
}

/// Bucket series (`le` among their labels) as one histogram per label set.
fn histograms(buckets: Vec<Sample>) -> Vec<Histogram> {
    type LabelList = Vec<(String, String)>;
    let mut by_labels: BTreeMap<LabelList, Vec<(f64, f64)>> = BTreeMap::new();
    for sample in buckets {
        let Some(bound) = parse_le(sample.label("le")) else {
            continue;
        };
        let labels: Vec<(String, String)> = sample
            .labels
            .iter()
            .filter(|(k, _)| k != "le")
            .cloned()
            .collect();
        add_bucket(by_labels.entry(labels).or_default(), bound, sample.value);
    }
    by_labels
        .into_iter()
        .map(|(labels, buckets)| Histogram {
            labels: labels.into(),
            buckets,
        })
        .collect()
}

/// The instant vector `promql` evaluates to, and the evaluation time; errors name the query.
fn query(
    authority: &str,
    prefix: &str,
    promql: &str,
) -> impl std::future::Future<Output = Result<(Vec<Sample>, f64), String>> + Send + 'static {
    let authority = authority.to_owned();
    let path = format!("{prefix}/api/v1/query?query={}", percent_encode(promql));
    let promql = promql.to_owned();
    async move {
        let (status, body) = http_get::get(&authority, &path).await?;
        let answer: serde_json::Value = serde_json::from_str(&body).map_err(|e| {
            format!("Prometheus at {authority} answered {status} and no JSON ({e}) to {promql}")
        })?;
        if status != 200 || answer["status"] != "success" {
            return Err(format!(
                "Prometheus at {authority} refused {promql}: {status} {}",
                answer["error"].as_str().unwrap_or(&body)
            ));
        }
        parse_vector(&answer["data"]).map_err(|e| format!("{promql}: {e}"))
    }
}

/// `{"resultType": "vector", "result": [{"metric": {...}, "value": [t, "v"]}]}`.
fn parse_vector(data: &serde_json::Value) -> Result<(Vec<Sample>, f64), String> {
    if data["resultType"] != "vector" {
        return Err(format!("not an instant vector: {data}"));
    }
    let mut time = 0.0_f64;
    let mut samples = Vec::new();
    for series in data["result"].as_array().into_iter().flatten() {
        let labels: Vec<(String, String)> = series["metric"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        let value = series["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| format!("a series without a value: {series}"))?;
        time = time.max(series["value"][0].as_f64().unwrap_or(0.0));
        if value.is_finite() {
            samples.push(Sample {
                labels: labels.into(),
                value,
            });
        }
    }
    Ok((samples, time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_instant_vector() {
        let data = serde_json::json!({"resultType": "vector", "result": [
            {"metric": {"route": "default"}, "value": [1765000000.5, "2.5"]},
            {"metric": {}, "value": [1765000000.5, "NaN"]},
        ]});
        let (samples, time) = parse_vector(&data).unwrap();
        assert_eq!(time, 1765000000.5);
        assert_eq!(samples.len(), 1);
        assert_eq!(samples[0].label("route"), "default");
        assert_eq!(samples[0].value, 2.5);
        assert!(parse_vector(&serde_json::json!({"resultType": "matrix"})).is_err());
    }
}

//! The golden signals of a set of request series over a window: how many, how fast, how many
//! succeeded, and the latency quantiles, computed from the histogram buckets exactly as
//! Prometheus's `histogram_quantile` does (linear interpolation inside the bucket).
//!
//! A request fails when its status is 5xx, when it has no status (the caller gave up before
//! the answer: `status_code="0"`), or when a gRPC status other than `0` (OK) ended it.

use serde::Serialize;

use super::window::Sample;

/// Rate, success and latency of some requests over the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Golden {
    /// Requests completed in the window (an increase: whole when read from sidecars,
    /// extrapolated by Prometheus's `increase`).
    pub requests: f64,
    pub requests_per_second: f64,
    /// Successful share of `requests` in 0..=1; `null` without requests.
    pub success_rate: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// Whether a `weft_requests_total` series counts failures.
pub fn is_failure(sample: &Sample) -> bool {
    let status = sample.label("status_code");
    let grpc = sample.label("grpc_status");
    status.starts_with('5') || status == "0" || (!grpc.is_empty() && grpc != "0")
}

impl Golden {
    /// The signals of `requests` (series of `weft_requests_total`) and their latency
    /// `histogram` (see [`add_bucket`]) over `seconds`.
    pub fn of<'a>(
        requests: impl IntoIterator<Item = &'a Sample>,
        histogram: &[(f64, f64)],
        seconds: f64,
    ) -> Self {
        let (mut total, mut failed) = (0.0, 0.0);
        for sample in requests {
            total += sample.value;
            if is_failure(sample) {
                failed += sample.value;
            }
        }
        let mut histogram = histogram.to_vec();
        histogram.sort_by(|a, b| a.0.total_cmp(&b.0));
        let ms = |q: f64| quantile(q, &histogram).map(|s| round3(s * 1000.0));
        Golden {
            requests: round3(total),
            requests_per_second: if seconds > 0.0 {
                round3(total / seconds)
            } else {
                0.0
            },
            success_rate: (total > 0.0).then(|| round6((total - failed) / total)),
            p50_ms: ms(0.5),
            p95_ms: ms(0.95),
            p99_ms: ms(0.99),
        }
    }
}

/// A bucket's `le` as a bound (`+Inf` is infinite); `None` if it is no number.
pub fn parse_le(le: &str) -> Option<f64> {
    match le {
        "+Inf" => Some(f64::INFINITY),
        other => other.parse::<f64>().ok(),
    }
}

/// Adds a bucket (its bound and cumulative count) to a histogram of `(upper bound, cumulative
/// count)`, in any order; buckets of the same bound add up.
pub fn add_bucket(histogram: &mut Vec<(f64, f64)>, bound: f64, value: f64) {
    match histogram.iter_mut().find(|(b, _)| *b == bound) {
        Some((_, count)) => *count += value,
        None => histogram.push((bound, value)),
    }
}

/// `histogram_quantile(q, …)` over cumulative buckets sorted by bound; `None` without
/// observations.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let &(last_le, total) = buckets.last()?;
    if !last_le.is_infinite() || total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let i = buckets.iter().position(|&(_, count)| count >= rank)?;
    if i == buckets.len() - 1 {
        // In the +Inf bucket: the highest finite bound, as Prometheus answers.
        return Some(if i == 0 { 0.0 } else { buckets[i - 1].0 });
    }
    let (end, count) = buckets[i];
    let (start, below) = if i == 0 {
        (0.0_f64.min(end), 0.0)
    } else {
        buckets[i - 1]
    };
    if count == below {
        return Some(end);
    }
    Some(start + (end - start) * (rank - below) / (count - below))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(labels: &[(&str, &str)], value: f64) -> Sample {
        Sample {
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>()
                .into(),
            value,
        }
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket_as_prometheus_does() {
        // 10 observations ≤ 1 ms, 10 more ≤ 5 ms, none slower.
        let buckets = [(0.001, 10.0), (0.005, 20.0), (f64::INFINITY, 20.0)];
        assert_eq!(quantile(0.5, &buckets), Some(0.001));
        assert_eq!(quantile(0.25, &buckets), Some(0.0005));
        assert!((quantile(0.75, &buckets).unwrap() - 0.003).abs() < 1e-12);
        // Beyond the last finite bound: that bound.
        assert_eq!(
            quantile(0.99, &[(0.1, 1.0), (f64::INFINITY, 10.0)]),
            Some(0.1)
        );
        assert_eq!(quantile(0.5, &[(0.1, 0.0), (f64::INFINITY, 0.0)]), None);
        assert_eq!(quantile(0.5, &[]), None);
    }

    #[test]
    fn success_counts_5xx_unanswered_and_grpc_errors_as_failures() {
        let requests = [
            sample(&[("status_code", "200"), ("grpc_status", "")], 6.0),
            sample(&[("status_code", "404"), ("grpc_status", "")], 1.0),
            sample(&[("status_code", "503"), ("grpc_status", "")], 1.0),
            sample(&[("status_code", "0"), ("grpc_status", "")], 1.0),
            sample(&[("status_code", "200"), ("grpc_status", "14")], 1.0),
        ];
        let mut histogram = Vec::new();
        add_bucket(&mut histogram, f64::INFINITY, 10.0);
        add_bucket(&mut histogram, 0.001, 4.0);
        add_bucket(&mut histogram, 0.001, 6.0);
        assert_eq!(parse_le("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_le("0.001"), Some(0.001));
        assert_eq!(parse_le("bogus"), None);
        let golden = Golden::of(&requests, &histogram, 5.0);
        assert_eq!(golden.requests, 10.0);
        assert_eq!(golden.requests_per_second, 2.0);
        assert_eq!(golden.success_rate, Some(0.7));
        assert_eq!(golden.p50_ms, Some(0.5));
        assert_eq!(golden.p99_ms, Some(0.99));
        assert_eq!(Golden::of([], &[], 5.0).success_rate, None);
    }
}

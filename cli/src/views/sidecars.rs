//! The direct source: sidecars' admin ports, given as addresses or reached through the
//! Kubernetes API server's pod proxy (as `weft check --proxy` does). Each read takes
//! `/metrics` (only the families the views use are kept), `/destinations` and `/inbound`; two
//! reads make a [`Window`] from the counters' deltas. Sidecars are read concurrently, each
//! within [`super::http_get::TIMEOUT`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use super::golden::parse_le;
use super::http_get;
use super::window::{Histogram, Labels, OWNER, Sample, SidecarDetails, Window};
use crate::prometheus_text;

/// Where a sidecar's admin port is.
#[derive(Clone)]
pub enum Sidecar {
    /// `host:port`.
    Addr(String),
    /// A pod, through `/api/v1/namespaces/NS/pods/NAME:15000/proxy`.
    Pod {
        client: kube::Client,
        namespace: String,
        name: String,
    },
}

impl Sidecar {
    pub fn name(&self) -> String {
        match self {
            Sidecar::Addr(addr) => addr.clone(),
            Sidecar::Pod {
                namespace, name, ..
            } => format!("{namespace}/{name}"),
        }
    }

    /// The body of `GET path` (a 200), or a sentence naming the sidecar.
    pub async fn get(&self, path: &str) -> Result<String, String> {
        let (status, body) = match self {
            Sidecar::Addr(addr) => http_get::get(addr, path).await?,
            Sidecar::Pod {
                client,
                namespace,
                name,
            } => {
                let url = format!("/api/v1/namespaces/{namespace}/pods/{name}:15000/proxy{path}");
                let request = http::Request::get(url)
                    .body(Vec::new())
                    .map_err(|e| e.to_string())?;
                let text = tokio::time::timeout(http_get::TIMEOUT, client.request_text(request))
                    .await
                    .map_err(|_| format!("{}{path}: no answer in time", self.name()))?
                    .map_err(|e| format!("{}{path}: {e}", self.name()))?;
                (200, text)
            }
        };
        if status != 200 {
            return Err(format!("{}{path}: status {status}", self.name()));
        }
        Ok(body)
    }
}

/// Metric families a read keeps: counters (deltas) and gauges (now).
const COUNTERS: [&str; 4] = [
    "weft_requests_total",
    "weft_outbound_retries_total",
    "weft_outbound_retry_budget_exhausted_total",
    "weft_inbound_faults_injected_total",
];
const GAUGES: [&str; 3] = [
    "weft_tcp_connections_open",
    "weft_identity_info",
    "weft_outbound_endpoint_ejected",
];

/// One family's series in the order the sidecar wrote them, each with its text
/// (`name{labels}`), which identifies it from read to read.
type Family = Vec<(Arc<str>, Sample)>;

/// One family's series in the order the sidecar wrote them, shared with the next read.
type Families = HashMap<&'static str, Arc<Family>>;

/// The latency histograms, by the text of their series without `le`, in the order written.
type Histograms = Arc<Vec<(Arc<str>, Histogram)>>;

/// The latency buckets' family: its lines are gathered into [`Histogram`]s as they are read.
const BUCKETS: &str = "weft_request_duration_seconds_bucket";

/// One read of one sidecar.
///
/// A sidecar writes its series in the same order every time, and they change rarely: a read
/// matches each line with the previous read's series at the same place (a comparison, no
/// hashing) and reuses its parsed labels; deltas match series the same way. Only series that
/// moved are parsed again or looked up by their text.
#[derive(Debug, Clone)]
pub struct Read {
    sidecar: String,
    at: Instant,
    unix: f64,
    series: Families,
    histograms: Histograms,
    details: SidecarDetails,
}

/// Reads every sidecar at once (reusing the labels of its read in `previous`): the reads that
/// worked, and a sentence for each that did not.
pub async fn read_all(sidecars: &[Sidecar], previous: &[Read]) -> (Vec<Read>, Vec<String>) {
    let reads = sidecars.iter().map(|s| {
        let s = s.clone();
        let name = s.name();
        let cache = previous
            .iter()
            .find(|r| r.sidecar == name)
            .map(|r| (r.series.clone(), r.histograms.clone()));
        tokio::spawn(async move { read(&s, cache).await })
    });
    let (mut ok, mut errors) = (Vec::new(), Vec::new());
    for task in reads.collect::<Vec<_>>() {
        match task.await {
            Ok(Ok(read)) => ok.push(read),
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(format!("a read failed: {e}")),
        }
    }
    (ok, errors)
}

async fn read(sidecar: &Sidecar, previous: Option<(Families, Histograms)>) -> Result<Read, String> {
    let (metrics, destinations, inbound) = tokio::join!(
        sidecar.get("/metrics"),
        sidecar.get("/destinations"),
        sidecar.get("/inbound")
    );
    let metrics = metrics?;
    let json = |body: Result<String, String>| {
        body.ok()
            .and_then(|b| serde_json::from_str(&b).ok())
            .unwrap_or(serde_json::Value::Null)
    };
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let identity = metrics
        .lines()
        .find(|l| l.starts_with("weft_identity_info{"))
        .and_then(|line| {
            let (_, labels) = prometheus_text::split(line.rsplit_once(' ')?.0);
            prometheus_text::label_value(&labels, "identity").map(str::to_owned)
        })
        .ok_or_else(|| format!("{}: /metrics has no weft_identity_info", sidecar.name()))?;
    let (previous_series, previous_histograms) = previous.unzip();
    let mut series: HashMap<&'static str, Family> = HashMap::new();
    let mut histograms: Vec<(Arc<str>, Histogram)> = Vec::new();
    for line in metrics.lines().filter(|l| l.starts_with("weft_")) {
        let Some((text, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let name = text.split_once('{').map_or(text, |(n, _)| n);
        if name == BUCKETS {
            let Some((base, bound)) = split_le(text) else {
                continue;
            };
            match histograms.last_mut() {
                Some((key, histogram)) if **key == *base => histogram.buckets.push((bound, value)),
                _ => {
                    let same_place = previous_histograms
                        .as_ref()
                        .and_then(|p| p.get(histograms.len()))
                        .filter(|(key, _)| **key == *base);
                    let (key, labels) = match same_place {
                        Some((key, h)) => (key.clone(), h.labels.clone()),
                        None => (
                            Arc::from(base),
                            parse_labels(&format!("{base}}}"), &identity),
                        ),
                    };
                    let buckets = vec![(bound, value)];
                    histograms.push((key, Histogram { labels, buckets }));
                }
            }
            continue;
        }
        let Some(family) = COUNTERS.iter().chain(&GAUGES).find(|f| **f == name) else {
            continue;
        };
        let family_now = series.entry(family).or_default();
        let same_place = previous_series
            .as_ref()
            .and_then(|p| p.get(family)?.get(family_now.len()))
            .filter(|(key, _)| **key == *text);
        let (key, labels) = match same_place {
            Some((key, sample)) => (key.clone(), sample.labels.clone()),
            None => (Arc::from(text), parse_labels(text, &identity)),
        };
        family_now.push((key, Sample { labels, value }));
    }
    Ok(Read {
        sidecar: sidecar.name(),
        at: Instant::now(),
        unix,
        details: SidecarDetails {
            identity,
            destinations: json(destinations),
            inbound: json(inbound),
        },
        series: series.into_iter().map(|(f, v)| (f, Arc::new(v))).collect(),
        histograms: Arc::new(histograms),
    })
}

/// `name{a="b",le="0.001"}` → (`name{a="b"`, 0.001): the series without its `le` (the text
/// that identifies its histogram, unclosed) and the bound.
fn split_le(text: &str) -> Option<(&str, f64)> {
    let (base, rest) = match text.rfind(",le=\"") {
        Some(i) => (&text[..i], &text[i + 5..]),
        None => {
            let i = text.find("{le=\"")?;
            (&text[..i + 1], &text[i + 5..])
        }
    };
    let le = rest.strip_suffix("\"}")?;
    Some((base, parse_le(le)?))
}

/// `name{labels}`'s labels, with [`OWNER`] naming the sidecar.
fn parse_labels(text: &str, identity: &str) -> Labels {
    let mut labels = prometheus_text::split(text).1;
    if !labels.iter().any(|(name, _)| name == OWNER) {
        labels.push((OWNER.to_owned(), identity.to_owned()));
    }
    Arc::new(labels)
}

/// The window from `before` to `after`: counter deltas of sidecars read both times (a counter
/// that went down restarted: its new value is the delta), gauges and details from `after`.
/// Series that did not change stay, with 0: an idle edge is still an edge.
pub fn window(before: &[Read], after: &[Read], errors: Vec<String>) -> Window {
    let mut window = Window {
        errors,
        ..Window::default()
    };
    let mut seconds = Vec::new();
    for now in after {
        window.details.push(now.details.clone());
        window.end_unix = window.end_unix.max(now.unix);
        let gauges = |family| {
            now.series
                .get(family)
                .into_iter()
                .flat_map(|f| f.iter())
                .map(|(_, s)| s.clone())
        };
        window.tcp_open.extend(gauges("weft_tcp_connections_open"));
        window.sidecars.extend(gauges("weft_identity_info"));
        window
            .ejected
            .extend(gauges("weft_outbound_endpoint_ejected"));
        let Some(then) = before.iter().find(|b| b.sidecar == now.sidecar) else {
            continue;
        };
        seconds.push(now.at.duration_since(then.at).as_secs_f64());
        for family in COUNTERS {
            let empty = Family::new();
            let was = then.series.get(family).map_or(&empty, |f| f);
            let now_family = now.series.get(family).map_or(&empty, |f| f);
            let mut by_text: Option<HashMap<&str, f64>> = None;
            let deltas = now_family.iter().enumerate().map(|(i, (key, s))| {
                let before = match was.get(i) {
                    Some((k, old)) if Arc::ptr_eq(k, key) || k == key => old.value,
                    _ => {
                        let index = by_text.get_or_insert_with(|| {
                            was.iter().map(|(k, old)| (&**k, old.value)).collect()
                        });
                        index.get(&**key).copied().unwrap_or(0.0)
                    }
                };
                let delta = if s.value >= before {
                    s.value - before
                } else {
                    s.value
                };
                Sample {
                    labels: s.labels.clone(),
                    value: delta,
                }
            });
            let target = match family {
                "weft_requests_total" => &mut window.requests,
                "weft_outbound_retries_total" => &mut window.retries,
                "weft_outbound_retry_budget_exhausted_total" => &mut window.budget_exhausted,
                _ => &mut window.faults_injected,
            };
            target.extend(deltas);
        }
        window
            .latency
            .extend(latency_deltas(&then.histograms, &now.histograms));
    }
    // Sidecars are read together, so their intervals barely differ: the mean is the window.
    if !seconds.is_empty() {
        window.seconds = seconds.iter().sum::<f64>() / seconds.len() as f64;
    }
    window
}

/// Each histogram of `now` less its buckets in `was` (matched by place, else by text; a bucket
/// that went down restarted).
fn latency_deltas(was: &Histograms, now: &Histograms) -> Vec<Histogram> {
    let mut by_text: Option<HashMap<&str, &Histogram>> = None;
    now.iter()
        .enumerate()
        .map(|(i, (key, histogram))| {
            let before = match was.get(i) {
                Some((k, old)) if Arc::ptr_eq(k, key) || k == key => Some(old),
                _ => by_text
                    .get_or_insert_with(|| was.iter().map(|(k, h)| (&**k, h)).collect())
                    .get(&**key)
                    .copied(),
            };
            let buckets = histogram
                .buckets
                .iter()
                .enumerate()
                .map(|(b, &(bound, count))| {
                    let old = before
                        .and_then(|h| h.buckets.get(b))
                        .filter(|(old_bound, _)| *old_bound == bound)
                        .map_or(0.0, |(_, c)| *c);
                    (bound, if count >= old { count - old } else { count })
                })
                .collect();
            Histogram {
                labels: histogram.labels.clone(),
                buckets,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_lines_split_into_their_series_and_bound() {
        assert_eq!(
            split_le(r#"h_bucket{a="b",le="0.001"}"#),
            Some((r#"h_bucket{a="b""#, 0.001))
        );
        assert_eq!(
            split_le(r#"h_bucket{le="+Inf"}"#),
            Some(("h_bucket{", f64::INFINITY))
        );
        assert_eq!(split_le(r#"h_bucket{a="b"}"#), None);
    }
}

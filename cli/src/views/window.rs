//! What every view is computed from: the series of a time window, whichever source read them.
//!
//! A Prometheus server answers `increase(...[window])` per series; sidecars read directly give
//! two scrapes whose counter deltas are the same thing. Both sources fill a [`Window`], and one
//! builder ([`super::snapshot`]) turns it into the numbers a person reads, so a view shows the
//! same numbers from either source.

use std::sync::Arc;

/// A series' labels, shared: a sidecar's series keep the same labels from read to read. A list,
/// not a map: a series has ten labels at most, and a scan that compares lengths first is
/// cheaper than a tree's string comparisons.
pub type Labels = Arc<Vec<(String, String)>>;

/// One series: its labels and a value (an increase over the window, or a gauge now).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
}

impl Sample {
    /// The value of `label`, `""` when the series does not have it.
    pub fn label(&self, label: &str) -> &str {
        label_value(&self.labels, label)
    }
}

/// One latency histogram (`weft_request_duration_seconds`): its labels (without `le`) and its
/// buckets, `(upper bound, cumulative count)` in the order written (ascending bounds).
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    pub labels: Labels,
    pub buckets: Vec<(f64, f64)>,
}

impl Histogram {
    pub fn label(&self, label: &str) -> &str {
        label_value(&self.labels, label)
    }
}

fn label_value<'a>(labels: &'a Labels, label: &str) -> &'a str {
    labels
        .iter()
        .find(|(name, _)| name == label)
        .map_or("", |(_, value)| value.as_str())
}

/// Label holding the identity of the sidecar a per-sidecar series came from (the `identity` of
/// its `weft_identity_info`).
pub const OWNER: &str = "identity";

/// The families the views read, over one window.
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// How long the window was, in seconds (rates are increases divided by this).
    pub seconds: f64,
    /// Unix time of the window's end.
    pub end_unix: f64,
    /// `weft_requests_total`, increase over the window.
    pub requests: Vec<Sample>,
    /// `weft_request_duration_seconds` histograms, their buckets' increases over the window.
    pub latency: Vec<Histogram>,
    /// `weft_outbound_retries_total`, increase.
    pub retries: Vec<Sample>,
    /// `weft_outbound_retry_budget_exhausted_total`, increase.
    pub budget_exhausted: Vec<Sample>,
    /// `weft_tcp_connections_open` now, with [`OWNER`].
    pub tcp_open: Vec<Sample>,
    /// `weft_identity_info` now: one per sidecar.
    pub sidecars: Vec<Sample>,
    /// `weft_outbound_endpoint_ejected` now, with [`OWNER`].
    pub ejected: Vec<Sample>,
    /// `weft_inbound_faults_injected_total`, increase, with [`OWNER`].
    pub faults_injected: Vec<Sample>,
    /// What only the sidecars' admin endpoints say (direct source only).
    pub details: Vec<SidecarDetails>,
    /// Sources that could not be read, each a sentence naming it.
    pub errors: Vec<String>,
}

/// One sidecar's `/destinations` and `/inbound`: breaker states, EWMA latencies, versions and
/// fault drills in force.
#[derive(Debug, Clone, Default)]
pub struct SidecarDetails {
    pub identity: String,
    pub destinations: serde_json::Value,
    pub inbound: serde_json::Value,
}

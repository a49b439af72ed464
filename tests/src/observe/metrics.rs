//! The one Prometheus-text reader of the tests, on top of the parser `weft demo` uses, so a test
//! reads `/metrics` exactly as the demo report does.
//!
//! A series is written `name` or `name{label="value",...}`. Labels given must match, labels not
//! given may be anything, and the values of every matching series are added up. Histograms: ask
//! for `name_count` or `name_sum`.

use std::net::SocketAddr;

use weft_cli::prometheus_text;
use weft_proxy::RunningProxy;

use crate::clients;

/// The value of `series` in Prometheus text: every matching series added up, 0 when none matches.
pub fn metric_in(text: &str, series: &str) -> f64 {
    find_metric(text, series).unwrap_or(0.0)
}

/// [`metric_in`], but `None` when no series matches (for "is it exposed at all").
pub fn find_metric(text: &str, series: &str) -> Option<f64> {
    let (name, wanted) = prometheus_text::split(series);
    let wanted: Vec<(&str, &str)> = wanted
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    prometheus_text::series(text, name, &wanted)
        .map(|(_, value)| value)
        .reduce(|sum, value| sum + value)
}

/// `GET /metrics` from the admin server at `admin` (a proxy's or the control plane's), read over
/// HTTP as Prometheus would.
pub async fn scrape(admin: SocketAddr) -> String {
    let reply = clients::get(admin, "/metrics", "admin")
        .await
        .unwrap_or_else(|e| panic!("GET {admin}/metrics: {e}"));
    assert_eq!(reply.status, 200, "GET {admin}/metrics: {}", reply.body);
    reply.body
}

/// [`metric_in`] over the admin server at `admin`.
pub async fn metric_at(admin: SocketAddr, series: &str) -> f64 {
    metric_in(&scrape(admin).await, series)
}

/// [`metric_in`] over a proxy's `/metrics`.
pub async fn metric(proxy: &RunningProxy, series: &str) -> f64 {
    metric_at(proxy.admin_addr, series).await
}

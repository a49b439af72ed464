//! Telemetry checked against its consumers: request and connection metrics through promtool and
//! a real Prometheus, traces through an OTLP collector and the OpenTelemetry SDK, access and
//! proxy logs, tap streams read by a client and by `weft tap`, and the Grafana dashboards and
//! alerting rules of `manifests/monitoring/`.

// A failed step fails the test on the spot, with its message.
#![allow(clippy::unwrap_used)]

mod connection_metrics;
mod dashboard;
mod monitoring;
mod monitoring_live;
mod proxy_log;
mod tap;
mod tap_access;
mod telemetry;
mod telemetry_peers;
mod views;

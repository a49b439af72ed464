//! Telemetry checked against its consumers: request and connection metrics through promtool and
//! a real Prometheus, traces through an OTLP collector and the OpenTelemetry SDK, access and
//! proxy logs.

// A failed step fails the test on the spot, with its message.
#![allow(clippy::unwrap_used)]

mod connection_metrics;
mod dashboard;
mod proxy_log;
mod telemetry;
mod telemetry_peers;
mod views;

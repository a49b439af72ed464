//! What weft reports, read the way its consumers read it: metrics through one Prometheus-text
//! reader ([`metrics`]) and a real Prometheus server ([`prometheus_server`]), traces through an
//! OTLP collector and the OpenTelemetry SDK ([`otlp`]); the dashboards and alerting rules of
//! `manifests/monitoring/` as the queries they run ([`monitoring`]); `weft dashboard` through
//! headless Chromium ([`chromium`]). Log lines are read from the processes that wrote them
//! ([`crate::process::logged_process`]).

pub mod chromium;
pub mod metrics;
pub mod monitoring;
pub mod otlp;
pub mod prometheus_server;

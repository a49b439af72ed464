//! The golden signals of every HTTP and gRPC request: `weft_requests_total` and
//! `weft_request_duration_seconds`, with the same labels, on both sides of a hop.
//!
//! | label | inbound (the server's sidecar) | outbound (the caller's sidecar) |
//! |---|---|---|
//! | `direction` | `inbound` | `outbound` |
//! | `source_identity` | the caller's proven identity, or `unauthenticated` | this proxy's |
//! | `destination_identity` | this proxy's | the endpoint's proven identity (`""`: none) |
//! | `destination_service` | the port's service in discovery (`""`: none) | the destination |
//! | `route` | the server policy's route | the client policy's route, or the Gateway API rule |
//! | `backend` | `""` | the Gateway API backend the rule chose (`""`: the service has no routes) |
//! | `status_code` | the HTTP status sent to the caller | the same |
//! | `grpc_status` | from headers or trailers; `""` if not gRPC or none | the same |
//! | `answered_by` | `weft` if a proxy answered (with `weft-error`), else `app` | the same |
//!
//! Every label comes from a bounded set: identities and services the mesh knows, routes the
//! policy names, status codes. Paths and addresses never become labels.
//!
//! The duration runs to the response's headers, which is the mesh hop's latency (a stream's
//! length says nothing about it); spans and access logs carry the time to the last byte.
//!
//! Looking a series up by eight labels on every request would hash them all; instead each
//! connection keeps the few series its requests use ([`SeriesCache`]).

use std::sync::Mutex;
use std::time::Duration;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
};

pub const LABELS: [&str; 9] = [
    "direction",
    "source_identity",
    "destination_identity",
    "destination_service",
    "route",
    "backend",
    "status_code",
    "grpc_status",
    "answered_by",
];

/// From 100 µs (a hop on one machine) to 30 s.
pub const DURATION_BUCKETS: [f64; 18] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 20.0, 30.0,
];

#[derive(Clone)]
pub struct RequestFamilies {
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
}

impl RequestFamilies {
    /// The families, added to `registry`.
    pub fn new(registry: &Registry) -> Self {
        let families = Self {
            requests: IntCounterVec::new(
                Opts::new(
                    "weft_requests_total",
                    "HTTP and gRPC requests, by direction, source and destination, route, status and who answered.",
                ),
                &LABELS,
            )
            .expect("metric definitions are valid"),
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "weft_request_duration_seconds",
                    "Time from receiving a request to sending its response headers, by the labels of weft_requests_total.",
                )
                .buckets(DURATION_BUCKETS.to_vec()),
                &LABELS,
            )
            .expect("metric definitions are valid"),
        };
        let registered = registry
            .register(Box::new(families.requests.clone()))
            .and_then(|()| registry.register(Box::new(families.duration.clone())));
        registered.expect("each metric is registered once");
        families
    }
}

/// `weft`, `app`, or `none` (the caller went away before any answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnsweredBy {
    Weft,
    App,
    Nobody,
}

impl AnsweredBy {
    pub fn label(self) -> &'static str {
        match self {
            AnsweredBy::Weft => "weft",
            AnsweredBy::App => "app",
            AnsweredBy::Nobody => "none",
        }
    }
}

/// `status_code` of a request its caller gave up on before the response headers (as Envoy and
/// Istio count a downstream disconnect).
pub const NO_STATUS: &str = "0";

/// The labels that vary from request to request on one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLabels<'a> {
    pub destination_identity: &'a str,
    pub destination_service: &'a str,
    pub route: &'a str,
    pub backend: &'a str,
    /// `None` when the caller went away before the response headers.
    pub status: Option<http::StatusCode>,
    pub grpc_status: Option<u32>,
    pub answered_by: AnsweredBy,
}

struct Entry {
    destination_identity: String,
    destination_service: String,
    route: String,
    backend: String,
    status: Option<http::StatusCode>,
    grpc_status: Option<u32>,
    answered_by: AnsweredBy,
    requests: IntCounter,
    duration: Histogram,
}

impl Entry {
    fn is(&self, labels: &RequestLabels<'_>) -> bool {
        self.status == labels.status
            && self.grpc_status == labels.grpc_status
            && self.answered_by == labels.answered_by
            && self.route == labels.route
            && self.backend == labels.backend
            && self.destination_identity == labels.destination_identity
            && self.destination_service == labels.destination_service
    }
}

/// A connection's series: the labels fixed by the connection (direction, source) and the
/// series of the label sets its requests used, up to [`SeriesCache::MAX`].
pub struct SeriesCache {
    families: RequestFamilies,
    direction: &'static str,
    source_identity: String,
    entries: Mutex<Vec<Entry>>,
}

impl SeriesCache {
    /// Label sets remembered per connection; others are looked up each time.
    pub const MAX: usize = 32;

    pub fn new(
        families: &RequestFamilies,
        direction: &'static str,
        source_identity: String,
    ) -> Self {
        Self {
            families: families.clone(),
            direction,
            source_identity,
            entries: Mutex::new(Vec::new()),
        }
    }

    pub fn source_identity(&self) -> &str {
        &self.source_identity
    }

    /// Counts one request and its time to response headers.
    pub fn record(&self, labels: &RequestLabels<'_>, headers_after: Duration) {
        let seconds = headers_after.as_secs_f64();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = entries.iter().find(|e| e.is(labels)) {
            entry.requests.inc();
            entry.duration.observe(seconds);
            return;
        }
        let grpc = labels
            .grpc_status
            .map(|c| c.to_string())
            .unwrap_or_default();
        let values = [
            self.direction,
            &self.source_identity,
            labels.destination_identity,
            labels.destination_service,
            labels.route,
            labels.backend,
            labels
                .status
                .as_ref()
                .map_or(NO_STATUS, http::StatusCode::as_str),
            &grpc,
            labels.answered_by.label(),
        ];
        let requests = self.families.requests.with_label_values(&values);
        let duration = self.families.duration.with_label_values(&values);
        requests.inc();
        duration.observe(seconds);
        if entries.len() < Self::MAX {
            entries.push(Entry {
                destination_identity: labels.destination_identity.to_owned(),
                destination_service: labels.destination_service.to_owned(),
                route: labels.route.to_owned(),
                backend: labels.backend.to_owned(),
                status: labels.status,
                grpc_status: labels.grpc_status,
                answered_by: labels.answered_by,
                requests,
                duration,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_label_set_in_its_own_series() {
        let families = RequestFamilies::new(&Registry::new());
        let cache = SeriesCache::new(&families, "inbound", "spiffe://td/ns/a/sa/b".into());
        let ok = RequestLabels {
            destination_identity: "spiffe://td/ns/a/sa/c",
            destination_service: "c.a",
            route: "default",
            backend: "",
            status: Some(http::StatusCode::OK),
            grpc_status: None,
            answered_by: AnsweredBy::App,
        };
        let refused = RequestLabels {
            status: Some(http::StatusCode::FORBIDDEN),
            answered_by: AnsweredBy::Weft,
            ..ok
        };
        for _ in 0..3 {
            cache.record(&ok, Duration::from_millis(2));
        }
        cache.record(&refused, Duration::from_micros(50));
        let get = |status: &str, by: &str| {
            families
                .requests
                .with_label_values(&[
                    "inbound",
                    "spiffe://td/ns/a/sa/b",
                    "spiffe://td/ns/a/sa/c",
                    "c.a",
                    "default",
                    "",
                    status,
                    "",
                    by,
                ])
                .get()
        };
        assert_eq!(get("200", "app"), 3);
        assert_eq!(get("403", "weft"), 1);
        let histogram = families.duration.with_label_values(&[
            "inbound",
            "spiffe://td/ns/a/sa/b",
            "spiffe://td/ns/a/sa/c",
            "c.a",
            "default",
            "",
            "200",
            "",
            "app",
        ]);
        assert_eq!(histogram.get_sample_count(), 3);
        assert!((histogram.get_sample_sum() - 0.006).abs() < 1e-9);
    }
}

//! What the proxy tells about each request: Prometheus metrics always
//! ([`request_metrics`]), an OpenTelemetry span when the request is sampled ([`sampling`],
//! [`span`], exported by [`export`]), an access log line when `--access-log` asks
//! ([`access_log`]), and a tap event while someone taps ([`tap`]). [`exchange`] follows one
//! request from arrival to its response's last byte and feeds all four from the same facts, so
//! they always agree.
//!
//! Nothing here can slow a request down for long: spans, log lines and tap events go through
//! bounded queues that drop (and count) rather than wait. With no collector configured, no trace
//! header is read or written.
//!
//! Every metric family is here too ([`metrics`]: each part of the proxy has its own struct of
//! families), and the proxy's own log ([`logging`]).

pub mod access_log;
pub mod attempts;
pub mod exchange;
pub mod export;
pub mod logging;
pub mod metrics;
pub mod request_metrics;
pub mod sampling;
pub mod span;
pub mod tap;
pub mod trace_context;

use std::sync::Arc;

use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::Resource;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use weft_certs::SpiffeId;

pub use exchange::{ConnectionTelemetry, Direction, Exchange};

/// A label value shared by every request that carries it (a service, route, rule or backend
/// name): a request takes a reference to the name its policy or route table holds, not a copy.
pub type Label = Arc<str>;
pub use request_metrics::RequestFamilies;

use crate::telemetry::metrics::Metrics;

/// `--trace-*` and `--access-log`, checked.
#[derive(Debug, Clone, Default)]
pub struct TelemetryConfig {
    /// `host:port` of an OTLP/gRPC collector; `None`: no tracing.
    pub trace_collector: Option<String>,
    /// Share of new traces recorded (0..=1).
    pub trace_sampling: f64,
    /// `service.name` of the proxy's spans; default: the workload's service account.
    pub trace_service_name: Option<String>,
    /// Added to the spans' resource (`k8s.pod.name`), from the downward API.
    pub pod_name: Option<String>,
    pub access_log: Option<access_log::Destination>,
}

pub struct Telemetry {
    /// This proxy's identity, a label of every request.
    pub identity: String,
    pub families: RequestFamilies,
    /// The open tap sessions (shared with the admin server's `GET /tap`).
    pub tap: Arc<tap::TapHub>,
    tracing: Option<Tracing>,
    access_log: Option<access_log::AccessLog>,
}

struct Tracing {
    sampler: sampling::Sampler,
    queue: export::SpanQueue,
    scope: InstrumentationScope,
}

impl Telemetry {
    /// Starts the span exporter (inside the runtime) and the access log writer. Returns the
    /// export task, which flushes the queue when `stop` fires.
    pub fn start(
        identity: &SpiffeId,
        config: &TelemetryConfig,
        metrics: &Metrics,
        tap: Arc<tap::TapHub>,
        stop: CancellationToken,
    ) -> Result<(Self, Option<JoinHandle<()>>), String> {
        let (tracing, task) = match &config.trace_collector {
            None => (None, None),
            Some(collector) => {
                let resource = resource(identity, config);
                let (queue, task) =
                    export::start(collector, &resource, metrics.trace_export.clone(), stop)?;
                let tracing = Tracing {
                    sampler: sampling::Sampler::new(config.trace_sampling),
                    queue,
                    scope: InstrumentationScope::builder("weft-proxy")
                        .with_version(env!("CARGO_PKG_VERSION"))
                        .build(),
                };
                (Some(tracing), Some(task))
            }
        };
        let access_log = match &config.access_log {
            None => None,
            Some(destination) => Some(access_log::AccessLog::open(
                destination,
                &metrics.access_log_lines,
            )?),
        };
        let telemetry = Self {
            identity: identity.to_string(),
            families: metrics.requests.clone(),
            tap,
            tracing,
            access_log,
        };
        Ok((telemetry, task))
    }
}

/// Who the spans come from: the workload's identity, namespace and service account (its
/// service, unless `--trace-service-name` says otherwise), and its pod.
fn resource(identity: &SpiffeId, config: &TelemetryConfig) -> Resource {
    let service = config
        .trace_service_name
        .clone()
        .unwrap_or_else(|| identity.service_account().to_owned());
    let mut attributes = vec![
        KeyValue::new("service.namespace", identity.namespace().to_owned()),
        KeyValue::new("k8s.namespace.name", identity.namespace().to_owned()),
        KeyValue::new("weft.identity", identity.to_string()),
        KeyValue::new("telemetry.sdk.name", "weft-proxy"),
        KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
    ];
    if let Some(pod) = &config.pod_name {
        attributes.push(KeyValue::new("k8s.pod.name", pod.clone()));
        attributes.push(KeyValue::new("service.instance.id", pod.clone()));
    }
    Resource::builder_empty()
        .with_service_name(service)
        .with_attributes(attributes)
        .build()
}

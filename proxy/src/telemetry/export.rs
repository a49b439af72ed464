//! Getting finished spans to the collector without ever making a request wait for it.
//!
//! A request hands its span to a bounded queue and goes on; when the queue is full (the
//! collector is slow, dead, or black-holes connections) the span is dropped and counted, never
//! waited for. One task takes spans off the queue in batches (up to [`MAX_BATCH`], or whatever
//! arrived within [`BATCH_DELAY`]) and sends each batch with OpenTelemetry's OTLP/gRPC exporter,
//! bounded by [`EXPORT_TIMEOUT`]; a batch that fails is dropped and counted, not retried, so a
//! collector that comes back gets current spans rather than a backlog. At shutdown the task
//! sends what is queued, within [`FLUSH_TIMEOUT`].
//!
//! We do not use the SDK's `BatchSpanProcessor`: it runs its own thread (memory in every pod)
//! and does not expose its drop count as a metric.

use std::time::Duration;

use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Spans waiting for export; past this, new spans are dropped.
pub const QUEUE_CAPACITY: usize = 2048;
pub const MAX_BATCH: usize = 512;
pub const BATCH_DELAY: Duration = Duration::from_secs(1);
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);

/// The request side of the queue.
#[derive(Clone)]
pub struct SpanQueue {
    tx: mpsc::Sender<SpanData>,
    dropped_full: IntCounter,
}

impl SpanQueue {
    /// Queues `span` for export, or drops it (counted) if the queue is full.
    pub fn push(&self, span: SpanData) {
        if self.tx.try_send(span).is_err() {
            self.dropped_full.inc();
        }
    }
}

/// Counters of the export path.
#[derive(Clone)]
pub struct ExportMetrics {
    /// `weft_trace_spans_exported_total`.
    pub exported: IntCounter,
    /// `weft_trace_spans_dropped_total{reason}`: queue_full, export_failed.
    pub dropped: IntCounterVec,
    /// `weft_trace_exports_total{result}`: ok, error, timeout.
    pub exports: IntCounterVec,
}

impl ExportMetrics {
    /// The counters, added to `registry`.
    pub fn new(registry: &Registry) -> Self {
        let metrics = Self {
            exported: IntCounter::new(
                "weft_trace_spans_exported_total",
                "Spans the trace collector accepted.",
            )
            .expect("metric definitions are valid"),
            dropped: IntCounterVec::new(
                Opts::new(
                    "weft_trace_spans_dropped_total",
                    "Spans not exported, by reason: queue_full (the collector is behind) or export_failed.",
                ),
                &["reason"],
            )
            .expect("metric definitions are valid"),
            exports: IntCounterVec::new(
                Opts::new(
                    "weft_trace_exports_total",
                    "Span batches sent to the trace collector, by result: ok, error or timeout.",
                ),
                &["result"],
            )
            .expect("metric definitions are valid"),
        };
        let registered = registry
            .register(Box::new(metrics.exported.clone()))
            .and_then(|()| registry.register(Box::new(metrics.dropped.clone())))
            .and_then(|()| registry.register(Box::new(metrics.exports.clone())));
        registered.expect("each metric is registered once");
        metrics
    }
}

/// Starts the export task for `collector` (`host:port`, OTLP over gRPC, plaintext). Must run
/// inside the runtime: tonic's channel is built on it (opentelemetry-rust#2673).
pub fn start(
    collector: &str,
    resource: &Resource,
    metrics: ExportMetrics,
    stop: CancellationToken,
) -> Result<(SpanQueue, JoinHandle<()>), String> {
    let mut exporter = SpanExporter::builder()
        .with_tonic()
        .with_endpoint(format!("http://{collector}"))
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| format!("--trace-collector {collector}: {e}"))?;
    exporter.set_resource(resource);
    let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
    let queue = SpanQueue {
        tx,
        dropped_full: metrics.dropped.with_label_values(&["queue_full"]),
    };
    let collector = collector.to_owned();
    let task = tokio::spawn(run(exporter, rx, metrics, collector, stop));
    Ok((queue, task))
}

async fn run(
    exporter: SpanExporter,
    mut rx: mpsc::Receiver<SpanData>,
    metrics: ExportMetrics,
    collector: String,
    stop: CancellationToken,
) {
    let mut failing = false;
    loop {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        tokio::select! {
            received = rx.recv_many(&mut batch, MAX_BATCH) => {
                if received == 0 {
                    break;
                }
            }
            () = stop.cancelled() => break,
        }
        // Let a batch fill for a moment, unless it is full already.
        let deadline = tokio::time::Instant::now() + BATCH_DELAY;
        while batch.len() < MAX_BATCH {
            let room = MAX_BATCH - batch.len();
            tokio::select! {
                received = rx.recv_many(&mut batch, room) => if received == 0 { break },
                () = tokio::time::sleep_until(deadline) => break,
                () = stop.cancelled() => break,
            }
        }
        let ok = export(&exporter, batch, &metrics, EXPORT_TIMEOUT).await;
        if ok == failing {
            failing = !ok;
            match failing {
                true => {
                    tracing::warn!(%collector, "cannot export spans to the trace collector; dropping them (weft_trace_spans_dropped_total) until it answers")
                }
                false => tracing::info!(%collector, "exporting spans to the trace collector again"),
            }
        }
    }
    // Shutdown: what is queued now goes out in one last try.
    rx.close();
    let mut rest = Vec::new();
    while rx.recv_many(&mut rest, QUEUE_CAPACITY).await > 0 {}
    for batch in rest.chunks(MAX_BATCH) {
        export(&exporter, batch.to_vec(), &metrics, FLUSH_TIMEOUT).await;
    }
}

/// Sends one batch; false if it was dropped.
async fn export(
    exporter: &SpanExporter,
    batch: Vec<SpanData>,
    metrics: &ExportMetrics,
    timeout: Duration,
) -> bool {
    if batch.is_empty() {
        return true;
    }
    let n = batch.len() as u64;
    let result = match tokio::time::timeout(timeout, exporter.export(batch)).await {
        Ok(Ok(())) => "ok",
        Ok(Err(e)) => {
            tracing::debug!("span export failed: {e}");
            "error"
        }
        Err(_) => "timeout",
    };
    metrics.exports.with_label_values(&[result]).inc();
    if result == "ok" {
        metrics.exported.inc_by(n);
        true
    } else {
        metrics
            .dropped
            .with_label_values(&["export_failed"])
            .inc_by(n);
        false
    }
}

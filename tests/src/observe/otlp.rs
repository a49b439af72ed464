//! Traces as their real consumers see them: an OTLP/gRPC collector and an app and client
//! instrumented with the official OpenTelemetry Python SDK (`tests/e2e/otlp_collector.py`,
//! `tests/e2e/traced_app.py`).
//!
//! The collector decodes exports with the official protobuf definitions, so a span weft sends
//! with a wrong field, id length or kind shows up here the way it would in Jaeger or Tempo. The
//! traced app and client propagate W3C context the way users' code does, so a test can check
//! that weft's spans join their traces rather than starting new ones.
//!
//! Waiting is async (a tokio sleep between polls): a proxy exporting in the same process keeps
//! running on the test's runtime while the test waits for its spans.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};
use tempfile::TempDir;

use crate::process::local_peer::python_importing;

/// How long a Python program gets to print its `ready PORT` line (imports take ~0.5 s).
const READY_DEADLINE: Duration = Duration::from_secs(15);

/// `tests/e2e/<name>`.
fn e2e_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e").join(name)
}

/// A `python3` with grpcio, the OpenTelemetry SDK and its OTLP/gRPC exporter (which brings
/// `opentelemetry-proto`), or `None` after printing why the calling test is skipped (a failure
/// under `WEFT_REQUIRE_PEERS`).
pub fn python_with_otel() -> Option<String> {
    python_importing(
        &[
            "grpc",
            "opentelemetry.sdk.trace",
            "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
            "opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc",
        ],
        "pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-grpc",
    )
}

/// One span as the collector received it (one JSON line of its output file).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ExportedSpan {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// 16 lowercase hex digits, or `""` for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// `internal`, `server`, `client`, `producer`, `consumer` or `unspecified`.
    pub kind: String,
    /// `unset`, `ok` or `error`.
    pub status_code: String,
    pub status_message: String,
    pub attributes: Map<String, Value>,
    /// The attributes of the span's resource (`service.name`, …).
    pub resource: Map<String, Value>,
    /// The instrumentation scope's name.
    pub scope: String,
    pub events: Vec<SpanEvent>,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    /// OTLP's span flags: W3C trace flags in the low byte (the Python SDK leaves them 0), bit 8
    /// set when bit 9 is meaningful, bit 9 set when the parent span came from another process.
    pub flags: u32,
}

/// An event recorded on a span.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SpanEvent {
    pub name: String,
    pub attributes: Map<String, Value>,
}

impl ExportedSpan {
    /// The span attribute `key`.
    pub fn attr(&self, key: &str) -> Option<&Value> {
        self.attributes.get(key)
    }

    /// The resource attribute `key`.
    pub fn resource_attr(&self, key: &str) -> Option<&Value> {
        self.resource.get(key)
    }

    /// The resource's `service.name`.
    pub fn service_name(&self) -> Option<&str> {
        self.resource_attr("service.name").and_then(Value::as_str)
    }

    /// Whether this span has no parent.
    pub fn is_root(&self) -> bool {
        self.parent_span_id.is_empty()
    }

    /// End minus start.
    pub fn duration(&self) -> Duration {
        Duration::from_nanos(self.end_unix_nano.saturating_sub(self.start_unix_nano))
    }
}

/// The one span of `kind` among `spans` (panics, listing them, unless there is exactly one).
pub fn one_of_kind<'a>(spans: &'a [ExportedSpan], kind: &str) -> &'a ExportedSpan {
    let of_kind: Vec<_> = spans.iter().filter(|s| s.kind == kind).collect();
    assert_eq!(of_kind.len(), 1, "one {kind} span expected: {spans:#?}");
    of_kind[0]
}

/// `tests/e2e/otlp_collector.py` listening on loopback, killed when dropped.
pub struct Collector {
    /// Where exporters send OTLP/gRPC (plaintext): `127.0.0.1:PORT`.
    pub addr: SocketAddr,
    child: Child,
    out: PathBuf,
    export_calls: Arc<AtomicUsize>,
    _dir: TempDir,
}

impl Collector {
    /// Starts the collector on a free loopback port and waits for it to listen.
    pub fn start(python: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("spans.jsonl");
        let mut child = Command::new(python)
            .arg(e2e_script("otlp_collector.py"))
            .args(["--listen", "127.0.0.1:0", "--out"])
            .arg(&out)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {python} otlp_collector.py: {e}"));
        let export_calls = Arc::new(AtomicUsize::new(0));
        let stderr = child.stderr.take().expect("piped stderr");
        let counted = export_calls.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.starts_with("export ") {
                    counted.fetch_add(1, Ordering::SeqCst);
                } else {
                    // A traceback or a warning: the test's output shows it.
                    eprintln!("otlp_collector.py: {line}");
                }
            }
        });
        let port = wait_ready_port(&mut child, "otlp_collector.py");
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
            out,
            export_calls,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:PORT`, the form OTLP exporters take as an endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far, in the order received.
    pub fn spans(&self) -> Vec<ExportedSpan> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        // Lines are written whole and flushed per export; a line without its newline yet is
        // still being written.
        text.split_inclusive('\n')
            .filter(|line| line.ends_with('\n') && !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("the collector wrote a bad span line: {e}: {line}"))
            })
            .collect()
    }

    /// The spans of trace `trace_id` received so far.
    pub fn trace(&self, trace_id: &str) -> Vec<ExportedSpan> {
        self.spans()
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect()
    }

    /// Polls until at least `n` spans have arrived and returns them all; panics with what has
    /// arrived if `deadline` passes first.
    pub async fn wait_for_spans(&self, n: usize, deadline: Duration) -> Vec<ExportedSpan> {
        self.wait_until(deadline, &format!("{n} spans"), |spans| spans.len() >= n)
            .await
    }

    /// Polls until `done` holds for every span received so far and returns them; panics with
    /// `what` and what has arrived if `deadline` passes first.
    pub async fn wait_until(
        &self,
        deadline: Duration,
        what: &str,
        mut done: impl FnMut(&[ExportedSpan]) -> bool,
    ) -> Vec<ExportedSpan> {
        let give_up = tokio::time::Instant::now() + deadline;
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            if tokio::time::Instant::now() >= give_up {
                panic!(
                    "timed out after {deadline:?} waiting for {what}; the collector has {} \
                     spans from {} export calls:\n{spans:#?}",
                    spans.len(),
                    self.export_calls()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// How many OTLP export calls the collector has answered.
    pub fn export_calls(&self) -> usize {
        self.export_calls.load(Ordering::SeqCst)
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `traced_app.py server`: an HTTP/1.1 app instrumented with the OpenTelemetry SDK, answering
/// every request with JSON naming the trace headers it saw (see the script's doc), killed when
/// dropped.
pub struct TracedServer {
    pub addr: SocketAddr,
    child: Child,
}

impl TracedServer {
    /// Starts the app on a free loopback port, as `service` (its `service.name`), exporting its
    /// spans to `collector`.
    pub fn start(python: &str, service: &str, collector: &Collector) -> Self {
        let mut child = Command::new(python)
            .arg(e2e_script("traced_app.py"))
            .args(["server", "--listen", "127.0.0.1:0", "--service", service])
            .args(["--collector", &collector.addr.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {python} traced_app.py server: {e}"));
        let port = wait_ready_port(&mut child, "traced_app.py server");
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
        }
    }
}

impl Drop for TracedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `traced_app.py client url` (at most 30 s): a CLIENT span as `service`, `traceparent`
/// injected, then `headers`, exported to `collector` before it exits. Returns its JSON line:
/// `status`, `trace_id`, `span_id` and `body` (the traced server's JSON, or text).
///
/// Async, so a proxy in this process keeps serving while the client runs.
pub async fn traced_client(
    python: &str,
    url: &str,
    headers: &[(&str, &str)],
    service: &str,
    collector: &Collector,
) -> Value {
    let mut command = tokio::process::Command::new(python);
    command
        .arg(e2e_script("traced_app.py"))
        .args(["client", url, "--service", service])
        .args(["--collector", &collector.addr.to_string()]);
    for (name, value) in headers {
        command.arg("--header").arg(format!("{name}:{value}"));
    }
    command.kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .unwrap_or_else(|_| panic!("traced_app.py client {url} did not finish within 30 s"))
        .unwrap_or_else(|e| panic!("cannot run {python} traced_app.py client: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or_else(|| {
            panic!(
                "traced_app.py client {url} printed no JSON ({}): {stdout}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
        });
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("bad JSON from traced_app.py client: {e}: {line}"))
}

/// Waits (at most [`READY_DEADLINE`]) for `child`'s `ready PORT` line; kills it and panics if
/// it does not come.
fn wait_ready_port(child: &mut Child, what: &str) -> u16 {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(port) = line.trim().strip_prefix("ready ") {
                let _ = tx.send(port.parse::<u16>());
            }
        }
    });
    match rx.recv_timeout(READY_DEADLINE) {
        Ok(Ok(port)) => port,
        Ok(Err(e)) => {
            let _ = child.kill();
            panic!("{what} printed a bad ready line: {e}");
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not print `ready PORT` within {READY_DEADLINE:?}");
        }
    }
}

//! Access logs: one JSON line per request, to stderr or a file (`--access-log`).
//!
//! Writing is off the request path: a request hands its line to a bounded queue and goes on; a
//! thread of its own renders and writes the lines (file writes block, and a slow disk must never
//! hold up a request). The queue is tokio's, which allocates as it fills (std's `sync_channel`
//! reserves its whole capacity up front, in every idle sidecar). When the queue is full the line
//! is dropped and counted (`weft_access_log_lines_total{result="dropped"}`). The writer flushes
//! whenever the queue runs empty, and at shutdown writes what is queued.

use std::io::Write;
use std::path::PathBuf;
use std::thread::JoinHandle;

use prometheus::IntCounterVec;
use serde::Serialize;
use tokio::sync::mpsc;

/// Lines waiting to be written; past this, new lines are dropped.
pub const QUEUE_CAPACITY: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Stderr,
    File(PathBuf),
}

impl Destination {
    /// `--access-log`: `off` (none), `stderr`, or a file path.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "" | "off" => None,
            "stderr" => Some(Destination::Stderr),
            path => Some(Destination::File(PathBuf::from(path))),
        }
    }
}

/// One request, as logged. Field names are the log's contract (docs/telemetry.md lists them).
#[derive(Debug, Serialize)]
pub struct Line {
    /// RFC 3339, UTC, when the request arrived.
    pub time: String,
    pub direction: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    pub source_identity: String,
    pub destination_identity: String,
    pub destination_service: String,
    pub route: String,
    /// The Gateway API backend a route chose; left out without routes.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub backend: String,
    pub method: String,
    pub authority: String,
    pub path: String,
    pub protocol: &'static str,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_status: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weft_error: Option<String>,
    pub answered_by: &'static str,
    /// Until the response's last byte (or the caller went away).
    pub duration_seconds: f64,
    /// Until the response's headers.
    pub response_headers_seconds: f64,
    /// Attempts the client half made (1 without retries); 1 on the inbound side.
    pub attempts: u32,
    /// The request body's length when the caller declared it (`content-length`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_bytes: Option<u64>,
    pub response_bytes: u64,
    /// Whether the response was delivered to its end (false: the caller went away first).
    pub complete: bool,
}

/// The request side of the log.
pub struct AccessLog {
    tx: Option<mpsc::Sender<Line>>,
    writer: Option<JoinHandle<()>>,
    dropped: prometheus::IntCounter,
}

impl AccessLog {
    /// Opens `destination` (a file is created or appended to) and starts the writer thread.
    pub fn open(destination: &Destination, counters: &IntCounterVec) -> Result<Self, String> {
        let out: Box<dyn Write + Send> = match destination {
            Destination::Stderr => Box::new(std::io::stderr()),
            Destination::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("--access-log {}: {e}", path.display()))?,
            ),
        };
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let written = counters.with_label_values(&["written"]);
        let failed = counters.with_label_values(&["write_failed"]);
        let writer = std::thread::Builder::new()
            .name("weft-access-log".into())
            .spawn(move || write_lines(rx, out, &written, &failed))
            .map_err(|e| format!("--access-log: cannot start its writer thread: {e}"))?;
        Ok(Self {
            tx: Some(tx),
            writer: Some(writer),
            dropped: counters.with_label_values(&["dropped"]),
        })
    }

    /// Queues `line`, or drops it (counted) when the writer is behind.
    pub fn log(&self, line: Line) {
        let sent = self.tx.as_ref().is_some_and(|tx| tx.try_send(line).is_ok());
        if !sent {
            self.dropped.inc();
        }
    }
}

impl Drop for AccessLog {
    /// Lets the writer finish what is queued.
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn write_lines(
    mut rx: mpsc::Receiver<Line>,
    out: Box<dyn Write + Send>,
    written: &prometheus::IntCounter,
    failed: &prometheus::IntCounter,
) {
    let mut out = std::io::BufWriter::new(out);
    let write = |line: &Line, out: &mut std::io::BufWriter<Box<dyn Write + Send>>| {
        let ok = serde_json::to_writer(&mut *out, line).is_ok() && out.write_all(b"\n").is_ok();
        if ok { written.inc() } else { failed.inc() }
    };
    while let Some(line) = rx.blocking_recv() {
        write(&line, &mut out);
        while let Ok(line) = rx.try_recv() {
            write(&line, &mut out);
        }
        if out.flush().is_err() {
            failed.inc();
        }
    }
    let _ = out.flush();
}

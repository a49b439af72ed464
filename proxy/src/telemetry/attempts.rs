//! The attempts the client half made for one request: their number (for the metrics and the
//! access log) and, when the request is traced, one span event per attempt saying where it went
//! and how it ended, so a retried request shows its retries inside its span.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::SystemTime;

use opentelemetry::KeyValue;
use opentelemetry::trace::Event;

#[derive(Default)]
pub struct AttemptLog {
    made: AtomicU32,
    /// `Some` when the request's span is recorded.
    events: Option<Mutex<Vec<Event>>>,
}

impl AttemptLog {
    pub fn new(traced: bool) -> Self {
        Self {
            made: AtomicU32::new(0),
            events: traced.then(|| Mutex::new(Vec::new())),
        }
    }

    /// Attempt `n` (1 for the first) has started.
    pub fn started(&self, n: u32) {
        self.made.store(n, Ordering::Relaxed);
    }

    /// Attempts started so far.
    pub fn made(&self) -> u32 {
        self.made.load(Ordering::Relaxed)
    }

    /// Attempt `n` ended with `outcome` (a status code or weft's error reason).
    pub fn ended(&self, n: u32, endpoint: Option<SocketAddr>, outcome: &str) {
        let Some(events) = &self.events else {
            return;
        };
        let mut attributes = vec![
            KeyValue::new("weft.attempt", i64::from(n)),
            KeyValue::new("weft.outcome", outcome.to_owned()),
        ];
        if let Some(endpoint) = endpoint {
            attributes.push(KeyValue::new(
                "network.peer.address",
                endpoint.ip().to_string(),
            ));
            attributes.push(KeyValue::new(
                "network.peer.port",
                i64::from(endpoint.port()),
            ));
        }
        let event = Event::new("attempt", SystemTime::now(), attributes, 0);
        events.lock().unwrap_or_else(|p| p.into_inner()).push(event);
    }

    pub fn take_events(&self) -> Vec<Event> {
        match &self.events {
            Some(events) => std::mem::take(&mut *events.lock().unwrap_or_else(|p| p.into_inner())),
            None => Vec::new(),
        }
    }
}

//! The demo's app: answers every request, says which caller identity its sidecar vouched for,
//! takes [`SLOW_ANSWER`] on `/slow…`, and answers `503` to the share of requests it is told to
//! fail (see [`super::flaky`] for the listener that dies and comes back).

use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use super::files::{DRILL_PREFIX, SLOW_PREFIX};

/// How long the app takes on `/slow…`: longer than the route's deadline.
pub const SLOW_ANSWER: Duration = Duration::from_secs(1);

/// What one app does and has done.
#[derive(Debug, Default)]
pub struct Behaviour {
    /// Percentage of requests answered `503`.
    fail_percent: AtomicU32,
    /// Requests answered `200` (not counting `/slow…` and `/drill…`).
    answered: AtomicU64,
    /// Requests to `/drill…` answered `200`.
    drill: AtomicU64,
    /// Requests answered `503` on purpose.
    failed: AtomicU64,
    /// Requests to `/slow…` that began (their caller does not wait for the answer).
    slow: AtomicU64,
}

impl Behaviour {
    pub fn fail(&self, percent: u32) {
        self.fail_percent.store(percent.min(100), Ordering::SeqCst);
    }

    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::SeqCst)
    }

    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }

    pub fn drill(&self) -> u64 {
        self.drill.load(Ordering::SeqCst)
    }

    pub fn slow(&self) -> u64 {
        self.slow.load(Ordering::SeqCst)
    }

    /// Answers one request.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        if fastrand::u32(0..100) < self.fail_percent.load(Ordering::SeqCst) {
            self.failed.fetch_add(1, Ordering::SeqCst);
            let mut response = Response::new(Full::new(Bytes::from_static(b"flaky: try again\n")));
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            return Ok(response);
        }
        let slow = req.uri().path().starts_with(SLOW_PREFIX);
        if slow {
            self.slow.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(SLOW_ANSWER).await;
        }
        let caller = req
            .headers()
            .get("weft-client-identity")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("(unauthenticated)")
            .to_owned();
        if req.uri().path().starts_with(DRILL_PREFIX) {
            self.drill.fetch_add(1, Ordering::SeqCst);
        } else if !slow {
            self.answered.fetch_add(1, Ordering::SeqCst);
        }
        let response = Response::builder()
            .header("x-caller-identity", caller.as_str())
            .body(Full::new(Bytes::from(format!("hello, {caller}\n"))))
            .expect("valid response");
        Ok(response)
    }
}

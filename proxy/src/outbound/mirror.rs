//! Gateway API `RequestMirror`: a copy of a routed request goes to a mirror Service as well,
//! fire and forget. The copy is resolved like any backend (its own endpoints over the mesh,
//! mutual TLS, its own identity check) and sent by its own task, so it never delays or fails the
//! request it copies; its answer is read to the end and discarded.
//!
//! A copy costs the mirror Service, never the caller, so it is bounded and never retried:
//! - at most [`MAX_IN_FLIGHT`] copies in flight per mirror Service in this proxy; over that the
//!   copy is dropped, not queued (a slow mirror must not pile up work);
//! - bodies up to [`MAX_BODY`] (the retry layer's default buffer): the original streams on as it
//!   arrives while a copy is kept ([`CopiedBody`]), and the mirror is sent once the body is
//!   complete; a longer body (announced or found so) is not mirrored;
//! - retries off (a stream the peer refused before its app saw it is sent again once, as every
//!   request is); each copy has [`DEADLINE`] in all, on top of the mirror's own policy timeouts.
//!
//! Each copy ends as one outcome of `weft_route_mirror_requests_total`. The mirrored request has
//! the original's method, path and headers (after the rule's request header modifier and
//! rewrite); its `Host` is the mirror Service's (`<name>.<namespace>:<port>`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::sync::oneshot;

use super::{Outbound, by_name, request};
use crate::http::body::copied::CopiedBody;
use crate::http::body::{self, Body};
use crate::http::error::ProxyError;
use crate::policy::gateway::{GatewayRule, Mirror};
use crate::policy::{Conditions, RetryRules};
use crate::telemetry::attempts::AttemptLog;

/// Copies in flight to one mirror Service, from this proxy.
pub const MAX_IN_FLIGHT: usize = 64;
/// The longest request body that is mirrored.
pub const MAX_BODY: usize = 64 * 1024;
/// The longest a copy may take, body and answer included.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// How a copy ended: the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The mirror answered with a status below 500.
    Answered,
    Answered5xx,
    /// No answer: no endpoint, connection or stream failure, timeout.
    Failed,
    /// The mirror Service is not known to discovery.
    NotFound,
    DroppedInFlight,
    /// The body was longer than [`MAX_BODY`], or the original's body did not complete.
    DroppedBody,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Answered5xx => "answered_5xx",
            Outcome::Failed => "failed",
            Outcome::NotFound => "not_found",
            Outcome::DroppedInFlight => "dropped_in_flight",
            Outcome::DroppedBody => "dropped_body",
        }
    }
}

/// The copies in flight per mirror Service.
#[derive(Debug, Default)]
pub struct InFlight {
    by_mirror: Mutex<HashMap<String, Arc<AtomicUsize>>>,
}

/// One copy's place in flight, given back when the copy ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl InFlight {
    fn take(&self, address: &str) -> Option<Slot> {
        let counter = {
            let mut map = self.by_mirror.lock().unwrap_or_else(|e| e.into_inner());
            match map.get(address) {
                Some(counter) => counter.clone(),
                None => map.entry(address.to_owned()).or_default().clone(),
            }
        };
        if counter.fetch_add(1, Ordering::AcqRel) >= MAX_IN_FLIGHT {
            counter.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Slot(counter))
    }
}

/// Starts a copy of `req` for each of `rule`'s mirrors that samples it; `service` is the
/// destination the app called. When the body is not complete yet, `req`'s body becomes one
/// that keeps a copy as it is sent.
pub fn start(outbound: &Arc<Outbound>, service: &str, rule: &GatewayRule, req: &mut Request<Body>) {
    let empty = req.body().is_end_stream();
    let too_long = req.body().size_hint().lower() > MAX_BODY as u64;
    let mut waiting = Vec::new();
    for mirror in &rule.mirrors {
        if mirror.fraction < 1.0 && fastrand::f64() >= mirror.fraction {
            continue;
        }
        let labels = [service, &rule.label, &mirror.service];
        if too_long {
            count(outbound, labels, Outcome::DroppedBody);
            continue;
        }
        let Some(slot) = outbound.mirrors.take(&mirror.address) else {
            count(outbound, labels, Outcome::DroppedInFlight);
            continue;
        };
        let head = head(req, mirror);
        let body = match empty {
            true => None,
            false => {
                let (tx, rx) = oneshot::channel();
                waiting.push(tx);
                Some(rx)
            }
        };
        let outbound = outbound.clone();
        let labels = labels.map(str::to_owned);
        let address = mirror.address.clone();
        tokio::spawn(async move {
            let copy = send(&outbound, &address, head, body);
            let outcome = tokio::time::timeout(DEADLINE, copy)
                .await
                .unwrap_or(Outcome::Failed);
            drop(slot);
            count(&outbound, labels.each_ref().map(String::as_str), outcome);
            tracing::debug!(mirror = %address, outcome = outcome.label(), "mirrored a request");
        });
    }
    if !waiting.is_empty() {
        let original = std::mem::replace(req.body_mut(), body::full(""));
        *req.body_mut() = Body::Copied(Box::new(CopiedBody::new(original, MAX_BODY, waiting)));
    }
}

/// Counts a copy: `[service, route, mirror service]` and how it ended.
fn count(outbound: &Outbound, [service, route, mirror]: [&str; 3], outcome: Outcome) {
    outbound
        .metrics
        .route_mirrors
        .with_label_values(&[service, route, mirror, outcome.label()])
        .inc();
}

/// The copy's head: the original's, with the mirror's `Host`.
fn head(req: &Request<Body>, mirror: &Mirror) -> Request<()> {
    let mut head = Request::new(());
    *head.method_mut() = req.method().clone();
    *head.uri_mut() = match req.uri().path_and_query() {
        Some(path) => path.as_str().parse().unwrap_or_default(),
        None => http::Uri::from_static("/"),
    };
    *head.version_mut() = req.version();
    *head.headers_mut() = req.headers().clone();
    if let Ok(host) = HeaderValue::from_str(&mirror.address) {
        head.headers_mut().insert(header::HOST, host);
    }
    head
}

/// Sends one copy once its body is complete, and reads the answer to its end.
async fn send(
    outbound: &Outbound,
    address: &str,
    head: Request<()>,
    body: Option<oneshot::Receiver<Bytes>>,
) -> Outcome {
    let body = match body {
        None => body::full(""),
        Some(rx) => match rx.await {
            Ok(bytes) => body::full(bytes),
            Err(_) => return Outcome::DroppedBody,
        },
    };
    let req = head.map(|()| body);
    let Some(destination) = by_name::resolve(outbound, address).await else {
        return Outcome::NotFound;
    };
    let base = destination.policy.route(&req);
    let once = RetryRules {
        limit: 0,
        on: Conditions::default(),
        ..base.retries.clone()
    };
    let policy = Arc::new(base.with(base.timeouts, once));
    let sent = request::send(outbound, &destination, &policy, req, &AttemptLog::default()).await;
    answered(sent).await
}

async fn answered(sent: Result<Response<Body>, ProxyError>) -> Outcome {
    let Ok(response) = sent else {
        return Outcome::Failed;
    };
    let status = response.status();
    if response.into_body().collect().await.is_err() {
        return Outcome::Failed;
    }
    match status.is_server_error() {
        true => Outcome::Answered5xx,
        false => Outcome::Answered,
    }
}

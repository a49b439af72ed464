//! The request path of the client half: one app request to a destination, in the order the
//! policy's layers apply.
//!
//! ```text
//! request deadline (timeouts.request, up to the response headers; then on the body)
//!  └─ attempts (retries.limit, within the destination's budget, backoff between them)
//!      ├─ endpoint: balancer (P2C peak-EWMA) over the endpoints the breakers admit
//!      ├─ slot: the destination's concurrency limit (every attempt takes one)
//!      └─ send on the pooled HTTP/2 connection (timeouts.perTry; gRPC read to its trailers
//!         when the route retries on gRPC codes) → outcome → breaker, balancer, retry or done
//! ```
//!
//! The layers keep their state in the [`Destination`] (built once per discovery answer, taking
//! over the state of the one before) and decide in [`crate::resilience`]; this file only puts them
//! in order. Errors end as [`ProxyError`]s, which decide what the app sees.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use tokio::time::Instant;

use super::Outbound;
use crate::destination::{Destination, Endpoint, Unavailable};
use crate::http::body::caller::BodyWatch;
use crate::http::body::{self, Body};
use crate::http::client::h2_pool;
use crate::http::error::ProxyError;
use crate::http::headers;
use crate::http::link::client::LinkError;
use crate::http::spare_headers::{self, FieldList};
use crate::policy::RoutePolicy;
use crate::resilience::backoff;
use crate::resilience::breaker::Admission;
use crate::resilience::limit::Refused;
use crate::resilience::retry::{self, Outcome, Replay, pushback};
use crate::resilience::timeout::TimedBody;
use crate::telemetry::attempts::AttemptLog;

/// Sends `req` to `destination` under its policy's `route` (the one `req` matches), noting each
/// attempt in `log`.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn keeps its arguments twice"
)]
pub fn send<'a>(
    outbound: &'a Outbound,
    destination: &'a Destination,
    route: &'a Arc<RoutePolicy>,
    req: Request<Body>,
    log: &'a AttemptLog,
) -> impl Future<Output = Result<Response<Body>, ProxyError>> + 'a {
    // A block, not an `async fn`: an async fn keeps its arguments twice in its state (as passed,
    // and as the locals its body binds), and the request is 280 bytes of every request's future.
    async move {
        let deadline = route.timeouts.request.map(|t| (Instant::now() + t, t));
        let attempts = Attempts {
            outbound,
            destination,
            route,
            grpc: headers::is_grpc(&req),
            log,
        };
        let (response, timer) = match deadline {
            None => (attempts.run(req).await?, None),
            Some((at, after)) => {
                // One timer for the deadline, raced here and then handed to the body.
                let mut timer = Box::pin(tokio::time::sleep_until(at));
                let run = attempts.run(req);
                tokio::pin!(run);
                tokio::select! {
                    biased;
                    response = &mut run => (response?, Some(timer)),
                    () = &mut timer => {
                        attempts.count_timeout("request");
                        attempts.count_attempts(attempts.log.made());
                        return Err(ProxyError::Timeout {
                            destination: destination.name.clone(),
                            after,
                        });
                    }
                }
            }
        };
        let idle = route.timeouts.idle;
        if deadline.is_none() && idle.is_none() {
            return Ok(response);
        }
        let timer = timer.unwrap_or_else(|| Box::pin(tokio::time::sleep(Duration::ZERO)));
        let at = deadline.map(|d| d.0);
        Ok(response.map(|b| Body::Timed(Box::new(TimedBody::new(b, timer, at, idle)))))
    }
}

/// The request's parts, kept to build each attempt.
///
/// The first attempt sends the header map the app's request came in. When another attempt may
/// follow, `kept` holds its fields first: one list of names and values that share the
/// request head's bytes (a map's copy would cost two allocations, on every request, for the
/// few that are retried), a spare one kept again when the request is done
/// ([`spare_headers`]). A retry builds its map from them.
struct Head {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    kept: Option<FieldList>,
}

impl Drop for Head {
    fn drop(&mut self) {
        if let Some(kept) = self.kept.take() {
            spare_headers::give_back_list(kept);
        }
    }
}

/// The request body as attempts send it.
enum Sendable {
    Empty,
    Replayable(Replay<Body>),
    /// Too large to keep: sent once.
    Once(Option<Body>),
}

impl Sendable {
    fn new(body: Body, route: &RoutePolicy, watch: &mut BodyWatch) -> Self {
        use http_body::Body as _;
        if body.is_end_stream() {
            return Sendable::Empty;
        }
        let body = watch.wrap(body);
        // Kept even when the policy retries nothing: a refused attempt is always sent again.
        let cap = route.retries.max_buffered_body;
        if body.size_hint().lower() > cap {
            return Sendable::Once(Some(body));
        }
        Sendable::Replayable(Replay::new(body, cap))
    }

    fn for_attempt(&mut self) -> Body {
        match self {
            Sendable::Empty => body::full(""),
            Sendable::Replayable(replay) => Body::Replay(replay.attempt()),
            Sendable::Once(body) => body.take().unwrap_or_else(|| body::full("")),
        }
    }

    /// Whether another attempt can send the same body after `outcome`. An answer that came
    /// before the whole body was sent commits the attempt (the server acted on part of it).
    fn can_resend(&self, outcome: &Outcome) -> bool {
        match self {
            Sendable::Empty => true,
            Sendable::Once(_) => false,
            Sendable::Replayable(replay) => {
                replay.can_replay()
                    && (replay.complete() || !matches!(outcome, Outcome::Response { .. }))
            }
        }
    }
}

struct Attempts<'a> {
    outbound: &'a Outbound,
    destination: &'a Destination,
    route: &'a Arc<RoutePolicy>,
    grpc: bool,
    /// Attempts started (for the attempts histogram of a request its deadline cut short) and
    /// how each ended.
    log: &'a AttemptLog,
}

impl Attempts<'_> {
    async fn run(&self, req: Request<Body>) -> Result<Response<Body>, ProxyError> {
        let destination = self.destination;
        let rules = &self.route.retries;
        destination.budget.deposit();
        // In a block: what is left of `parts` (its extensions) is dropped here, not kept in the
        // future's state until the request ends.
        let (mut head, body, version) = {
            let (parts, body) = req.into_parts();
            let head = Head {
                method: parts.method,
                uri: parts.uri,
                headers: parts.headers,
                kept: None,
            };
            (head, body, parts.version)
        };
        prepare(&mut head, version, &destination.name)?;
        let any_method = retry::idempotent(&head.method) || rules.non_idempotent;
        let mut watch = BodyWatch::default();
        let mut body = Sendable::new(body, self.route, &mut watch);
        let mut avoid = None;
        let mut attempt: u32 = 1;
        // Attempts counted against `retries.limit`: all but the retry of a refused one.
        let mut counted: u32 = 1;
        let mut refusal_retry = true;
        // The answer before a retry (boxed: it is kept only across a retry, and the request's
        // future holds it for every request).
        let mut previous: Option<Box<Result<Response<Body>, ProxyError>>> = None;
        loop {
            // The last attempt takes the request's headers instead of a copy.
            let last = !refusal_retry && counted > rules.limit;
            let (result, outcome, endpoint) = self
                .attempt(&mut head, body.for_attempt(), attempt, last, avoid, &watch)
                .await;
            match &result {
                Ok(response) => self
                    .log
                    .ended(attempt, endpoint, response.status().as_str()),
                Err(e) => self.log.ended(attempt, endpoint, e.reason()),
            }
            // A retry that finds every endpoint ejected: the caller learns more from the answer
            // before it than from `circuit_open`.
            if let (Err(ProxyError::CircuitOpen(_)), Some(previous)) = (&result, previous.take()) {
                self.count_attempts(attempt - 1);
                return *previous;
            }
            // The peer refused the stream before processing it (`REFUSED_STREAM`, above its
            // `GOAWAY`'s last stream id, or the connection was going away): the app never saw
            // it, so it is sent again at once, on a new connection or another endpoint, whatever
            // the method and the policy: once per request, outside the limit and the budget.
            if outcome == Outcome::RefusedStream && refusal_retry && body.can_resend(&outcome) {
                refusal_retry = false;
                self.count_retry(&outcome);
                tracing::debug!(destination = %destination.name, route = %self.route.name, "the peer refused the stream before processing it: sending it again");
                previous = Some(Box::new(result));
                avoid = endpoint;
                attempt += 1;
                continue;
            }
            let more = counted <= rules.limit
                && outcome.retryable(&rules.on, any_method)
                && body.can_resend(&outcome);
            if !more {
                self.count_attempts(attempt);
                return result;
            }
            if !destination.budget.withdraw() {
                self.count_attempts(attempt);
                destination
                    .metrics
                    .resilience
                    .budget_exhausted
                    .with_label_values(&[&destination.name, &self.route.name])
                    .inc();
                tracing::debug!(destination = %destination.name, route = %self.route.name, "retry budget exhausted: returning the last answer");
                return result;
            }
            self.count_retry(&outcome);
            let wait = result
                .as_ref()
                .ok()
                .and_then(|r| pushback::pushback(r.headers(), rules.pushback_max))
                .unwrap_or_else(|| {
                    backoff::full_jitter(
                        rules.backoff_base,
                        rules.backoff_max,
                        counted.saturating_sub(1),
                        fastrand::f64(),
                    )
                });
            // Kept, to be the answer if the retry finds nowhere to go.
            previous = Some(Box::new(result));
            tokio::time::sleep(wait).await;
            avoid = endpoint;
            attempt += 1;
            counted += 1;
        }
    }

    /// One attempt: endpoint, slot, send; returns the result, its outcome and the endpoint.
    async fn attempt(
        &self,
        head: &mut Head,
        body: Body,
        attempt: u32,
        last: bool,
        avoid: Option<SocketAddr>,
        watch: &BodyWatch,
    ) -> (
        Result<Response<Body>, ProxyError>,
        Outcome,
        Option<SocketAddr>,
    ) {
        let destination = self.destination;
        self.log.started(attempt);
        let (endpoint, admission) = match destination.pick(avoid) {
            Ok(picked) => picked,
            Err(Unavailable::NoEndpoints) => {
                let e = ProxyError::NoEndpoints(destination.name.clone());
                return (Err(e), Outcome::Fatal, None);
            }
            Err(Unavailable::CircuitOpen) => {
                self.count_shed("circuit_open");
                let e = ProxyError::CircuitOpen(destination.name.clone());
                return (Err(e), Outcome::Fatal, None);
            }
        };
        let probe = ProbeGuard {
            endpoint,
            armed: admission == Admission::Probe,
        };
        let _slot = match destination.limit.acquire().await {
            Ok(slot) => slot,
            Err(refused) => {
                self.count_shed("overloaded");
                let why = match refused {
                    Refused::QueueFull => "the queue is full",
                    Refused::QueueTimeout => "waited the whole queue timeout",
                };
                let e = ProxyError::Overloaded {
                    destination: destination.name.clone(),
                    why,
                };
                return (Err(e), Outcome::Fatal, Some(endpoint.addr));
            }
        };
        let req = Box::new(head.request(body, attempt, last));
        let in_flight = endpoint.load.start();
        let exchange = self.exchange(endpoint, req, attempt, watch);
        let (result, outcome) = match self.route.timeouts.per_try {
            None => exchange.await,
            Some(after) => match tokio::time::timeout(after, exchange).await {
                Ok(done) => done,
                Err(_) => {
                    self.count_timeout("per_try");
                    let e = ProxyError::PerTryTimeout {
                        destination: destination.name.clone(),
                        after,
                    };
                    (Err(e), Outcome::PerTryTimeout)
                }
            },
        };
        in_flight.finished();
        // A per-try timeout says nothing of the endpoint's health (the route may be slow by
        // nature), nor does a failure of this side: the breaker hears nothing, and a probe that
        // ended so lets the next one try.
        if !matches!(
            outcome,
            Outcome::Fatal | Outcome::PerTryTimeout | Outcome::LocalFailure
        ) {
            let failed = outcome.breaker_failure(&destination.policy.breaker);
            destination.record(endpoint, failed);
            probe.disarm();
        }
        (result, outcome, Some(endpoint.addr))
    }

    /// Sends on the pooled connection and reads as much of the answer as the outcome needs.
    async fn exchange(
        &self,
        endpoint: &Endpoint,
        req: Box<Request<Body>>,
        attempt: u32,
        watch: &BodyWatch,
    ) -> (Result<Response<Body>, ProxyError>, Outcome) {
        let response = match self.outbound.pool.send(endpoint, req).await {
            Ok(response) => response,
            Err(e) => match watch.failure() {
                // The app's body broke, and this proxy reset the stream: the app's doing.
                Some(failure) => {
                    let e = ProxyError::RequestBody(failure.clone());
                    return (Err(e), Outcome::LocalFailure);
                }
                None => {
                    let outcome = classify_error(&e);
                    return (Err(e), outcome);
                }
            },
        };
        let (mut parts, incoming) = response.into_parts();
        if let Some(identity) = endpoint.identity_header() {
            parts
                .headers
                .insert(headers::SERVER_IDENTITY, identity.clone());
        }
        // The peer proxy answering that it could not reach its app: the app never saw it. Only a
        // proxy can have said so: this connection is mutual TLS to the endpoint's proven identity
        // (unmeshed endpoints never come here: `Outbound::intercepted` carries them as plain TCP),
        // and that proxy removes `weft-error` from its app's answers.
        if parts.status == StatusCode::BAD_GATEWAY
            && parts
                .headers
                .get(headers::ERROR)
                .is_some_and(|v| v.as_bytes() == b"app_unreachable")
        {
            let response = Response::from_parts(parts, incoming);
            return (Ok(response), Outcome::ConnectFailure);
        }
        let mut grpc = self
            .grpc
            .then(|| retry::grpc_status(&parts.headers))
            .flatten();
        let rules = &self.route.retries;
        let peek = self.grpc
            && grpc.is_none()
            && rules.on.any_grpc()
            && attempt <= rules.limit
            && parts.status == StatusCode::OK;
        let body = if peek {
            match retry::peek_grpc_status(incoming, rules.max_buffered_body).await {
                Ok((peeked, status)) => {
                    grpc = status;
                    Body::Peeked(Box::new(peeked))
                }
                Err(e) => {
                    let e = ProxyError::PeerBody {
                        addr: endpoint.addr,
                        detail: e.to_string(),
                    };
                    return (Err(e), Outcome::Reset);
                }
            }
        } else {
            incoming
        };
        let outcome = Outcome::Response {
            status: parts.status,
            grpc,
        };
        (Ok(Response::from_parts(parts, body)), outcome)
    }

    fn count_retry(&self, outcome: &Outcome) {
        self.destination
            .metrics
            .resilience
            .retries
            .with_label_values(&[
                &*self.destination.name,
                &*self.route.name,
                &outcome.reason(),
            ])
            .inc();
    }

    fn count_attempts(&self, attempts: u32) {
        if let Some(histogram) = self.destination.attempts_histogram(self.route.index) {
            histogram.observe(f64::from(attempts));
        }
    }

    fn count_timeout(&self, kind: &str) {
        self.destination
            .metrics
            .resilience
            .timeouts
            .with_label_values(&[&self.destination.name, &self.route.name, kind])
            .inc();
    }

    fn count_shed(&self, reason: &str) {
        self.destination
            .metrics
            .resilience
            .shed
            .with_label_values(&[&self.destination.name, reason])
            .inc();
    }
}

/// Turns the app's request into what travels between proxies (see [`headers::to_mesh`]), once
/// for every attempt.
fn prepare(head: &mut Head, version: Version, destination: &str) -> Result<(), ProxyError> {
    let mut req = Request::new(());
    *req.method_mut() = head.method.clone();
    *req.uri_mut() = std::mem::take(&mut head.uri);
    *req.version_mut() = version;
    *req.headers_mut() = std::mem::take(&mut head.headers);
    headers::to_mesh(&mut req, || destination.to_owned()).map_err(ProxyError::BadRequest)?;
    let (parts, ()) = req.into_parts();
    head.uri = parts.uri;
    head.headers = parts.headers;
    Ok(())
}

impl Head {
    /// The request for one attempt; the `last` one takes the URI and the fields instead of a
    /// copy.
    fn request(&mut self, body: Body, attempt: u32, last: bool) -> Request<Body> {
        let mut req = Request::new(body);
        *req.method_mut() = self.method.clone();
        *req.version_mut() = Version::HTTP_2;
        *req.uri_mut() = match last {
            true => std::mem::take(&mut self.uri),
            false => self.uri.clone(),
        };
        let mut headers = match &mut self.kept {
            None => {
                if !last {
                    let mut kept = spare_headers::list(self.headers.len());
                    kept.extend(self.headers.iter().map(|(n, v)| (n.clone(), v.clone())));
                    self.kept = Some(kept);
                }
                std::mem::take(&mut self.headers)
            }
            Some(kept) => {
                let mut headers = HeaderMap::with_capacity(kept.len());
                match last {
                    true => kept.drain(..).for_each(|(n, v)| _ = headers.append(n, v)),
                    false => kept.iter().for_each(|(n, v)| {
                        headers.append(n.clone(), v.clone());
                    }),
                }
                headers
            }
        };
        if attempt > 1 {
            headers.insert(headers::ATTEMPT, attempt_value(attempt));
        }
        *req.headers_mut() = headers;
        req
    }
}

/// `weft-attempt`'s value without formatting or allocating (at most 6 attempts).
fn attempt_value(attempt: u32) -> HeaderValue {
    const VALUES: [&str; 6] = ["1", "2", "3", "4", "5", "6"];
    match VALUES.get((attempt as usize).wrapping_sub(1)) {
        Some(value) => HeaderValue::from_static(value),
        None => HeaderValue::from(attempt),
    }
}

fn classify_error(error: &ProxyError) -> Outcome {
    match error {
        _ if error.is_local() => Outcome::LocalFailure,
        ProxyError::PeerConnect(_) | ProxyError::PeerDown { .. } => Outcome::ConnectFailure,
        ProxyError::PeerHttp { source, .. } => {
            let refused = source
                .downcast_ref::<LinkError>()
                .is_some_and(LinkError::never_processed)
                || source
                    .downcast_ref::<h2::Error>()
                    .is_some_and(h2_pool::never_processed);
            if refused {
                Outcome::RefusedStream
            } else {
                Outcome::Reset
            }
        }
        _ => Outcome::Fatal,
    }
}

/// Lets the breaker's next request probe if this probe ends without an outcome (cancelled).
struct ProbeGuard<'a> {
    endpoint: &'a Endpoint,
    armed: bool,
}

impl ProbeGuard<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.endpoint.breaker.probe_abandoned();
        }
    }
}

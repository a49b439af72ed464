//! The demo's client: a few keep-alive connections sending requests for a fixed time (most to
//! `/`, one connection to `/slow`), counting what came back.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// What the client saw on one path.
#[derive(Debug, Default)]
pub struct Tally {
    pub sent: u64,
    /// By status and `weft-error` (empty when the app answered).
    pub statuses: BTreeMap<(u16, String), u64>,
    /// Requests that got no answer at all, by error.
    pub errors: BTreeMap<String, u64>,
    /// The caller identity the app reported (as its sidecar told it).
    pub caller_identities: BTreeMap<String, u64>,
    /// The server identity the client's sidecar verified.
    pub server_identities: BTreeMap<String, u64>,
}

impl Tally {
    /// Answers with `status` and `weft-error: error` (`""`: none).
    pub fn count(&self, status: u16, error: &str) -> u64 {
        self.statuses
            .get(&(status, error.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Requests that got anything but `200`, or no answer.
    pub fn failed(&self) -> u64 {
        let not_ok: u64 = self
            .statuses
            .iter()
            .filter(|((status, _), _)| *status != 200)
            .map(|(_, n)| n)
            .sum();
        not_ok + self.errors.values().sum::<u64>()
    }

    fn merge(&mut self, other: Tally) {
        self.sent += other.sent;
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for (k, v) in other.caller_identities {
            *self.caller_identities.entry(k).or_default() += v;
        }
        for (k, v) in other.server_identities {
            *self.server_identities.entry(k).or_default() += v;
        }
    }
}

/// `loops` connections sending GET `path` to `target` for `duration`, each pausing `pause`
/// between requests.
pub async fn run(
    target: SocketAddr,
    path: &'static str,
    duration: Duration,
    loops: usize,
    pause: Duration,
) -> Tally {
    let never = Arc::new(AtomicBool::new(false));
    run_until(target, path, never, duration, loops, pause).await
}

/// [`run`] until `stop` is set (or `limit` has passed).
pub async fn run_until(
    target: SocketAddr,
    path: &'static str,
    stop: Arc<AtomicBool>,
    limit: Duration,
    loops: usize,
    pause: Duration,
) -> Tally {
    let deadline = tokio::time::Instant::now() + limit;
    let loops: Vec<_> = (0..loops)
        .map(|_| tokio::spawn(one_loop(target, path, deadline, stop.clone(), pause)))
        .collect();
    let mut total = Tally::default();
    for l in loops {
        if let Ok(tally) = l.await {
            total.merge(tally);
        }
    }
    total
}

async fn one_loop(
    target: SocketAddr,
    path: &'static str,
    deadline: tokio::time::Instant,
    stop: Arc<AtomicBool>,
    pause: Duration,
) -> Tally {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let uri: http::Uri = format!("http://{target}{path}").parse().expect("valid URI");
    let mut tally = Tally::default();
    while tokio::time::Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
        let req = http::Request::get(uri.clone())
            .header("host", "hello.demo:8080")
            .body(Empty::new())
            .expect("valid request");
        tally.sent += 1;
        match client.request(req).await {
            Ok(response) => {
                let header = |name: &str| {
                    response
                        .headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                if let Some(caller) = header("x-caller-identity") {
                    *tally.caller_identities.entry(caller).or_default() += 1;
                }
                if let Some(server) = header("weft-server-identity") {
                    *tally.server_identities.entry(server).or_default() += 1;
                }
                let key = (
                    response.status().as_u16(),
                    header("weft-error").unwrap_or_default(),
                );
                *tally.statuses.entry(key).or_default() += 1;
                let _ = response.into_body().collect().await;
            }
            Err(e) => *tally.errors.entry(e.to_string()).or_default() += 1,
        }
        tokio::time::sleep(pause).await;
    }
    tally
}

//! The demo's client: a few keep-alive connections sending requests for a fixed time, counting
//! what came back.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// What the client saw.
#[derive(Debug, Default)]
pub struct Tally {
    pub sent: u64,
    pub statuses: BTreeMap<u16, u64>,
    pub errors: BTreeMap<String, u64>,
    /// The caller identity the app reported (as its sidecar told it).
    pub caller_identities: BTreeMap<String, u64>,
    /// The server identity the client's sidecar verified.
    pub server_identities: BTreeMap<String, u64>,
}

impl Tally {
    pub fn ok(&self) -> u64 {
        self.statuses.get(&200).copied().unwrap_or(0)
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

/// Sends GETs to `target` from `connections` loops for `duration`, pausing `pause` between
/// requests on each loop.
pub async fn run(
    target: SocketAddr,
    duration: Duration,
    connections: usize,
    pause: Duration,
) -> Tally {
    let deadline = tokio::time::Instant::now() + duration;
    let loops: Vec<_> = (0..connections)
        .map(|_| {
            tokio::spawn(async move {
                let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
                let uri: http::Uri = format!("http://{target}/").parse().expect("valid URI");
                let mut tally = Tally::default();
                while tokio::time::Instant::now() < deadline {
                    let req = http::Request::get(uri.clone())
                        .header("host", "hello.demo.svc:8080")
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
                                    .unwrap_or("(none)")
                                    .to_owned()
                            };
                            *tally
                                .caller_identities
                                .entry(header("x-caller-identity"))
                                .or_default() += 1;
                            *tally
                                .server_identities
                                .entry(header("weft-server-identity"))
                                .or_default() += 1;
                            *tally
                                .statuses
                                .entry(response.status().as_u16())
                                .or_default() += 1;
                            let _ = response.into_body().collect().await;
                        }
                        Err(e) => *tally.errors.entry(e.to_string()).or_default() += 1,
                    }
                    tokio::time::sleep(pause).await;
                }
                tally
            })
        })
        .collect();
    let mut total = Tally::default();
    for l in loops {
        if let Ok(tally) = l.await {
            total.merge(tally);
        }
    }
    total
}

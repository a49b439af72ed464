//! Discovery: what an intercepted destination address is, kept current by the control plane.
//!
//! The first connection to an address starts a watch (`weft.discovery.v1.Discovery/Watch`) that
//! lives as long as the proxy: later connections to the same address find the answer in memory,
//! and every change the control plane sends replaces it. When the stream breaks (the control
//! plane restarts or is unreachable) the last answer stays in force while the watch reconnects
//! with backoff; the first message after reconnecting is the full current answer.

mod resolution;
mod watch;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use weft_api::discovery::discovery_client::DiscoveryClient;

use crate::metrics::Metrics;
pub use resolution::Resolution;

/// How long a new connection waits for the control plane's first answer about its destination.
pub const FIRST_ANSWER_TIMEOUT: Duration = Duration::from_secs(3);

/// The current answer for one address; `None` until the control plane has sent one.
pub type Answer = tokio::sync::watch::Receiver<Option<Resolution>>;

pub struct Discovery {
    client: DiscoveryClient<Channel>,
    watches: Mutex<HashMap<SocketAddr, Answer>>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
}

#[derive(Debug, thiserror::Error)]
#[error("the control plane has not answered for {addr} within {waited:?}")]
pub struct NoAnswer {
    pub addr: SocketAddr,
    pub waited: Duration,
}

impl Discovery {
    pub fn new(channel: Channel, metrics: Arc<Metrics>, stop: CancellationToken) -> Self {
        Self {
            client: DiscoveryClient::new(channel),
            watches: Mutex::new(HashMap::new()),
            metrics,
            stop,
        }
    }

    /// The live answer for `addr`, waiting (bounded) for the first one if it is new.
    pub async fn resolve(&self, addr: SocketAddr) -> Result<Answer, NoAnswer> {
        let mut answer = self.answer(addr);
        let ready = tokio::time::timeout(FIRST_ANSWER_TIMEOUT, answer.wait_for(Option::is_some))
            .await
            .is_ok_and(|r| r.is_ok());
        match ready {
            true => Ok(answer),
            false => Err(NoAnswer {
                addr,
                waited: FIRST_ANSWER_TIMEOUT,
            }),
        }
    }

    fn answer(&self, addr: SocketAddr) -> Answer {
        let mut watches = self
            .watches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        watches
            .entry(addr)
            .or_insert_with(|| {
                let (tx, rx) = tokio::sync::watch::channel(None);
                self.metrics.discovery_watches.inc();
                tokio::spawn(watch::run(
                    self.client.clone(),
                    addr,
                    tx,
                    self.metrics.clone(),
                    self.stop.clone(),
                ));
                rx
            })
            .clone()
    }
}

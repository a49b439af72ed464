//! One address's watch: stream answers from the control plane into a `watch` channel, and
//! reconnect with backoff (keeping the last answer) whenever the stream ends.
//!
//! The same loop serves both kinds of watch: a destination's (answers become a [`Resolution`])
//! and one of this pod's own ports (answers become an [`InboundPolicy`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch::Sender;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use weft_api::discovery::WatchRequest;
use weft_api::discovery::discovery_client::DiscoveryClient;

use super::Resolution;
use crate::identity::call_error::describe;
use crate::identity::control_plane::ConnectFailure;
use crate::policy::server::InboundPolicy;
use crate::resilience::backoff::Backoff;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::metrics::discovery::{WatchState, WatchStateGauge};

/// What a watch turns each answer into.
pub trait Answer: Send + Sync + 'static {
    /// Converts `answer`, keeping what state `previous` had that still applies.
    fn from_proto(
        answer: weft_api::discovery::Resolution,
        previous: Option<&Self>,
        metrics: &Arc<Metrics>,
    ) -> Self;
    /// A short description for logs.
    fn summary(&self) -> String;
}

impl Answer for Resolution {
    fn from_proto(
        answer: weft_api::discovery::Resolution,
        previous: Option<&Self>,
        metrics: &Arc<Metrics>,
    ) -> Self {
        Resolution::from_proto(answer, previous, metrics)
    }
    fn summary(&self) -> String {
        Resolution::summary(self)
    }
}

impl Answer for InboundPolicy {
    fn from_proto(
        answer: weft_api::discovery::Resolution,
        previous: Option<&Self>,
        metrics: &Arc<Metrics>,
    ) -> Self {
        InboundPolicy::from_proto(answer, previous, metrics)
    }
    fn summary(&self) -> String {
        InboundPolicy::summary(self)
    }
}

pub async fn run<T: Answer>(
    channels: tokio::sync::watch::Receiver<Channel>,
    request: WatchRequest,
    answers: Sender<Option<T>>,
    metrics: Arc<Metrics>,
    unreachable: Arc<AtomicBool>,
    stop: CancellationToken,
) {
    // Destination watches and this pod's server policy watches are counted apart.
    let (watches, kind) = match request.server {
        false => (&metrics.discovery.watches, "destination"),
        true => (&metrics.discovery.server_policy_watches, "server_policy"),
    };
    watches.inc();
    let mut state = WatchStateGauge::new(&metrics.discovery, kind);
    tokio::select! {
        _ = stop.cancelled() => {}
        // Nobody needs the answer any more: the address was forgotten and its connections ended.
        _ = answers.closed() => {}
        _ = follow_forever(&channels, &request, &answers, &metrics, &unreachable, &mut state) => {}
    }
    watches.dec();
}

async fn follow_forever<T: Answer>(
    channels: &tokio::sync::watch::Receiver<Channel>,
    request: &WatchRequest,
    answers: &Sender<Option<T>>,
    metrics: &Arc<Metrics>,
    unreachable: &AtomicBool,
    state: &mut WatchStateGauge,
) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let addr = &request.address;
    loop {
        // Each attempt on the channel in force now (it presents the current certificate).
        let mut client = DiscoveryClient::new(channels.borrow().clone());
        let ended = follow(
            &mut client,
            request,
            answers,
            metrics,
            unreachable,
            &mut backoff,
            state,
        )
        .await;
        if state.state() == WatchState::Current {
            state.set(WatchState::Stale);
        }
        if let Ended::Refused(status) | Ended::Broken(status) = &ended
            && status.code() == tonic::Code::Unavailable
        {
            unreachable.store(true, Ordering::Relaxed);
        }
        metrics
            .discovery
            .errors
            .with_label_values(&[ended.label()])
            .inc();
        let delay = backoff.next_delay(fastrand::f64());
        let kept = if answers.borrow().is_some() {
            "keeping the last answer"
        } else {
            "no answer yet"
        };
        let retry_in = humantime::format_duration(Duration::from_millis(delay.as_millis() as u64));
        tracing::warn!(%addr, "discovery watch ended: {ended}; {kept}, retrying in {retry_in}");
        tokio::time::sleep(delay).await;
    }
}

#[derive(Debug)]
enum Ended {
    Refused(tonic::Status),
    Broken(tonic::Status),
    Closed,
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = match self {
            Ended::Refused(status) | Ended::Broken(status) => Some(status),
            Ended::Closed => None,
        };
        // No connection: the connector's sentence (a dead address, a foreign CA, no
        // certificate yet).
        if let Some(failure) = status.and_then(|s| ConnectFailure::in_chain(s)) {
            return write!(f, "{failure}");
        }
        match self {
            Ended::Refused(status) if status.code() == tonic::Code::Unavailable => {
                write!(f, "the control plane is unreachable: {}", describe(status))
            }
            Ended::Refused(status) => {
                write!(f, "the control plane refused it: {}", describe(status))
            }
            Ended::Broken(status) => write!(f, "the stream broke: {}", describe(status)),
            Ended::Closed => f.write_str("the control plane closed the stream"),
        }
    }
}

impl Ended {
    fn label(&self) -> &'static str {
        match self {
            Ended::Refused(_) => "refused",
            Ended::Broken(_) => "broken",
            Ended::Closed => "closed",
        }
    }
}

/// Follows one stream until it ends, publishing every answer.
async fn follow<T: Answer>(
    client: &mut DiscoveryClient<Channel>,
    request: &WatchRequest,
    answers: &Sender<Option<T>>,
    metrics: &Arc<Metrics>,
    unreachable: &AtomicBool,
    backoff: &mut Backoff,
    state: &mut WatchStateGauge,
) -> Ended {
    let mut stream = match client.watch(request.clone()).await {
        Ok(response) => response.into_inner(),
        Err(status) => return Ended::Refused(status),
    };
    loop {
        match stream.message().await {
            Ok(Some(answer)) => {
                backoff.reset();
                unreachable.store(false, Ordering::Relaxed);
                metrics.discovery.updates.inc();
                answers.send_modify(|current| {
                    let next = T::from_proto(answer, current.as_ref(), metrics);
                    tracing::debug!(address = %request.address, server = request.server, "discovery: {}", next.summary());
                    *current = Some(next);
                });
                state.set(WatchState::Current);
            }
            Ok(None) => return Ended::Closed,
            Err(status) => return Ended::Broken(status),
        }
    }
}

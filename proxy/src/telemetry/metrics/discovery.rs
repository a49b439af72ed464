//! Discovery: the watches of the control plane, their answers, errors and states.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry};

use super::{counter, gauge, single_counter, single_gauge};

pub struct DiscoveryMetrics {
    /// `weft_discovery_watches`: destination addresses being watched.
    pub watches: IntGauge,
    /// `weft_discovery_updates_total`: answers received from the control plane.
    pub updates: IntCounter,
    /// `weft_discovery_stream_errors_total{reason}`: watches that ended and were retried.
    pub errors: IntCounterVec,
    /// `weft_discovery_server_policy_watches`: this pod's own ports whose server policy is
    /// watched (destination watches are `weft_discovery_watches`).
    pub server_policy_watches: IntGauge,
    /// `weft_discovery_watch_states{kind,state}`: watches by kind (destination,
    /// server_policy) and [`WatchState`].
    watch_states: IntGaugeVec,
}

impl DiscoveryMetrics {
    pub fn new(registry: &Registry) -> Self {
        Self {
            watches: single_gauge(
                registry,
                "weft_discovery_watches",
                "Destination addresses this proxy watches through discovery.",
            ),
            updates: single_counter(
                registry,
                "weft_discovery_updates_total",
                "Discovery answers received from the control plane.",
            ),
            errors: counter(
                registry,
                "weft_discovery_stream_errors_total",
                "Discovery watches that ended (and were retried), by reason.",
                &["reason"],
            ),
            server_policy_watches: single_gauge(
                registry,
                "weft_discovery_server_policy_watches",
                "This pod's own ports whose server policy this proxy watches through discovery.",
            ),
            watch_states: gauge(
                registry,
                "weft_discovery_watch_states",
                "Discovery watches by kind (destination, server_policy) and state: waiting (no answer yet), current (answer in force, stream up) or stale (answer in force, stream reconnecting).",
                &["kind", "state"],
            ),
        }
    }

    /// The gauge of watches of `kind` in `state`.
    pub fn watch_state(&self, kind: &str, state: WatchState) -> IntGauge {
        self.watch_states.with_label_values(&[kind, state.label()])
    }
}

/// Where a watch of the control plane stands (`weft_discovery_watch_states{kind,state}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchState {
    /// No answer yet: connections wait for it (bounded) or go without it.
    Waiting,
    /// The last answer is in force and the stream is up: changes arrive as they happen.
    Current,
    /// The stream broke after an answer: the last answer stays in force while it reconnects.
    Stale,
}

impl WatchState {
    fn label(self) -> &'static str {
        match self {
            WatchState::Waiting => "waiting",
            WatchState::Current => "current",
            WatchState::Stale => "stale",
        }
    }
}

/// One watch's place in `weft_discovery_watch_states`: in exactly one state from creation until
/// dropped.
pub struct WatchStateGauge {
    /// `weft_discovery_watch_states`, shared with [`DiscoveryMetrics`].
    states: IntGaugeVec,
    kind: &'static str,
    state: WatchState,
    gauge: IntGauge,
}

impl WatchStateGauge {
    pub fn new(metrics: &DiscoveryMetrics, kind: &'static str) -> Self {
        let gauge = metrics.watch_state(kind, WatchState::Waiting);
        gauge.inc();
        Self {
            states: metrics.watch_states.clone(),
            kind,
            state: WatchState::Waiting,
            gauge,
        }
    }

    pub fn set(&mut self, state: WatchState) {
        if state == self.state {
            return;
        }
        self.gauge.dec();
        self.gauge = self.states.with_label_values(&[self.kind, state.label()]);
        self.gauge.inc();
        self.state = state;
    }

    pub fn state(&self) -> WatchState {
        self.state
    }
}

impl Drop for WatchStateGauge {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

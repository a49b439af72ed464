//! The server policy of the port a connection arrived at, read afresh for every request so
//! that a policy edit applies to connections already open.

use std::sync::Arc;

use crate::discovery::InboundAnswer;
use crate::policy::server::InboundMode;
use crate::policy::server::ServerPolicy;
use crate::telemetry::Label;
use crate::transport::port_protocol::PortProtocol;

#[derive(Clone)]
pub struct PortPolicy(Option<InboundAnswer>);

impl PortPolicy {
    pub fn new(answer: InboundAnswer) -> Self {
        Self(Some(answer))
    }

    /// Nothing to enforce (no discovery, or a connection without a local address).
    pub fn none() -> Self {
        Self(None)
    }

    /// The server policy in force now, if the port's service has one.
    pub fn current(&self) -> Option<Arc<ServerPolicy>> {
        let answer = self.0.as_ref()?.borrow();
        answer.as_ref()?.policy.clone()
    }

    /// What the port carries, as discovery declares it (detected when nothing is known).
    pub fn protocol(&self) -> PortProtocol {
        self.0
            .as_ref()
            .and_then(|answer| Some(answer.borrow().as_ref()?.protocol))
            .unwrap_or_default()
    }

    /// The port's service (`<name>.<namespace>`) as discovery answered, with or without a
    /// server policy: what the inbound request metrics name as `destination_service`.
    pub fn service(&self) -> Option<Label> {
        let answer = self.0.as_ref()?.borrow();
        answer.as_ref()?.service.clone()
    }

    /// The port's `mtls` setting, if its policy has one.
    pub fn mtls(&self) -> Option<InboundMode> {
        self.current()?.mtls
    }
}

//! An `HTTPRoute` (or a `GRPCRoute`) as checked: who it is for (its Service parents) and its
//! rules, each already in the shape the proxy receives (`weft.policy.v1.RouteRule` and its
//! matches), so compiling a table is choosing and sorting, not converting.

use weft_api::policy::{RouteRule, RuleMatch};

use crate::policy::node::Pos;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HttpRoute {
    /// `HTTPRoute` or `GRPCRoute` (whose matches are paths by now, see
    /// [`super::check_grpc`]).
    pub kind: &'static str,
    pub name: String,
    pub namespace: String,
    /// Where `metadata.name` was written.
    pub at: Pos,
    /// A short hash of `spec`, for the version in force.
    pub hash: String,
    /// `metadata.creationTimestamp` (RFC 3339, which sorts as text), if written.
    pub created: Option<String>,
    /// The position of the document in the set read, the age of a route without a timestamp.
    pub order: usize,
    /// The Services the route is attached to (other parents, such as Gateways, are not kept).
    pub parents: Vec<Parent>,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Parent {
    /// `<name>.<namespace>`
    pub service: String,
    /// `None`: every port of the Service.
    pub port: Option<u16>,
    pub at: Pos,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rule {
    /// The rule as the proxy gets it (`route` is filled in when compiled).
    pub proto: RouteRule,
    /// The rule's matches (`rule` is filled in when compiled); at least one.
    pub matches: Vec<RuleMatch>,
}

impl HttpRoute {
    /// `<namespace>/<name>`
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether the route is attached to `service`'s `port`.
    pub fn is_for(&self, service: &str, port: u16) -> bool {
        self.parents
            .iter()
            .any(|p| p.service == service && p.port.is_none_or(|p| p == port))
    }

    /// The namespace of `service` (`<name>.<namespace>`).
    pub fn service_namespace(service: &str) -> &str {
        service.split_once('.').map_or("", |(_, ns)| ns)
    }
}

//! A request to a destination with Gateway API routes: the first match of the table picks the
//! rule; the rule redirects, or modifies and rewrites the request, and picks a backend by
//! weight. Each backend is a Service of its own, resolved by name through discovery
//! (`name.namespace:port`), with its own endpoints, balancer, breakers and ServicePolicy client
//! half; the request then takes the same path as any other ([`super::request`]), under the
//! backend's policy with the rule's timeouts and retry in place of its own. The backend policy's
//! part is its override naming the rule (`gatewayRules`) when it has one, else the route the
//! request matches. A rule with `RequestMirror` filters also starts a copy of the request for
//! each mirror ([`super::mirror`]).
//!
//! What the spec answers with `500` (a rule with no backend of weight above 0, a backend that
//! does not exist or that no ReferenceGrant allows) and `404` (no rule matches) are weft's answers, with `weft-error`.

use std::sync::Arc;

use http::{Request, Response};

use super::{Outbound, by_name, mirror, request};
use crate::destination::Destination;
use crate::http::body::Body;
use crate::http::error::ProxyError;
use crate::policy::gateway::RouteTable;
use crate::telemetry::exchange::Exchange;

pub async fn send(
    outbound: &Arc<Outbound>,
    parent: &Destination,
    table: &RouteTable,
    mut req: Request<Body>,
    exchange: &mut Exchange,
) -> Result<Response<Body>, ProxyError> {
    let Some(matched) = table.find(&req) else {
        return Err(ProxyError::NoRoute {
            service: parent.name.clone(),
            version: table.version.clone(),
        });
    };
    let rule = matched.rule;
    exchange.route = Some(rule.label.clone());
    if let Some(redirect) = &rule.redirect {
        return Ok(redirect.response(&req, matched.prefix));
    }
    let Some(backend) = rule.pick(fastrand::f64()) else {
        return Err(ProxyError::NoBackend {
            rule: rule.label.clone(),
        });
    };
    exchange.backend = Some(backend.service.clone());
    if backend.ref_not_permitted {
        return Err(ProxyError::BackendNotPermitted {
            backend: backend.address.clone(),
            rule: rule.label.clone(),
        });
    }
    if let Some(modifier) = &rule.request_headers {
        modifier.apply(req.headers_mut());
    }
    if let Some(rewrite) = &rule.rewrite {
        rewrite.apply(&mut req, matched.prefix);
    }
    if !rule.mirrors.is_empty() {
        mirror::start(outbound, &parent.name, rule, &mut req);
    }
    if let Some(modifier) = &backend.request_headers {
        modifier.apply(req.headers_mut());
    }
    let destination = by_name::resolve(outbound, &backend.address)
        .await
        .ok_or_else(|| ProxyError::BackendNotFound {
            backend: backend.address.clone(),
            rule: rule.label.clone(),
        })?;
    let base = match destination.policy.gateway_rule(&rule.route, &rule.name) {
        Some(overridden) => overridden,
        None => destination.policy.route(&req),
    };
    let policy = rule.policy(base);
    let mut response =
        request::send(outbound, &destination, &policy, req, &exchange.attempts).await?;
    if let Some(modifier) = &rule.response_headers {
        modifier.apply(response.headers_mut());
    }
    if let Some(modifier) = &backend.response_headers {
        modifier.apply(response.headers_mut());
    }
    Ok(response)
}

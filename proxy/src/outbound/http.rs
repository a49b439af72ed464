//! HTTP from the local app: each request goes through the destination's client policy
//! ([`super::request`]) over the pooled mutual-TLS connection; upgrades get their own connection.
//! Each is recorded here (metrics, span, access log: [`crate::telemetry`]).

use std::sync::Arc;

use http::{HeaderValue, Request, Response, Version};
use tokio_util::sync::CancellationToken;

use super::{Outbound, Target, request, routed};
use crate::destination::Destination;
use crate::http::body::Body;
use crate::http::error::ProxyError;
use crate::http::headers;
use crate::http::server::{self, Caller};
use crate::http::upgrade;
use crate::telemetry::{ConnectionTelemetry, Direction, Label};
use crate::tls::alpn;
use crate::transport::BoxedConnection;
use crate::transport::port_protocol::HttpVersion;

pub async fn serve(
    outbound: Arc<Outbound>,
    io: BoxedConnection,
    version: HttpVersion,
    target: Target,
    stop: CancellationToken,
) {
    let name = target.current().map(|d| d.name.clone()).unwrap_or_default();
    let context = Arc::new(Context {
        telemetry: ConnectionTelemetry::new(
            &outbound.telemetry,
            Direction::Outbound,
            outbound.telemetry.identity.clone(),
        ),
        name: name.clone(),
        outbound: outbound.clone(),
        target,
    });
    let refused = server::serve(io, version, Caller::Untrusted, stop, move |req| {
        context.clone().handle(req)
    })
    .await;
    if let Some(refusal) = refused {
        outbound.error(refusal.reason());
        tracing::warn!(destination = %name, reason = refusal.reason(), "closed the app's connection: {refusal}");
    }
}

/// One app connection's requests to one destination.
struct Context {
    outbound: Arc<Outbound>,
    target: Target,
    /// The destination's name when the connection was accepted.
    name: Label,
    /// The app's requests' metrics, spans and log lines.
    telemetry: Arc<ConnectionTelemetry>,
}

impl Context {
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn keeps its arguments twice"
    )]
    fn handle(self: Arc<Self>, mut req: Request<Body>) -> impl Future<Output = Response<Body>> {
        async move {
            let mut exchange = self.telemetry.begin(&mut req);
            let grpc = exchange.grpc();
            let destination = self.target.current();
            exchange.service = Some(destination.as_ref().map_or(&self.name, |d| &d.name).clone());
            let result = match (&destination, upgrade::requested(&req)) {
                (Some(destination), None) => match &destination.routes {
                    // Boxed: the routed path's state is the largest of the request's, and most
                    // destinations have no routes.
                    Some(routes) => {
                        let routed =
                            routed::send(&self.outbound, destination, routes, req, &mut exchange);
                        Box::pin(routed).await
                    }
                    None => {
                        let route = destination.policy.route(&req).clone();
                        exchange.route = Some(route.name.clone());
                        request::send(&self.outbound, destination, &route, req, &exchange.attempts)
                            .await
                    }
                },
                (Some(destination), Some(protocol)) => {
                    Box::pin(forward_upgrade(&self.outbound, destination, req, protocol)).await
                }
                (None, _) => Err(ProxyError::NoEndpoints(self.name.clone())),
            };
            let response = match result {
                Ok(response) => response,
                Err(e) => {
                    self.outbound.error(e.reason());
                    tracing::warn!(destination = exchange.service.as_deref(), "{e}");
                    e.response(grpc)
                }
            };
            let observed = self.telemetry.respond(exchange, response);
            observed.map(|body| Body::Observed(Box::new(body)))
        }
    }
}

/// An HTTP/1.1 upgrade request: its own mutual-TLS connection speaking HTTP/1.1 (see
/// [`upgrade`]).
async fn forward_upgrade(
    outbound: &Outbound,
    destination: &Destination,
    mut req: Request<Body>,
    protocol: HeaderValue,
) -> Result<Response<Body>, ProxyError> {
    let (endpoint, _) = destination
        .pick(None)
        .map_err(|_| ProxyError::NoEndpoints(destination.name.clone()))?;
    let caller = upgrade::on(&mut req);
    headers::to_mesh(&mut req, || endpoint.addr.to_string()).map_err(ProxyError::BadRequest)?;
    *req.version_mut() = Version::HTTP_11;
    upgrade::restore(&mut req, protocol);
    let in_flight = endpoint.load.start();
    let tls = match outbound
        .pool_connector()
        .open(endpoint, alpn::MESH_HTTP1)
        .await
    {
        Ok(tls) => tls,
        Err(e) => {
            if !e.is_local() {
                destination.record(endpoint, true);
            }
            return Err(e);
        }
    };
    destination.record(endpoint, false);
    let response = upgrade::forward(Box::new(tls), endpoint.addr, req, caller)
        .await
        .map_err(|source| ProxyError::PeerHttp {
            addr: endpoint.addr,
            source,
        })?;
    in_flight.finished();
    Ok(response)
}

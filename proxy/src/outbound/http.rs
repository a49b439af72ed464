//! HTTP from the local app: each request goes through the destination's client policy
//! ([`super::request`]) over the pooled mutual-TLS connection; upgrades get their own connection.
//! The result is counted here.

use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Request, Response, Version};
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use super::{Destination, Outbound, Target, request};
use crate::body::{self, Body};
use crate::errors::ProxyError;
use crate::headers;
use crate::http_server::{self, Caller, HttpVersion};
use crate::metrics::StatusCounters;
use crate::tls::alpn;
use crate::upgrade;

pub async fn serve<I>(
    outbound: Arc<Outbound>,
    io: I,
    version: HttpVersion,
    target: Target,
    stop: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let name = target.current().map(|d| d.name.clone()).unwrap_or_default();
    let context = Arc::new(Context {
        requests: StatusCounters::new(&outbound.metrics.outbound_requests, name.clone()),
        outbound: outbound.clone(),
        target,
    });
    let refused = http_server::serve(io, version, Caller::Untrusted, stop, move |req| {
        let context = context.clone();
        async move { context.handle(req).await }
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
    /// `weft_outbound_requests_total` for this destination.
    requests: StatusCounters,
}

impl Context {
    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        let grpc = headers::is_grpc(&req);
        let destination = self.target.current();
        let result = match (&destination, upgrade::requested(&req)) {
            (Some(destination), None) => request::send(&self.outbound, destination, req).await,
            (Some(destination), Some(protocol)) => {
                Box::pin(forward_upgrade(&self.outbound, destination, req, protocol)).await
            }
            (None, _) => Err(ProxyError::NoEndpoints(self.requests.label().to_owned())),
        };
        let response = match result {
            Ok(response) => response,
            Err(e) => {
                self.outbound.error(e.reason());
                tracing::warn!(destination = %self.requests.label(), "{e}");
                e.response(grpc)
            }
        };
        self.requests.inc(response.status());
        self.outbound
            .metrics
            .outbound_duration
            .observe(started.elapsed().as_secs_f64());
        response
    }
}

/// An HTTP/1.1 upgrade request: its own mutual-TLS connection speaking HTTP/1.1 (see
/// [`upgrade`]).
async fn forward_upgrade(
    outbound: &Outbound,
    destination: &Destination,
    mut req: Request<Incoming>,
    protocol: HeaderValue,
) -> Result<Response<Body>, ProxyError> {
    let (endpoint, _) = destination
        .pick(None)
        .map_err(|_| ProxyError::NoEndpoints(destination.name.clone()))?;
    let caller = hyper::upgrade::on(&mut req);
    let mut req = req.map(body::stream);
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
            destination.record(endpoint, true);
            return Err(e);
        }
    };
    destination.record(endpoint, false);
    let response =
        upgrade::forward(tls, req, caller)
            .await
            .map_err(|source| ProxyError::PeerHttp {
                addr: endpoint.addr,
                source,
            })?;
    in_flight.finished();
    Ok(response.map(body::stream))
}

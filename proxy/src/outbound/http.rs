//! HTTP from the local app: rewrite for HTTP/2 between proxies, pick an endpoint, send it over
//! the pooled mutual-TLS connection, and count the result.

use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use super::{Destination, Outbound};
use crate::body::{self, Body};
use crate::errors::ProxyError;
use crate::headers;
use crate::http_server::{self, HttpVersion};
use crate::metrics::StatusCounters;

pub async fn serve<I>(
    outbound: Arc<Outbound>,
    io: I,
    version: HttpVersion,
    destination: Arc<Destination>,
    stop: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let context = Arc::new(Context {
        requests: StatusCounters::new(
            &outbound.metrics.outbound_requests,
            destination.name.clone(),
        ),
        outbound,
        destination,
    });
    http_server::serve(io, version, stop, move |req| {
        let context = context.clone();
        async move { context.handle(req).await }
    })
    .await
}

/// One app connection's requests to one destination.
struct Context {
    outbound: Arc<Outbound>,
    destination: Arc<Destination>,
    /// `weft_outbound_requests_total` for this destination.
    requests: StatusCounters,
}

impl Context {
    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        let grpc = headers::is_grpc(&req);
        let response = match forward(&self.outbound, &self.destination, req).await {
            Ok(response) => response.map(body::stream),
            Err(e) => {
                self.outbound.error(e.reason());
                tracing::warn!(destination = %self.destination.name, "{e}");
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

async fn forward(
    outbound: &Outbound,
    destination: &Destination,
    req: Request<Incoming>,
) -> Result<Response<Incoming>, ProxyError> {
    let endpoint = destination
        .pick()
        .ok_or_else(|| ProxyError::NoEndpoints(destination.name.clone()))?;
    let mut req = req.map(body::stream);
    headers::to_mesh(&mut req, || endpoint.addr.to_string()).map_err(ProxyError::BadRequest)?;
    let mut response = outbound.pool.send(endpoint, req).await?;
    if let Some(identity) = endpoint.identity_header() {
        response
            .headers_mut()
            .insert(headers::SERVER_IDENTITY, identity.clone());
    }
    Ok(response)
}

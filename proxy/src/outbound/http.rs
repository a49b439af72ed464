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

pub async fn serve<I>(
    outbound: Arc<Outbound>,
    io: I,
    version: HttpVersion,
    destination: Arc<Destination>,
    stop: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    http_server::serve(io, version, stop, move |req| {
        let (outbound, destination) = (outbound.clone(), destination.clone());
        async move { handle(&outbound, &destination, req).await }
    })
    .await
}

async fn handle(
    outbound: &Outbound,
    destination: &Destination,
    req: Request<Incoming>,
) -> Response<Body> {
    let started = Instant::now();
    let grpc = headers::is_grpc(&req);
    let response = match forward(outbound, destination, req).await {
        Ok(response) => response.map(body::stream),
        Err(e) => {
            outbound.error(e.reason());
            tracing::warn!(destination = %destination.name, "{e}");
            e.response(grpc)
        }
    };
    let metrics = &outbound.metrics;
    metrics
        .outbound_requests
        .with_label_values(&[destination.name.as_str(), response.status().as_str()])
        .inc();
    metrics
        .request_duration
        .with_label_values(&["outbound"])
        .observe(started.elapsed().as_secs_f64());
    response
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
    headers::to_mesh(&mut req, &endpoint.addr.to_string()).map_err(ProxyError::BadRequest)?;
    let mut response = outbound.pool.send(endpoint, req).await?;
    if let Some(identity) = endpoint.identity_header() {
        response
            .headers_mut()
            .insert(headers::SERVER_IDENTITY, identity);
    }
    Ok(response)
}

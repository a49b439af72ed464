//! HTTP for the local app: admit the request by the port's server policy, tag it with the
//! caller's identity, restore the version the caller's app spoke, forward it, and record it
//! (metrics, span, access log: [`crate::telemetry`]).

use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderValue, Request, Response};
use http_body::Body as _;
use tokio_util::sync::CancellationToken;
use weft_certs::SpiffeId;

use super::admission::{self, Caller};
use super::{Inbound, PortPolicy, client_label};
use crate::http::body::Body;
use crate::http::body::caller::BodyWatch;
use crate::http::client::app::{AppH2, AppTarget};
use crate::http::error::ProxyError;
use crate::http::headers::{self, Carried};
use crate::http::server;
use crate::http::upgrade;
use crate::policy::DEFAULT_ROUTE;
use crate::telemetry::{ConnectionTelemetry, Direction};
use crate::transport::BoxedConnection;
use crate::transport::port_protocol::HttpVersion;

pub async fn serve(
    inbound: Arc<Inbound>,
    io: BoxedConnection,
    version: HttpVersion,
    identity: Option<SpiffeId>,
    target: SocketAddr,
    policy: PortPolicy,
    stop: CancellationToken,
) {
    let metrics = inbound.metrics.clone();
    let context = Arc::new(Context {
        identity_header: identity
            .as_ref()
            .and_then(|id| HeaderValue::from_str(&id.to_string()).ok()),
        telemetry: ConnectionTelemetry::new(
            &inbound.telemetry,
            Direction::Inbound,
            client_label(identity.as_ref()),
        ),
        caller_identity: identity.as_ref().map(ToString::to_string),
        app_h2: inbound.app.h2_for_caller(),
        inbound,
        target: AppTarget::new(target),
        policy,
    });
    let caller = match identity {
        Some(_) => server::Caller::PeerProxy,
        None => server::Caller::Untrusted,
    };
    let client = context.telemetry.source_identity().to_owned();
    let refused = server::serve(io, version, caller, stop, move |req| {
        context.clone().handle(req)
    })
    .await;
    if let Some(refusal) = refused {
        metrics
            .proxy
            .proxy_errors
            .with_label_values(&["inbound", refusal.reason()])
            .inc();
        tracing::warn!(%client, reason = refusal.reason(), "closed the connection: {refusal}");
    }
}

struct Context {
    inbound: Arc<Inbound>,
    identity_header: Option<HeaderValue>,
    /// The caller's SPIFFE ID; `None` for plaintext callers.
    caller_identity: Option<String>,
    /// This caller's requests' metrics, spans and log lines.
    telemetry: Arc<ConnectionTelemetry>,
    target: AppTarget,
    /// This connection's own HTTP/2 connections to the app (see `crate::http::client::app`).
    app_h2: AppH2,
    policy: PortPolicy,
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
            let policy = self.policy.current();
            exchange.service = self.policy.service();
            exchange.route = policy.as_ref().and_then(|p| p.route(&req)).cloned();
            let route = exchange.route.as_deref().unwrap_or(DEFAULT_ROUTE);
            let admitted = match &policy {
                None => Ok(None),
                Some(policy) => {
                    let caller = Caller {
                        identity: self.caller_identity.as_deref(),
                        label: self.telemetry.source_identity(),
                    };
                    admission::admit(policy, route, &caller, &self.inbound.metrics)
                }
            };
            let response = match admitted {
                Ok(delay) => {
                    if let Some(delay) = delay {
                        tokio::time::sleep(delay).await;
                    }
                    self.forward(req, grpc).await
                }
                Err(refusal) => refusal.response(grpc),
            };
            let observed = self.telemetry.respond(exchange, response);
            observed.map(|body| Body::Observed(Box::new(body)))
        }
    }

    async fn forward(&self, mut req: Request<Body>, grpc: bool) -> Response<Body> {
        let upgrade = upgrade::requested(&req).map(|protocol| (protocol, upgrade::on(&mut req)));
        let version = headers::for_app(&mut req, self.identity_header.as_ref());

        let metrics = &self.inbound.metrics;
        let mut watch = BodyWatch::default();
        let sent = match upgrade {
            Some((protocol, caller)) => {
                upgrade::restore(&mut req, protocol);
                Box::pin(self.inbound.app.upgrade(&self.target, req, caller)).await
            }
            None => {
                let req = req.map(|body| match body.is_end_stream() {
                    true => body,
                    false => watch.wrap(body),
                });
                let app = &self.inbound.app;
                let sent = Box::pin(app.send(&self.target, version, req, &self.app_h2)).await;
                // The caller's body broke, not the app: say so (400), not `app_http_error`.
                sent.map_err(|e| match watch.failure() {
                    Some(failure) => ProxyError::RequestBody(failure.clone()),
                    None => e,
                })
            }
        };
        match sent {
            Ok(mut response) => {
                let carried = Carried::scan(response.headers());
                // `weft-error` says that a proxy answered: never the app.
                carried.remove(Carried::ERROR, response.headers_mut());
                // A 101 keeps `Connection`/`Upgrade`: they are what it answers.
                if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
                    headers::strip_hop_by_hop(response.headers_mut(), carried);
                }
                response
            }
            Err(e) => {
                metrics
                    .proxy
                    .proxy_errors
                    .with_label_values(&["inbound", e.reason()])
                    .inc();
                tracing::warn!(client = %self.telemetry.source_identity(), "{e}");
                e.response(grpc)
            }
        }
    }
}

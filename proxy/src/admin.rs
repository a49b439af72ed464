//! The admin port (15000): probes, metrics and a look inside, for Kubernetes and for humans.
//!
//! - `GET /live`: the process is serving.
//! - `GET /ready`: 200 once the proxy holds a valid certificate, 503 with the reason otherwise,
//!   and 503 `draining` once a shutdown has begun (so Kubernetes stops sending traffic).
//! - `GET /metrics`: Prometheus text format.
//! - `GET /identity`: the current certificate (identity, serial, validity, rotations) as JSON.
//! - `GET /config`: the effective configuration as JSON (no secrets).
//! - `GET /log-level`, `PUT /log-level` (body: a level or filter): only from loopback, since it
//!   changes the proxy's behaviour.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::tls::TlsStore;
use crate::transport::accept_loop;

/// Changes the log filter at run time; returns an error message for a bad filter.
pub type LogLevelSetter = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

pub struct Admin {
    pub store: Arc<TlsStore>,
    pub metrics: Arc<Metrics>,
    pub config: serde_json::Value,
    /// The `--forward` listeners' targets, for `/destinations`.
    pub forwards: Vec<crate::outbound::Target>,
    pub discovery: Option<Arc<crate::discovery::Discovery>>,
    pub log_level: Option<(LogLevelSetter, Mutex<String>)>,
    /// Fires when the proxy starts draining.
    pub draining: CancellationToken,
}

impl Admin {
    pub async fn serve(self: Arc<Self>, listener: TcpListener, stop: CancellationToken) {
        accept_loop(listener, "admin", stop, move |tcp, peer| {
            let admin = self.clone();
            async move {
                let service = service_fn(move |req| {
                    let admin = admin.clone();
                    async move { Ok::<_, Infallible>(admin.route(req, peer).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            }
        })
        .await
    }

    async fn route(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        match (req.method().clone(), req.uri().path()) {
            (Method::GET, "/live") => text(StatusCode::OK, "live\n"),
            (Method::GET, "/ready") if self.draining.is_cancelled() => {
                text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
            }
            (Method::GET, "/ready") => match self.store.readiness(SystemTime::now()) {
                Ok(()) => text(StatusCode::OK, "ready\n"),
                Err(why) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {why}\n"),
                ),
            },
            (Method::GET, "/metrics") => {
                let mut response = text(StatusCode::OK, self.metrics.render());
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                response
            }
            (Method::GET, "/identity") => json(self.identity()),
            (Method::GET, "/config") => json(self.config.clone()),
            (Method::GET, "/destinations") => json(crate::outbound::destinations(
                &self.forwards,
                self.discovery.as_deref(),
            )),
            (Method::GET, "/log-level") => match &self.log_level {
                Some((_, current)) => text(
                    StatusCode::OK,
                    format!("{}\n", current.lock().unwrap_or_else(|p| p.into_inner())),
                ),
                None => text(StatusCode::NOT_FOUND, "log level is not adjustable here\n"),
            },
            (Method::PUT, "/log-level") => self.set_log_level(req, peer).await,
            (
                _,
                "/live" | "/ready" | "/metrics" | "/identity" | "/config" | "/destinations"
                | "/log-level",
            ) => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
            _ => text(
                StatusCode::NOT_FOUND,
                "not found; try /live, /ready, /metrics, /identity, /config, /log-level\n",
            ),
        }
    }

    fn identity(&self) -> serde_json::Value {
        let ready = self.store.readiness(SystemTime::now());
        let mut out = serde_json::json!({
            "identity": self.store.identity().to_string(),
            "ready": ready.is_ok(),
        });
        if let Err(why) = ready {
            out["not_ready_reason"] = why.into();
        }
        if let Some(c) = self.store.current() {
            out["serial"] = c.info.serial.clone().into();
            out["not_before"] = weft_certs::format_time(c.info.not_before).into();
            out["not_after"] = weft_certs::format_time(c.info.not_after).into();
            out["issuer"] = c.info.issuer.clone().into();
            out["certificates_installed"] = c.generation.into();
            out["trust_bundle_roots"] = c.bundle.roots().len().into();
        }
        out
    }

    async fn set_log_level(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Full<Bytes>> {
        if !peer.ip().is_loopback() {
            return text(
                StatusCode::FORBIDDEN,
                "the log level can only be changed from loopback\n",
            );
        }
        let Some((setter, current)) = &self.log_level else {
            return text(StatusCode::NOT_FOUND, "log level is not adjustable here\n");
        };
        let body = match Limited::new(req.into_body(), 1024).collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => return text(StatusCode::BAD_REQUEST, "body too large\n"),
        };
        let level = String::from_utf8_lossy(&body).trim().to_owned();
        match setter(&level) {
            Ok(()) => {
                tracing::info!(%level, "log level changed");
                *current.lock().unwrap_or_else(|p| p.into_inner()) = level.clone();
                text(StatusCode::OK, format!("{level}\n"))
            }
            Err(e) => text(StatusCode::BAD_REQUEST, format!("invalid log level: {e}\n")),
        }
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(body.into()))
        .expect("the response parts are valid")
}

fn json(value: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(format!("{value:#}\n"))))
        .expect("the response parts are valid")
}

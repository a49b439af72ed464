//! The admin port (15000): probes, metrics and a look inside, for Kubernetes and for humans.
//!
//! - `GET /live`: the process is serving.
//! - `GET /ready`: 200 once the proxy holds a valid certificate, 503 with the reason otherwise,
//!   and 503 `draining` once a shutdown has begun (so Kubernetes stops sending traffic).
//! - `GET /metrics`: Prometheus text format.
//! - `GET /identity`: the current certificate (identity, serial, validity, rotations) as JSON.
//! - `GET /config`: the effective configuration as JSON (no secrets).
//! - `GET /destinations`: what each destination resolves to, its client policy and endpoints.
//! - `GET /inbound`: the server policy in force on each of this pod's ports that has had a
//!   connection, with the fault drills active now.
//! - `GET /tap`: a live stream of the requests served, one JSON object a line, only to loopback
//!   callers and to identities named by `--tap-allow` ([`tap`]).
//! - `GET /log-level`, `PUT /log-level` (body: a level or filter): only from loopback, since it
//!   changes the proxy's behaviour (others get 403, counted in
//!   `weft_admin_requests_refused_total{reason="not_loopback"}`).
//!
//! The port speaks plain HTTP; a connection that opens with a TLS handshake is served over mTLS
//! with the mesh's certificates instead, and its requests carry the identity it proved
//! ([`tls`]).
//!
//! The port is reachable from the pod network (kubelet probes, Prometheus scrapes), so a client
//! must not be able to hold connections open for nothing. Two bounds close them, each counted in
//! `weft_admin_connections_closed_total{reason}`:
//!
//! - [`Admin::header_read_timeout`] is hyper's: from the accept, and from the end of each
//!   response on a kept-alive connection, to the last byte of the next request head. hyper 1.x
//!   starts that timer whenever the connection waits for a head, so it bounds both a head sent
//!   slowly (`header_timeout`) and a connection that sends no request at all (`idle`).
//! - [`Admin::stall_timeout`] covers the rest, where hyper has no timer: no byte read or written
//!   for that long while a request is served, such as a request body that stops coming or a
//!   response the client stops reading (`stalled`). A `/tap` stream marks its connection alive
//!   while its reader keeps up.
//!
//! The write buffers are small (hyper's [`MAX_BUF_SIZE`], the socket's [`SEND_BUFFER`], which
//! also turns off the kernel's growing of it up to megabytes): a tap reader that stops reading
//! holds little memory, and is noticed (its events dropped) after a few hundred events.

mod activity;
mod tap;
mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use weft_certs::SpiffeId;

use crate::telemetry::metrics::Metrics;
use crate::telemetry::tap::TapHub;
use crate::tls::TlsStore;
use crate::transport::accept_loop;
use activity::{Activity, Watched};

/// Every answer's body: whole for most paths, a stream for `/tap`.
type AdminBody = UnsyncBoxBody<Bytes, Infallible>;

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
    /// The tap sessions `GET /tap` opens.
    pub tap: Arc<TapHub>,
    /// `--tap-allow`: identities that may tap over TLS from outside the pod.
    pub tap_allow: Vec<SpiffeId>,
    /// The longest wait for a request head (see the module doc); [`HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// The longest a connection may move no byte while a request is served; [`STALL_TIMEOUT`].
    pub stall_timeout: Duration,
    /// Fires when the proxy starts draining.
    pub draining: CancellationToken,
}

/// Production value of [`Admin::header_read_timeout`]: a probe or a scrape sends its head at once.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Production value of [`Admin::stall_timeout`].
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// hyper's read and write buffer limit on admin connections (its minimum is 8 KiB).
const MAX_BUF_SIZE: usize = 16 * 1024;
/// `SO_SNDBUF` of admin connections (the kernel doubles it).
const SEND_BUFFER: usize = 64 * 1024;

impl Admin {
    pub async fn serve(self: Arc<Self>, listener: TcpListener, stop: CancellationToken) {
        accept_loop(listener, "admin", stop, move |tcp, peer| {
            self.clone().serve_connection(tcp, peer)
        })
        .await
    }

    /// Serves one accepted connection from `peer` until it ends or one of the timeouts closes
    /// it (see the module doc).
    pub async fn serve_connection(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr) {
        if let Err(e) = socket2::SockRef::from(&tcp).set_send_buffer_size(SEND_BUFFER) {
            tracing::debug!(%peer, "cannot bound an admin connection's send buffer: {e}");
        }
        match tls::first_byte(&tcp, self.header_read_timeout).await {
            tls::FirstByte::Tls => {
                match tls::accept(&self.store, tcp, self.header_read_timeout).await {
                    Ok((stream, identity)) => {
                        let caller = Caller {
                            peer,
                            identity: Some(identity),
                        };
                        self.serve_http(stream, caller).await;
                    }
                    Err(reason) => self.closed(peer, reason),
                }
            }
            tls::FirstByte::Plain => {
                let caller = Caller {
                    peer,
                    identity: None,
                };
                self.serve_http(tcp, caller).await;
            }
            tls::FirstByte::Silent => self.closed(peer, "idle"),
            tls::FirstByte::Gone => {}
        }
    }

    /// Serves HTTP/1.1 on `io` until the connection ends or a timeout closes it.
    async fn serve_http<S>(self: Arc<Self>, io: S, caller: Caller)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let peer = caller.peer;
        let activity = Arc::new(Activity::new());
        let io = Watched {
            inner: io,
            activity: activity.clone(),
        };
        let admin = self.clone();
        let watched = activity.clone();
        let caller = Arc::new(caller);
        let service = service_fn(move |req| {
            let admin = admin.clone();
            let activity = watched.clone();
            let caller = caller.clone();
            async move { Ok::<_, Infallible>(admin.route(req, &caller, activity).await) }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .max_buf_size(MAX_BUF_SIZE)
            .header_read_timeout(self.header_read_timeout);
        let conn = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        let closed = loop {
            let quiet_until = activity.last() + self.stall_timeout;
            tokio::select! {
                result = conn.as_mut() => {
                    break match result {
                        Err(e) if e.is_timeout() && activity.mid_head() => Some("header_timeout"),
                        Err(e) if e.is_timeout() => Some("idle"),
                        _ => None,
                    };
                }
                () = tokio::time::sleep_until(quiet_until) => {
                    if activity.last() + self.stall_timeout <= Instant::now() {
                        // Dropping the connection closes it.
                        break Some("stalled");
                    }
                }
            }
        };
        if let Some(reason) = closed {
            self.closed(peer, reason);
        }
    }

    fn closed(&self, peer: SocketAddr, reason: &'static str) {
        self.metrics
            .admin
            .connections_closed
            .with_label_values(&[reason])
            .inc();
        tracing::debug!(%peer, reason, "closed an admin connection");
    }

    async fn route(
        &self,
        req: Request<Incoming>,
        caller: &Caller,
        activity: Arc<Activity>,
    ) -> Response<AdminBody> {
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
            (Method::GET, "/inbound") => json(self.inbound()),
            (Method::GET, "/tap") => self.tap(req.uri(), caller, activity),
            (Method::GET, "/log-level") => match &self.log_level {
                Some((_, current)) => text(
                    StatusCode::OK,
                    format!("{}\n", current.lock().unwrap_or_else(|p| p.into_inner())),
                ),
                None => text(StatusCode::NOT_FOUND, "log level is not adjustable here\n"),
            },
            (Method::PUT, "/log-level") => self.set_log_level(req, caller.peer).await,
            (
                _,
                "/live" | "/ready" | "/metrics" | "/identity" | "/config" | "/destinations"
                | "/inbound" | "/tap" | "/log-level",
            ) => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
            _ => text(
                StatusCode::NOT_FOUND,
                "not found; try /live, /ready, /metrics, /identity, /config, /destinations, /inbound, /tap, /log-level\n",
            ),
        }
    }

    /// `{"ports": [{"address", "answered", "service", "protocol", "server_policy"}]}`.
    fn inbound(&self) -> serde_json::Value {
        let now = SystemTime::now();
        let ports = self
            .discovery
            .as_ref()
            .map(|d| d.inbound_answers())
            .unwrap_or_default()
            .into_iter()
            .map(|(addr, answer)| {
                let mut port = match &answer {
                    Some(answer) => answer.describe(now),
                    None => serde_json::json!({}),
                };
                port["address"] = addr.to_string().into();
                port["answered"] = answer.is_some().into();
                port
            })
            .collect::<Vec<_>>();
        serde_json::json!({ "ports": ports })
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

    async fn set_log_level(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<AdminBody> {
        if !peer.ip().is_loopback() {
            self.metrics
                .admin
                .requests_refused
                .with_label_values(&["not_loopback"])
                .inc();
            tracing::info!(%peer, "refused PUT /log-level: only loopback may change the log level");
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

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<AdminBody> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(body.into()).boxed_unsync())
        .expect("the response parts are valid")
}

fn json(value: serde_json::Value) -> Response<AdminBody> {
    Response::builder()
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(format!("{value:#}\n"))).boxed_unsync())
        .expect("the response parts are valid")
}

/// Who is asking: the peer address, and the mesh identity its certificate proved when it came
/// over TLS.
struct Caller {
    peer: SocketAddr,
    identity: Option<SpiffeId>,
}

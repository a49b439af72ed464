//! The injection webhook: HTTPS (default port 8443), `POST /inject` with an AdmissionReview.
//!
//! Two MutatingWebhookConfiguration entries call it: `/inject?namespace=enabled` for namespaces
//! labelled `weft.dev/inject: enabled` (every pod is injected unless it opts out) and `/inject`
//! for the others (only pods annotated `weft.dev/inject: enabled`). A review never needs an API
//! call, so the webhook answers within its timeout even when the API server is slow.
//!
//! Bad input gets a clear error and never takes the server down: a body over
//! [`MAX_BODY_BYTES`] is `413`, one slower than 10 s `408`, a body that is not an
//! `admission.k8s.io/v1` AdmissionReview is `400` with the reason, other paths `404`, other
//! methods `405`. Every answer is counted in `weft_injections_total{result}`.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prometheus::{IntCounterVec, Opts, Registry};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::admission::review;
use super::settings::InjectSettings;
use super::trust_anchors::TrustAnchorsWriter;

/// What every connection shares.
pub struct Webhook {
    pub settings: InjectSettings,
    pub counter: IntCounterVec,
    /// With --kubernetes: writes the trust-anchor ConfigMap where pods are injected.
    pub trust_anchors: Option<Arc<TrustAnchorsWriter>>,
}

/// The API server gives a webhook 10 s by default (30 s at most); a body slower than this is a
/// slow client holding a connection, not the API server.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Larger than any pod the API server stores (its request limit is 3 MiB).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// `weft_injections_total{result}`, registered in the control plane's registry.
pub fn injections_counter(registry: &Registry) -> anyhow::Result<IntCounterVec> {
    let counter = IntCounterVec::new(
        Opts::new(
            "weft_injections_total",
            "Admission reviews answered by the injection webhook, by result (injected, not_enabled, system_namespace, host_network, already_injected, denied, not_a_pod, bad_request, too_large, ...)",
        ),
        &["result"],
    )?;
    registry.register(Box::new(counter.clone()))?;
    Ok(counter)
}

/// Serves until `stop` is cancelled.
pub async fn serve(
    listener: TcpListener,
    tls: TlsAcceptor,
    webhook: Arc<Webhook>,
    stop: CancellationToken,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!("accept failed on the webhook port: {e}");
                    continue;
                }
            },
        };
        let (tls, webhook, stop) = (tls.clone(), webhook.clone(), stop.clone());
        tokio::spawn(async move {
            let stream = match tls.accept(tcp).await {
                Ok(stream) => stream,
                Err(e) => {
                    webhook.counter.with_label_values(&["tls_error"]).inc();
                    tracing::debug!(%peer, "webhook TLS handshake failed: {e}");
                    return;
                }
            };
            let service = service_fn(move |req| {
                let webhook = webhook.clone();
                async move { Ok::<_, Infallible>(handle(req, &webhook).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = conn => {}
            }
        });
    }
}

async fn handle(req: Request<Incoming>, webhook: &Webhook) -> Response<Full<Bytes>> {
    let (status, result, body, json) = answer(req, webhook).await;
    webhook.counter.with_label_values(&[result]).inc();
    let content_type = match json {
        true => "application/json",
        false => "text/plain; charset=utf-8",
    };
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}

async fn answer(
    req: Request<Incoming>,
    webhook: &Webhook,
) -> (StatusCode, &'static str, Vec<u8>, bool) {
    let text = |status, result, message: String| {
        (status, result, format!("{message}\n").into_bytes(), false)
    };
    // The body is read (bounded) before any answer: answering while an HTTP/2 client is still
    // sending resets its stream, and it would see that instead of the answer.
    let (parts, body) = req.into_parts();
    let body = match tokio::time::timeout(BODY_TIMEOUT, read_body(body)).await {
        Err(_) => {
            return text(
                StatusCode::REQUEST_TIMEOUT,
                "bad_request",
                format!("the body did not arrive within {BODY_TIMEOUT:?}"),
            );
        }
        Ok(Ok(Some(body))) => body,
        Ok(Ok(None)) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the AdmissionReview is larger than {MAX_BODY_BYTES} bytes"),
            );
        }
        Ok(Err(e)) => {
            return text(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("cannot read the body: {e}"),
            );
        }
    };
    if parts.uri.path() != "/inject" {
        return text(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "no such path {}: the webhook serves POST /inject",
                parts.uri.path()
            ),
        );
    }
    if parts.method != Method::POST {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "bad_request",
            "only POST (an AdmissionReview)".to_owned(),
        );
    }
    let namespace_enabled = parts
        .uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "namespace=enabled"));
    match review(&body, &webhook.settings, namespace_enabled) {
        Ok(answer) => {
            if let (Some(writer), Some(namespace)) = (&webhook.trust_anchors, &answer.injected_into)
            {
                writer.ensure(namespace);
            }
            // Serialising plain strings and booleans cannot fail.
            let json = serde_json::to_vec(&answer.review).unwrap_or_default();
            (StatusCode::OK, answer.result, json, true)
        }
        Err(e) => text(StatusCode::BAD_REQUEST, "bad_request", e.to_string()),
    }
}

/// How much of an oversized body is read and dropped before answering 413: answering before
/// the client has finished sending makes HTTP/2 clients see a reset stream instead of the 413.
const MAX_DRAINED_BYTES: usize = 16 * MAX_BODY_BYTES;

/// The body, or `None` if it is larger than [`MAX_BODY_BYTES`] (what follows is drained, up to
/// [`MAX_DRAINED_BYTES`], then the connection may be cut).
async fn read_body(mut body: Incoming) -> Result<Option<Bytes>, hyper::Error> {
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        seen += data.len();
        if seen <= MAX_BODY_BYTES {
            kept.extend_from_slice(&data);
        } else if seen > MAX_DRAINED_BYTES {
            break;
        }
    }
    Ok((seen <= MAX_BODY_BYTES).then(|| Bytes::from(kept)))
}

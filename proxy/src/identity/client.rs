//! The certify loop: get a certificate at start, renew it at about half-life, and keep trying
//! with backoff while the control plane is unreachable.
//!
//! A failure never removes the certificate in force: the proxy keeps serving on it until it
//! expires (and reports not-ready after that), and recovers by itself once the control plane
//! answers again.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::CertificateDer;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use weft_api::identity::CertifyRequest;
use weft_api::identity::identity_client::IdentityClient as Grpc;
use weft_certs::TrustBundle;

use super::call_error::describe;
use super::control_plane::ConnectFailure;
use super::refresh::renew_after;
use super::token::TokenSource;
use crate::resilience::backoff::Backoff;
use crate::telemetry::metrics::Metrics;
use crate::tls::{Credentials, InstallError, TlsStore};

const RETRY_BASE: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Why one certify attempt failed.
#[derive(Debug, thiserror::Error)]
enum CertifyFailure {
    #[error("{0}")]
    Token(String),
    /// No connection: every address is down, or the call broke on the way.
    #[error("the control plane is unreachable: {0}")]
    Unavailable(String),
    /// A control plane answered the handshake with a certificate from another CA (the sentence
    /// is the connector's: "the control plane's CA does not match --trust-anchors: …").
    #[error("{0}")]
    Untrusted(String),
    #[error("the control plane refused: {0}")]
    Refused(String),
    #[error("the control plane sent an unusable certificate: {0}")]
    Install(#[from] InstallError),
}

impl CertifyFailure {
    fn label(&self) -> &'static str {
        match self {
            CertifyFailure::Token(_) => "token_error",
            CertifyFailure::Unavailable(_) => "unavailable",
            CertifyFailure::Untrusted(_) => "untrusted_control_plane",
            CertifyFailure::Refused(_) => "refused",
            CertifyFailure::Install(_) => "invalid_certificate",
        }
    }

    fn of(status: &tonic::Status) -> Self {
        let unreachable = ConnectFailure::in_chain(status);
        match (status.code(), unreachable) {
            (_, Some(u)) if u.untrusted() => CertifyFailure::Untrusted(u.to_string()),
            // The connector's own sentence says it all.
            (_, Some(u)) => CertifyFailure::Unavailable(u.to_string()),
            (
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown,
                _,
            ) => CertifyFailure::Unavailable(describe(status)),
            _ => CertifyFailure::Refused(describe(status)),
        }
    }
}

pub struct IdentityClient {
    store: Arc<TlsStore>,
    grpc: Grpc<Channel>,
    token: TokenSource,
    metrics: Arc<Metrics>,
}

impl IdentityClient {
    pub fn new(
        store: Arc<TlsStore>,
        channel: Channel,
        token: TokenSource,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            store,
            grpc: Grpc::new(channel),
            token,
            metrics,
        }
    }

    /// Runs until `stop` is cancelled.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut backoff = Backoff::new(RETRY_BASE, RETRY_MAX);
        loop {
            let wait = match self.certify_once().await {
                Ok(credentials) => {
                    backoff.reset();
                    self.metrics
                        .identity
                        .certify
                        .with_label_values(&["ok"])
                        .inc();
                    if credentials.generation > 1 {
                        self.metrics.identity.renewals.inc();
                    }
                    self.metrics
                        .identity
                        .cert_expiry
                        .set(unix_seconds(credentials.not_after()));
                    let remaining = credentials
                        .not_after()
                        .duration_since(SystemTime::now())
                        .unwrap_or_default();
                    let wait = renew_after(remaining, fastrand::f64());
                    let what = match credentials.generation {
                        1 => "obtained the first certificate",
                        _ => "renewed the certificate",
                    };
                    tracing::info!(
                        identity = %self.store.identity(),
                        serial = %credentials.info.serial,
                        not_after = %weft_certs::format_time(credentials.not_after()),
                        renew_in = %humantime::format_duration(round_ms(wait)),
                        "{what}"
                    );
                    wait
                }
                Err(failure) => {
                    self.metrics
                        .identity
                        .certify
                        .with_label_values(&[failure.label()])
                        .inc();
                    let wait = backoff.next_delay(fastrand::f64());
                    let retry_in = humantime::format_duration(round_ms(wait));
                    let what = match self.store.current() {
                        None => "cannot get the first certificate".to_owned(),
                        Some(current) => {
                            let until = weft_certs::format_time(current.not_after());
                            match current.not_after() > SystemTime::now() {
                                true => format!(
                                    "cannot renew the certificate (the current one is valid until {until})"
                                ),
                                false => format!(
                                    "cannot renew the certificate (the current one expired at {until})"
                                ),
                            }
                        }
                    };
                    match &failure {
                        CertifyFailure::Unavailable(_) => {
                            tracing::warn!(%retry_in, "{what}: {failure}")
                        }
                        _ => tracing::error!(%retry_in, "{what}: {failure}"),
                    }
                    wait
                }
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn certify_once(&mut self) -> Result<Arc<Credentials>, CertifyFailure> {
        let token = self.token.read().await.map_err(CertifyFailure::Token)?;
        let csr = self.store.csr()?;
        let response = self
            .grpc
            .certify(CertifyRequest { token, csr })
            .await
            .map_err(|status| CertifyFailure::of(&status))?
            .into_inner();
        let bundle = TrustBundle::new(
            response
                .trust_bundle
                .into_iter()
                .map(CertificateDer::from)
                .collect(),
        )
        .map_err(|e| InstallError::Invalid(format!("trust bundle: {e}")))?;
        let intermediates = response
            .intermediates
            .into_iter()
            .map(CertificateDer::from)
            .collect();
        Ok(self
            .store
            .install(CertificateDer::from(response.leaf), intermediates, bundle)?)
    }
}

fn unix_seconds(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

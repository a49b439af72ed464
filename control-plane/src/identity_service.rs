//! The `weft.identity.v1.Identity` gRPC service: authenticate, check the CSR, sign.
//!
//! Every refusal gets its own gRPC status, a message that says what to fix, a stable reason in the
//! `weft-refusal` metadata, a log line and a count in `weft_certify_requests_total{result}`.
//! Every call's time from authenticating to signing (or refusing) goes to
//! `weft_certify_duration_seconds`, so a slow token review shows on a dashboard before proxies
//! fail to renew.
//!
//! A source address that keeps failing to authenticate is braked ([`crate::authn::brake`]):
//! refused with `RESOURCE_EXHAUSTED` before its token is checked, and logged once per interval
//! rather than once per request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::{Request, Response, Status};
use weft_api::REFUSAL_METADATA_KEY;
use weft_api::identity::identity_server::Identity;
use weft_api::identity::{CertifyRequest, CertifyResponse};
use weft_certs::{CertificateAuthority, CertifyError, CsrError};

use crate::authn::brake::{Brake, Braked};
use crate::authn::{AuthError, Authenticator};
use crate::metrics::{CERTIFY_ISSUED, CERTIFY_REFUSED, Metrics};

/// `weft-refusal` of a request refused by the brake.
pub const REFUSED_TOO_MANY_FAILURES: &str = "too_many_failures";
/// The gRPC metadata that tells a braked caller when to try again (gRPC's server pushback).
pub const RETRY_PUSHBACK_METADATA_KEY: &str = "grpc-retry-pushback-ms";

pub struct IdentityService {
    ca: Arc<CertificateAuthority>,
    authenticator: Arc<dyn Authenticator>,
    cert_ttl: Duration,
    metrics: Arc<Metrics>,
    brake: Arc<Brake>,
}

impl IdentityService {
    pub fn new(
        ca: Arc<CertificateAuthority>,
        authenticator: Arc<dyn Authenticator>,
        cert_ttl: Duration,
        metrics: Arc<Metrics>,
        brake: Arc<Brake>,
    ) -> Self {
        Self {
            ca,
            authenticator,
            cert_ttl,
            metrics,
            brake,
        }
    }
}

/// A refused request: the status to return and the reason label for logs, metadata and metrics.
struct Refusal {
    reason: &'static str,
    status: Status,
    /// The caller failed to authenticate (its brake allowance stays spent).
    failed_authentication: bool,
}

impl Refusal {
    fn into_status(self) -> Status {
        let mut status = self.status;
        if let Ok(value) = self.reason.parse() {
            status.metadata_mut().insert(REFUSAL_METADATA_KEY, value);
        }
        status
    }
}

impl From<AuthError> for Refusal {
    fn from(e: AuthError) -> Self {
        let reason = match &e {
            AuthError::Missing => "missing_token",
            AuthError::UnknownToken => "unknown_token",
            AuthError::NotConfigured | AuthError::ServiceAccountsNotConfigured => {
                "authentication_not_configured"
            }
            AuthError::ServiceAccount(refused) => refused.reason(),
            AuthError::TokenReviewRefused(_) => "token_review_refused",
            AuthError::KubernetesUnreachable(_) => "kubernetes_unreachable",
            AuthError::KubernetesRefused(_) => "kubernetes_refused",
        };
        match &e {
            // Not the caller's fault: it should retry (the proxy backs off and does).
            AuthError::KubernetesUnreachable(_) | AuthError::KubernetesRefused(_) => Refusal {
                reason,
                status: Status::unavailable(e.to_string()),
                failed_authentication: false,
            },
            _ => Refusal {
                reason,
                status: Status::unauthenticated(e.to_string()),
                failed_authentication: true,
            },
        }
    }
}

impl From<Braked> for Refusal {
    fn from(braked: Braked) -> Self {
        let retry = Duration::from_millis(braked.retry_after.as_millis().max(1) as u64);
        let mut status = Status::resource_exhausted(format!(
            "too many failed authentications from this address: try again in {}",
            humantime::format_duration(retry)
        ));
        if let Ok(value) = retry.as_millis().to_string().parse() {
            status
                .metadata_mut()
                .insert(RETRY_PUSHBACK_METADATA_KEY, value);
        }
        Refusal {
            reason: REFUSED_TOO_MANY_FAILURES,
            status,
            failed_authentication: false,
        }
    }
}

impl From<CertifyError> for Refusal {
    fn from(e: CertifyError) -> Self {
        let message = e.to_string();
        match e {
            CertifyError::Csr(CsrError::IdentityMismatch { .. })
            | CertifyError::Csr(CsrError::MissingIdentity { .. }) => Refusal {
                reason: "identity_mismatch",
                status: Status::permission_denied(message),
                failed_authentication: false,
            },
            CertifyError::Csr(CsrError::UnsupportedKey { .. }) => Refusal {
                reason: "unsupported_key",
                status: Status::failed_precondition(message),
                failed_authentication: false,
            },
            CertifyError::Csr(CsrError::Malformed(_))
            | CertifyError::Csr(CsrError::BadSignature) => Refusal {
                reason: "malformed_csr",
                status: Status::invalid_argument(message),
                failed_authentication: false,
            },
            CertifyError::Ca(_) => Refusal {
                reason: "ca_error",
                status: Status::internal(format!("the CA could not sign: {message}")),
                failed_authentication: false,
            },
        }
    }
}

#[tonic::async_trait]
impl Identity for IdentityService {
    async fn certify(
        &self,
        request: Request<CertifyRequest>,
    ) -> Result<Response<CertifyResponse>, Status> {
        let peer = crate::peer::peer_of(&request);
        let source = crate::peer::peer_ip(&request);
        let CertifyRequest { token, csr } = request.into_inner();

        let started = Instant::now();
        let outcome = async {
            // A connection without a known peer address (none in practice) is not braked.
            let attempt = source.map(|ip| self.brake.admit(ip)).transpose()?;
            let identity = match self.authenticator.authenticate(&token).await {
                Ok(identity) => identity,
                Err(e) => {
                    let refusal = Refusal::from(e);
                    if refusal.failed_authentication
                        && let Some(attempt) = attempt
                    {
                        attempt.failed();
                    }
                    return Err(refusal);
                }
            };
            let issued = self.ca.certify(&csr, &identity, self.cert_ttl)?;
            Ok::<_, Refusal>((identity, issued))
        }
        .await;
        let result = if outcome.is_ok() {
            CERTIFY_ISSUED
        } else {
            CERTIFY_REFUSED
        };
        self.metrics
            .certify_duration
            .with_label_values(&[result])
            .observe(started.elapsed().as_secs_f64());

        match outcome {
            Ok((identity, issued)) => {
                self.metrics
                    .certify_requests
                    .with_label_values(&[CERTIFY_ISSUED])
                    .inc();
                tracing::info!(
                    %peer,
                    %identity,
                    serial = %issued.serial,
                    not_after = %weft_certs::format_time(issued.not_after),
                    "issued certificate"
                );
                Ok(Response::new(CertifyResponse {
                    leaf: issued.leaf.to_vec(),
                    intermediates: issued.intermediates.iter().map(|c| c.to_vec()).collect(),
                    trust_bundle: self
                        .ca
                        .trust_bundle()
                        .roots()
                        .iter()
                        .map(|c| c.to_vec())
                        .collect(),
                    not_after: Some(prost_types::Timestamp::from(issued.not_after)),
                }))
            }
            Err(refusal) => {
                self.metrics
                    .certify_requests
                    .with_label_values(&[refusal.reason])
                    .inc();
                if refusal.reason == REFUSED_TOO_MANY_FAILURES {
                    // The brake logs these itself, one line per source and interval.
                    return Err(refusal.into_status());
                }
                tracing::warn!(
                    %peer,
                    reason = refusal.reason,
                    "refused certificate request: {}",
                    refusal.status.message()
                );
                Err(refusal.into_status())
            }
        }
    }
}

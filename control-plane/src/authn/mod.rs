//! Workload authentication: who is the caller asking for a certificate?
//!
//! The identity service only ever signs for the identity an [`Authenticator`] vouches for, so
//! what a workload can prove (a bootstrap token, or a Kubernetes service-account token)
//! is what decides which SPIFFE ID it gets. Implementations sit behind this trait so the service
//! does not care which kind of token it was.

mod bootstrap;
pub mod brake;
mod issuer_keys;
pub mod service_account;
mod service_account_tokens;
mod token_review;

pub use bootstrap::BootstrapTokens;
pub use service_account_tokens::{EitherToken, ServiceAccountTokens};
pub use token_review::TokenReviewer;

use weft_certs::SpiffeId;

/// Turns a bearer token into the identity it stands for.
#[async_trait::async_trait]
pub trait Authenticator: Send + Sync {
    async fn authenticate(&self, token: &str) -> Result<SpiffeId, AuthError>;
}

/// Why a caller could not be authenticated: `UNAVAILABLE` when the API server could not answer,
/// `UNAUTHENTICATED` otherwise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no token in the request")]
    Missing,
    #[error("unknown bootstrap token")]
    UnknownToken,
    #[error(
        "no workload authentication is configured: start the control plane with --bootstrap-tokens"
    )]
    NotConfigured,
    #[error(
        "a service-account token, but service-account tokens are not configured: start the control plane with --kubernetes or --service-account-jwks"
    )]
    ServiceAccountsNotConfigured,
    #[error("service-account token refused: {0}")]
    ServiceAccount(service_account::TokenError),
    #[error("service-account token refused by the API server's TokenReview: {0}")]
    TokenReviewRefused(String),
    #[error(
        "cannot check the service-account token: the Kubernetes API server is unreachable: {0}"
    )]
    KubernetesUnreachable(String),
    #[error("cannot check the service-account token: {0}")]
    KubernetesRefused(String),
}

/// Refuses everyone, with a message saying how to configure authentication.
pub struct NoAuthentication;

#[async_trait::async_trait]
impl Authenticator for NoAuthentication {
    async fn authenticate(&self, _token: &str) -> Result<SpiffeId, AuthError> {
        Err(AuthError::NotConfigured)
    }
}

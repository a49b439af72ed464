//! Workload authentication: who is the caller asking for a certificate?
//!
//! The identity service only ever signs for the identity an [`Authenticator`] vouches for, so
//! what a workload can prove (a bootstrap token, or a Kubernetes service-account token)
//! is what decides which SPIFFE ID it gets. Implementations sit behind this trait so the service
//! does not care which kind of token it was.

mod bootstrap;
pub mod service_account;
mod service_account_tokens;

pub use bootstrap::BootstrapTokens;
pub use service_account_tokens::{EitherToken, ServiceAccountTokens};

use weft_certs::SpiffeId;

/// Turns a bearer token into the identity it stands for.
#[async_trait::async_trait]
pub trait Authenticator: Send + Sync {
    async fn authenticate(&self, token: &str) -> Result<SpiffeId, AuthError>;
}

/// Why a caller could not be authenticated. Every variant becomes `UNAUTHENTICATED`.
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
        "a service-account token, but service-account tokens are not configured: start the control plane with --service-account-jwks"
    )]
    ServiceAccountsNotConfigured,
    #[error("service-account token refused: {0}")]
    ServiceAccount(service_account::TokenError),
}

/// Refuses everyone, with a message saying how to configure authentication.
pub struct NoAuthentication;

#[async_trait::async_trait]
impl Authenticator for NoAuthentication {
    async fn authenticate(&self, _token: &str) -> Result<SpiffeId, AuthError> {
        Err(AuthError::NotConfigured)
    }
}

//! Workload authentication: who is the caller asking for a certificate?
//!
//! The identity service only ever signs for the identity an [`Authenticator`] vouches for, so
//! what a workload can prove (a bootstrap token here, a Kubernetes service-account token later)
//! is what decides which SPIFFE ID it gets. Implementations sit behind this trait so the service
//! does not care which kind of token it was.

mod bootstrap;

pub use bootstrap::BootstrapTokens;

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
}

/// Refuses everyone, with a message saying how to configure authentication.
pub struct NoAuthentication;

#[async_trait::async_trait]
impl Authenticator for NoAuthentication {
    async fn authenticate(&self, _token: &str) -> Result<SpiffeId, AuthError> {
        Err(AuthError::NotConfigured)
    }
}

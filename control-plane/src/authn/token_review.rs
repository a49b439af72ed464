//! Service-account tokens checked by the API server itself (`--service-account-validation
//! token-review`): a `TokenReview` per certificate request.
//!
//! This is the authoritative method: the API server knows that the pod a token was bound to has
//! been deleted, which offline validation cannot. The price is one API request per certificate
//! (renewals included), so large clusters may prefer offline validation. The review asks for the
//! `weft` audience, so the API server itself refuses a token minted for anyone else.
//!
//! The control plane's service account needs `create` on `tokenreviews.authentication.k8s.io`
//! (the `system:auth-delegator` ClusterRole grants it).

use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};
use weft_certs::SpiffeId;

use super::{AuthError, Authenticator};

/// How long a review may take before the request is refused as `kubernetes_unreachable`.
const REVIEW_TIMEOUT: Duration = Duration::from_secs(5);

pub struct TokenReviewer {
    reviews: Api<TokenReview>,
    audience: String,
    trust_domain: String,
}

impl TokenReviewer {
    pub fn new(client: kube::Client, audience: &str, trust_domain: &str) -> Self {
        Self {
            reviews: Api::all(client),
            audience: audience.to_owned(),
            trust_domain: trust_domain.to_owned(),
        }
    }
}

#[async_trait::async_trait]
impl Authenticator for TokenReviewer {
    async fn authenticate(&self, token: &str) -> Result<SpiffeId, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: Some(vec![self.audience.clone()]),
            },
            ..Default::default()
        };
        let answer = tokio::time::timeout(
            REVIEW_TIMEOUT,
            self.reviews.create(&PostParams::default(), &review),
        )
        .await
        .map_err(|_| {
            AuthError::KubernetesUnreachable(format!(
                "the TokenReview took more than {}s",
                REVIEW_TIMEOUT.as_secs()
            ))
        })?
        .map_err(kubernetes_error)?;
        let status = answer.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            return Err(AuthError::TokenReviewRefused(status.error.unwrap_or_else(
                || "the API server did not authenticate the token".into(),
            )));
        }
        let username = status.user.and_then(|u| u.username).unwrap_or_default();
        service_account_identity(&username, &self.trust_domain)
    }
}

/// `system:serviceaccount:<namespace>:<name>` → `spiffe://<td>/ns/<namespace>/sa/<name>`.
fn service_account_identity(username: &str, trust_domain: &str) -> Result<SpiffeId, AuthError> {
    let not_a_service_account = || {
        AuthError::TokenReviewRefused(format!(
            "the token belongs to {username:?}, not to a service account"
        ))
    };
    let rest = username
        .strip_prefix("system:serviceaccount:")
        .ok_or_else(not_a_service_account)?;
    let (namespace, name) = rest.split_once(':').ok_or_else(not_a_service_account)?;
    SpiffeId::new(trust_domain, namespace, name).map_err(|_| not_a_service_account())
}

/// An API answer (403: RBAC; 5xx) or no answer at all.
pub(super) fn kubernetes_error(e: kube::Error) -> AuthError {
    match e {
        kube::Error::Api(status) => AuthError::KubernetesRefused(format!(
            "the API server answered {} {}: {}",
            status.code, status.reason, status.message
        )),
        other => AuthError::KubernetesUnreachable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_account_username_becomes_its_identity() {
        let id = service_account_identity("system:serviceaccount:prod:payments", "cluster.local")
            .unwrap();
        assert_eq!(id.to_string(), "spiffe://cluster.local/ns/prod/sa/payments");
        for other in [
            "alice",
            "system:serviceaccount:prod",
            "system:node:kind-worker",
        ] {
            let err = service_account_identity(other, "cluster.local").unwrap_err();
            assert!(
                err.to_string().contains("not to a service account"),
                "{other}: {err}"
            );
        }
    }
}

//! The service-account issuer's keys fetched from the API server (`/openid/v1/jwks`), for offline
//! validation with `--kubernetes` and no `--service-account-jwks` file.
//!
//! Keys are fetched at start, every [`REFRESH_EVERY`], and whenever a token names a `kid` the set
//! does not have (the API server's signing key was rotated): at most once per
//! [`MIN_FETCH_INTERVAL`], so a flood of foreign tokens cannot turn into a flood of API requests.
//! A failed fetch keeps the keys in force; a token that needed the fetch is refused as
//! `kubernetes_unreachable` (or `kubernetes_refused`), not as an unknown key.

use std::time::{Duration, Instant};

use anyhow::Context;

use super::AuthError;
use super::service_account::Jwks;
use super::token_review::kubernetes_error;

pub const REFRESH_EVERY: Duration = Duration::from_secs(600);
pub const MIN_FETCH_INTERVAL: Duration = Duration::from_secs(5);

pub struct IssuerKeys {
    client: kube::Client,
    /// When the last fetch ran and how it ended, so a fetch is not repeated too soon.
    last: tokio::sync::Mutex<Option<(Instant, Result<(), AuthError>)>>,
}

impl IssuerKeys {
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The issuer's key set now.
    pub async fn fetch(&self) -> Result<Jwks, AuthError> {
        let request = http::Request::get("/openid/v1/jwks")
            .body(Vec::new())
            .map_err(|e| AuthError::KubernetesUnreachable(e.to_string()))?;
        let text = self
            .client
            .request_text(request)
            .await
            .map_err(kubernetes_error)?;
        Jwks::from_json(text.as_bytes()).map_err(|e| {
            AuthError::KubernetesRefused(format!("/openid/v1/jwks is not a JWK Set: {e}"))
        })
    }

    /// The fetch for a token with an unknown `kid`: none if another such fetch ran less than
    /// [`MIN_FETCH_INTERVAL`] ago (`Ok(None)` then, or that fetch's error). Concurrent callers
    /// wait for one fetch. Scheduled fetches ([`IssuerKeys::fetch`]) do not count.
    pub async fn fetch_unless_recent(&self) -> Result<Option<Jwks>, AuthError> {
        let mut last = self.last.lock().await;
        if let Some((at, result)) = &*last
            && at.elapsed() < MIN_FETCH_INTERVAL
        {
            return result.clone().map(|()| None);
        }
        let fetched = self.fetch().await;
        *last = Some((
            Instant::now(),
            fetched.as_ref().map(|_| ()).map_err(Clone::clone),
        ));
        fetched.map(Some)
    }

    /// The `issuer` of the API server's OIDC discovery document, to compare with the configured
    /// one (a mismatch refuses every token, so it is worth a warning at start).
    pub async fn discovered_issuer(&self) -> anyhow::Result<String> {
        let request = http::Request::get("/.well-known/openid-configuration").body(Vec::new())?;
        let text = self.client.request_text(request).await?;
        let document: serde_json::Value =
            serde_json::from_str(&text).context("/.well-known/openid-configuration is not JSON")?;
        document["issuer"]
            .as_str()
            .map(str::to_owned)
            .context("/.well-known/openid-configuration has no issuer")
    }
}

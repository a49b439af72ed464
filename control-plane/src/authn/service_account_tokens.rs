//! The service-account token authenticator: [`super::service_account`]'s checks against the
//! issuer keys in force. The keys come from a `--service-account-jwks` file (a changed file
//! replaces them, a broken one keeps them) or from the API server ([`IssuerKeys`]: fetched at
//! start, periodically, and when a token names a key the set does not have).

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use weft_certs::SpiffeId;

use super::issuer_keys::{IssuerKeys, REFRESH_EVERY};
use super::service_account::{self, Jwks, TokenError, TokenRules};
use super::{AuthError, Authenticator};

pub struct ServiceAccountTokens {
    keys: ArcSwap<Jwks>,
    rules: TokenRules,
    /// Where to fetch new keys from when a token names an unknown one (API-server keys only).
    fetch: Option<IssuerKeys>,
}

impl ServiceAccountTokens {
    /// The issuer's keys from `path` (a JWK Set, as `kubectl get --raw /openid/v1/jwks` prints it).
    pub fn load(path: &Path, rules: TokenRules) -> anyhow::Result<Arc<Self>> {
        let text = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        Ok(Arc::new(Self {
            keys: ArcSwap::from_pointee(Self::parse(&text, path)?),
            rules,
            fetch: None,
        }))
    }

    /// The issuer's keys from the API server, refreshed every [`REFRESH_EVERY`] until `stop` and
    /// on an unknown `kid`. An API server that is away at start is not fatal: tokens are refused
    /// as `kubernetes_unreachable` until it answers.
    pub async fn from_api_server(
        client: kube::Client,
        rules: TokenRules,
        stop: tokio_util::sync::CancellationToken,
    ) -> Arc<Self> {
        let source = IssuerKeys::new(client);
        match source.discovered_issuer().await {
            Ok(issuer) if issuer != rules.issuer => tracing::warn!(
                configured = %rules.issuer,
                %issuer,
                "the API server's service-account issuer is not --service-account-issuer: every token will be refused as wrong_token_issuer"
            ),
            Ok(_) => {}
            Err(e) => tracing::info!("cannot read the API server's OIDC discovery document: {e:#}"),
        }
        let keys = match source.fetch().await {
            Ok(keys) => keys,
            Err(e) => {
                tracing::warn!("cannot fetch the service-account issuer's keys yet: {e}");
                Jwks::default()
            }
        };
        tracing::info!(keys = keys.len(), issuer = %rules.issuer, "fetched the service-account issuer's keys from the API server");
        let tokens = Arc::new(Self {
            keys: ArcSwap::from_pointee(keys),
            rules,
            fetch: Some(source),
        });
        let weak = Arc::downgrade(&tokens);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(REFRESH_EVERY) => {}
                }
                let Some(tokens) = weak.upgrade() else { return };
                match tokens.fetch.as_ref().map(IssuerKeys::fetch) {
                    Some(fetch) => match fetch.await {
                        Ok(keys) => tokens.keys.store(Arc::new(keys)),
                        Err(e) => {
                            tracing::warn!("cannot refresh the service-account issuer's keys: {e}")
                        }
                    },
                    None => return,
                }
            }
        });
        tokens
    }

    /// For a token with an unknown `kid`: fetches the API server's keys (unless such a fetch ran
    /// moments ago) and puts them in force.
    async fn refresh(&self) -> Result<(), AuthError> {
        let Some(source) = &self.fetch else {
            return Ok(());
        };
        match source.fetch_unless_recent().await {
            Ok(Some(keys)) => {
                tracing::info!(
                    keys = keys.len(),
                    "refreshed the service-account issuer's keys"
                );
                self.keys.store(Arc::new(keys));
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => {
                tracing::warn!("cannot refresh the service-account issuer's keys: {e}");
                Err(e)
            }
        }
    }

    /// Replaces the keys with a changed file's, or keeps them if it is broken.
    pub fn reload(&self, text: &[u8], path: &Path) -> anyhow::Result<usize> {
        let keys = Self::parse(text, path)?;
        let n = keys.len();
        self.keys.store(Arc::new(keys));
        Ok(n)
    }

    pub fn len(&self) -> usize {
        self.keys.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn parse(text: &[u8], path: &Path) -> anyhow::Result<Jwks> {
        let keys = Jwks::from_json(text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if keys.is_empty() {
            anyhow::bail!(
                "{}: no RS256 or ES256 key: every service-account token would be refused",
                path.display()
            );
        }
        Ok(keys)
    }
}

#[async_trait::async_trait]
impl Authenticator for ServiceAccountTokens {
    async fn authenticate(&self, token: &str) -> Result<SpiffeId, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let validate = |keys: &Jwks| {
            service_account::validate(token, keys, &self.rules, SystemTime::now())
                .map(|accepted| accepted.identity)
        };
        match validate(&self.keys.load()) {
            // The issuer may have rotated its key since the last fetch: fetch and try again.
            Err(TokenError::UnknownKey(_)) if self.fetch.is_some() => {
                self.refresh().await?;
                validate(&self.keys.load()).map_err(AuthError::ServiceAccount)
            }
            result => result.map_err(AuthError::ServiceAccount),
        }
    }
}

/// Bootstrap tokens and service-account tokens side by side: a token shaped like a JWS
/// (`header.payload.signature`) is a service-account token, anything else a bootstrap token.
pub struct EitherToken {
    pub bootstrap: Option<Arc<dyn Authenticator>>,
    pub service_accounts: Option<Arc<dyn Authenticator>>,
}

#[async_trait::async_trait]
impl Authenticator for EitherToken {
    async fn authenticate(&self, token: &str) -> Result<SpiffeId, AuthError> {
        let jws = token.split('.').count() == 3 && token.starts_with("eyJ");
        let (chosen, missing) = match jws {
            true => (
                &self.service_accounts,
                AuthError::ServiceAccountsNotConfigured,
            ),
            false => (&self.bootstrap, AuthError::NotConfigured),
        };
        match chosen {
            Some(authenticator) => authenticator.authenticate(token).await,
            None => Err(missing),
        }
    }
}

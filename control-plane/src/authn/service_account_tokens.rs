//! The service-account token authenticator: [`super::service_account`]'s checks against the
//! issuer keys in force, which a changed `--service-account-jwks` file replaces (a broken file
//! keeps the previous keys).

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use weft_certs::SpiffeId;

use super::service_account::{self, Jwks, TokenRules};
use super::{AuthError, Authenticator};

pub struct ServiceAccountTokens {
    keys: ArcSwap<Jwks>,
    rules: TokenRules,
}

impl ServiceAccountTokens {
    /// The issuer's keys from `path` (a JWK Set, as `kubectl get --raw /openid/v1/jwks` prints it).
    pub fn load(path: &Path, rules: TokenRules) -> anyhow::Result<Arc<Self>> {
        let text = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        Ok(Arc::new(Self {
            keys: ArcSwap::from_pointee(Self::parse(&text, path)?),
            rules,
        }))
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
        let keys = self.keys.load();
        service_account::validate(token, &keys, &self.rules, SystemTime::now())
            .map(|accepted| accepted.identity)
            .map_err(AuthError::ServiceAccount)
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

//! Bootstrap tokens: a YAML file mapping secret tokens to identities, for meshes outside
//! Kubernetes (local runs, tests, VMs).
//!
//! ```yaml
//! apiVersion: weft.dev/v1alpha1
//! kind: BootstrapTokens
//! tokens:
//!   - identity: spiffe://cluster.local/ns/demo/sa/web
//!     token: 5c0f1f0a4b8e4f0e9a3d2c1b0a9f8e7d
//! ```
//!
//! Only SHA-256 digests of the tokens are kept in memory, and a presented token is compared with
//! every entry in constant time, so neither timing nor early exits tell an attacker how close a
//! guess was. The file is reloaded when it changes; a broken file keeps the previous tokens.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use arc_swap::ArcSwap;
use ring::digest::{SHA256, digest};
use serde::Deserialize;
use serde_saphyr::Spanned;
use subtle::ConstantTimeEq;
use weft_certs::SpiffeId;

use super::{AuthError, Authenticator};
use crate::yaml;

/// Shorter tokens are refused: they could be guessed.
const MIN_TOKEN_LEN: usize = 16;

pub struct BootstrapTokens {
    entries: ArcSwap<Vec<Entry>>,
}

struct Entry {
    digest: [u8; 32],
    identity: SpiffeId,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct File {
    api_version: Spanned<String>,
    kind: Spanned<String>,
    tokens: Vec<TokenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    identity: SpiffeId,
    token: Spanned<String>,
}

impl BootstrapTokens {
    /// Parses the file at `path`; errors name the file, line and field.
    pub fn load(path: &Path) -> anyhow::Result<Arc<Self>> {
        let text =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let entries = Self::parse(&text, path)?;
        Ok(Arc::new(Self {
            entries: ArcSwap::from_pointee(entries),
        }))
    }

    /// Replaces the tokens with the contents of a changed file, or keeps them if it is broken.
    pub fn reload(&self, text: &[u8], path: &Path) -> anyhow::Result<usize> {
        let entries = Self::parse(text, path)?;
        let count = entries.len();
        self.entries.store(Arc::new(entries));
        Ok(count)
    }

    pub fn len(&self) -> usize {
        self.entries.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn parse(text: &[u8], path: &Path) -> anyhow::Result<Vec<Entry>> {
        // Token files hold secrets: errors point at the line but never quote it.
        let file: File = yaml::parse_secret(text, path)?;
        yaml::check_header(path, &file.api_version, &file.kind, "BootstrapTokens")?;
        let mut entries: Vec<Entry> = Vec::with_capacity(file.tokens.len());
        let mut lines: Vec<u64> = Vec::with_capacity(file.tokens.len());
        for entry in file.tokens {
            let line = entry.token.referenced.line();
            if entry.token.value.len() < MIN_TOKEN_LEN {
                bail!(
                    "{}:{line}: token for {} is {} characters long; use at least {MIN_TOKEN_LEN} random characters",
                    path.display(),
                    entry.identity,
                    entry.token.value.len()
                );
            }
            let digest = token_digest(&entry.token.value);
            if let Some(i) = entries.iter().position(|e| e.digest == digest) {
                bail!(
                    "{}:{line}: this token is already used at line {} (each token must map to one identity)",
                    path.display(),
                    lines[i]
                );
            }
            lines.push(line);
            entries.push(Entry {
                digest,
                identity: entry.identity,
            });
        }
        Ok(entries)
    }
}

#[async_trait::async_trait]
impl Authenticator for BootstrapTokens {
    async fn authenticate(&self, token: &str) -> Result<SpiffeId, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let presented = token_digest(token);
        let entries = self.entries.load();
        let mut found = None;
        for entry in entries.iter() {
            // No early exit: every entry is compared whatever the outcome.
            if bool::from(entry.digest.ct_eq(&presented)) {
                found = Some(entry.identity.clone());
            }
        }
        found.ok_or(AuthError::UnknownToken)
    }
}

fn token_digest(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
apiVersion: weft.dev/v1alpha1
kind: BootstrapTokens
tokens:
  - identity: spiffe://cluster.local/ns/demo/sa/web
    token: aaaaaaaaaaaaaaaaaaaa
  - identity: spiffe://cluster.local/ns/demo/sa/hello
    token: bbbbbbbbbbbbbbbbbbbb
";

    fn path() -> &'static Path {
        Path::new("/etc/weft/tokens.yaml")
    }

    #[tokio::test]
    async fn maps_tokens_to_identities() {
        let tokens = BootstrapTokens {
            entries: ArcSwap::from_pointee(
                BootstrapTokens::parse(GOOD.as_bytes(), path()).unwrap(),
            ),
        };
        let web = tokens.authenticate("aaaaaaaaaaaaaaaaaaaa").await.unwrap();
        assert_eq!(web.to_string(), "spiffe://cluster.local/ns/demo/sa/web");
        let hello = tokens.authenticate("bbbbbbbbbbbbbbbbbbbb").await.unwrap();
        assert_eq!(hello.service_account(), "hello");
        assert_eq!(
            tokens.authenticate("aaaaaaaaaaaaaaaaaaab").await,
            Err(AuthError::UnknownToken)
        );
        assert_eq!(tokens.authenticate("").await, Err(AuthError::Missing));
    }

    #[test]
    fn errors_name_file_line_and_field_without_quoting_secrets() {
        let bad_identity = GOOD.replace("sa/hello", "sa/Hello");
        let err = format!(
            "{:#}",
            BootstrapTokens::parse(bad_identity.as_bytes(), path())
                .err()
                .unwrap()
        );
        assert!(err.contains("/etc/weft/tokens.yaml:6"), "{err}");
        assert!(err.contains("service account \"Hello\""), "{err}");
        assert!(
            !err.contains("bbbb"),
            "a token leaked into the error: {err}"
        );

        let short = GOOD.replace("bbbbbbbbbbbbbbbbbbbb", "short");
        let err = format!(
            "{:#}",
            BootstrapTokens::parse(short.as_bytes(), path())
                .err()
                .unwrap()
        );
        assert!(err.starts_with("/etc/weft/tokens.yaml:7: token for spiffe://cluster.local/ns/demo/sa/hello is 5 characters long"), "{err}");

        let dup = GOOD.replace("bbbbbbbbbbbbbbbbbbbb", "aaaaaaaaaaaaaaaaaaaa");
        let err = format!(
            "{:#}",
            BootstrapTokens::parse(dup.as_bytes(), path())
                .err()
                .unwrap()
        );
        assert!(
            err.contains(":7: this token is already used at line 5"),
            "{err}"
        );

        let wrong_kind = GOOD.replace("kind: BootstrapTokens", "kind: MeshService");
        let err = format!(
            "{:#}",
            BootstrapTokens::parse(wrong_kind.as_bytes(), path())
                .err()
                .unwrap()
        );
        assert!(
            err.contains("kind is MeshService, expected BootstrapTokens"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_broken_reload_keeps_the_previous_tokens() {
        let tokens = BootstrapTokens {
            entries: ArcSwap::from_pointee(
                BootstrapTokens::parse(GOOD.as_bytes(), path()).unwrap(),
            ),
        };
        assert!(tokens.reload(b"tokens: [", path()).is_err());
        assert!(tokens.authenticate("aaaaaaaaaaaaaaaaaaaa").await.is_ok());
        let only_hello = "apiVersion: weft.dev/v1alpha1\nkind: BootstrapTokens\ntokens:\n  - identity: spiffe://cluster.local/ns/demo/sa/hello\n    token: cccccccccccccccccccc\n";
        assert_eq!(tokens.reload(only_hello.as_bytes(), path()).unwrap(), 1);
        assert_eq!(
            tokens.authenticate("aaaaaaaaaaaaaaaaaaaa").await,
            Err(AuthError::UnknownToken)
        );
    }
}

//! Where the proxy's authentication token comes from.
//!
//! A file is re-read before every request, because Kubernetes rotates projected service-account
//! tokens in place and a bootstrap token file may be replaced.

use std::path::PathBuf;

#[derive(Debug, Clone)]
pub enum TokenSource {
    File(PathBuf),
    Inline(String),
}

impl TokenSource {
    pub async fn read(&self) -> Result<String, String> {
        match self {
            TokenSource::Inline(token) => Ok(token.clone()),
            TokenSource::File(path) => tokio::fs::read_to_string(path)
                .await
                .map(|t| t.trim().to_owned())
                .map_err(|e| format!("cannot read token file {}: {e}", path.display())),
        }
    }
}

//! Reading weft's YAML files so that every mistake is reported as `file:line:column: what`.
//!
//! serde-saphyr (a maintained, pure-Rust YAML parser; serde_yaml is deprecated and unmaintained)
//! reports locations for syntax errors and for any field whose deserializer fails, including
//! SPIFFE IDs, which parse while they deserialize.

use std::path::Path;

use anyhow::bail;
use serde::de::DeserializeOwned;
use serde_saphyr::{SnippetMode, Spanned};

/// The `apiVersion` of every weft resource.
pub const API_VERSION: &str = "weft.dev/v1alpha1";

/// Parses `text`, quoting the offending lines in the error.
pub fn parse<T: DeserializeOwned>(text: &[u8], path: &Path) -> anyhow::Result<T> {
    let name = path.display().to_string();
    serde_saphyr::from_slice(text).map_err(|e| {
        let options = serde_saphyr::render_options! { source_name: Some(name.as_str()) };
        anyhow::anyhow!("{name}: {}", e.render_with_options(options))
    })
}

/// Parses a file of one or more documents separated by `---` (empty documents are skipped).
/// The error starts with `file:line:column: what` (lines count from the top of the file, not of
/// the document), followed by the offending lines.
pub fn parse_multiple<T: DeserializeOwned>(text: &[u8], path: &Path) -> anyhow::Result<Vec<T>> {
    serde_saphyr::from_slice_multiple(text).map_err(|e| {
        let name = path.display().to_string();
        let Some(at) = e.location() else {
            return anyhow::anyhow!("{name}: {e}");
        };
        let (line, column) = (at.line(), at.column());
        let plain = e.render_with_options(serde_saphyr::render_options! {
            snippets: SnippetMode::Off
        });
        let what = plain
            .strip_suffix(&format!(" at line {line}, column {column}"))
            .unwrap_or(&plain);
        let quoted = e.render_with_options(serde_saphyr::render_options! {
            source_name: Some(name.as_str())
        });
        // The quote's first line repeats the message; keep the location arrow and the lines.
        let snippet = quoted
            .split_once('\n')
            .map(|(_, rest)| rest)
            .unwrap_or_default();
        anyhow::anyhow!("{name}:{line}:{column}: {what}\n{snippet}")
    })
}

/// Parses a file holding secrets: the error points at the line but does not quote it.
pub fn parse_secret<T: DeserializeOwned>(text: &[u8], path: &Path) -> anyhow::Result<T> {
    serde_saphyr::from_slice(text).map_err(|e| {
        let options = serde_saphyr::render_options! { snippets: SnippetMode::Off };
        let message = e.render_with_options(options);
        match e.location() {
            Some(at) => anyhow::anyhow!(
                "{}:{}:{}: {message}",
                path.display(),
                at.line(),
                at.column()
            ),
            None => anyhow::anyhow!("{}: {message}", path.display()),
        }
    })
}

/// Checks `apiVersion` and `kind`, pointing at the line of whichever is wrong.
pub fn check_header(
    path: &Path,
    api_version: &Spanned<String>,
    kind: &Spanned<String>,
    expected_kind: &str,
) -> anyhow::Result<()> {
    if api_version.value != API_VERSION {
        bail!(
            "{}:{}: apiVersion is {}, expected {API_VERSION}",
            path.display(),
            api_version.referenced.line(),
            api_version.value
        );
    }
    if kind.value != expected_kind {
        bail!(
            "{}:{}: kind is {}, expected {expected_kind}",
            path.display(),
            kind.referenced.line(),
            kind.value
        );
    }
    Ok(())
}

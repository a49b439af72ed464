//! A real browser for the dashboard's tests: Debian's headless `chromium`, run once per look
//! with `--dump-dom` (the DOM after the page's scripts ran for a few seconds of virtual time) or
//! `--screenshot`. Each run gets a fresh profile directory and the flags that keep Chromium from
//! dialling Google's hosts (this machine has no route out).
//!
//! [`tags`] reads the dumped DOM's elements carrying a `data-` attribute, which is how the page
//! exposes every number a test asserts on.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::process::programs;

/// How long the page's scripts run before the DOM is dumped (virtual time: timers fire, the
/// page's fetches complete in real time).
const VIRTUAL_TIME_MS: u32 = 3000;

/// Whether `chromium` is installed (prints why the test is skipped if not).
pub fn available() -> bool {
    programs::available("chromium", "chromium")
}

fn run(url: &str, extra: &[String]) -> String {
    let profile = tempfile::tempdir().expect("a profile directory");
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
    ]
    .map(str::to_owned)
    .to_vec();
    args.push(format!("--user-data-dir={}", profile.path().display()));
    args.push(format!("--virtual-time-budget={VIRTUAL_TIME_MS}"));
    args.extend(extra.iter().cloned());
    args.push(url.to_owned());
    let output = Command::new("chromium")
        .args(&args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run chromium: {e}"));
    assert!(
        output.status.success(),
        "chromium {url} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The page's DOM at `url` after its scripts ran.
pub fn dump_dom(url: &str) -> String {
    run(url, &["--dump-dom".to_owned()])
}

/// A PNG of the page at `url`, `width`×`height`, written to `path`.
pub fn screenshot(url: &str, path: &Path, width: u32, height: u32) {
    run(
        url,
        &[
            format!("--screenshot={}", path.display()),
            format!("--window-size={width},{height}"),
        ],
    );
    let png = std::fs::read(path).unwrap_or_else(|e| panic!("no screenshot at {path:?}: {e}"));
    assert!(png.starts_with(b"\x89PNG"), "{path:?} is not a PNG");
}

/// Polls [`dump_dom`] (off the async runtime) until `check` accepts the DOM; panics with the
/// last DOM after `deadline`.
pub async fn wait_for_dom<T>(
    url: &str,
    deadline: Duration,
    what: &str,
    mut check: impl FnMut(&str) -> Option<T>,
) -> T {
    let give_up = tokio::time::Instant::now() + deadline;
    loop {
        let url_owned = url.to_owned();
        let dom = tokio::task::spawn_blocking(move || dump_dom(&url_owned))
            .await
            .expect("chromium ran");
        if let Some(found) = check(&dom) {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "the page at {url} did not show {what} within {deadline:?}; its DOM:\n{dom}"
        );
    }
}

/// One element: its tag name and attributes (entities in values decoded).
pub type Tag = (String, BTreeMap<String, String>);

/// Every start tag in `html` that has the attribute `attribute`.
pub fn tags(html: &str, attribute: &str) -> Vec<Tag> {
    let mut found = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if name.is_empty() {
            continue;
        }
        let (attributes, consumed) = parse_attributes(&rest[name.len()..]);
        rest = &rest[name.len() + consumed..];
        if attributes.contains_key(attribute) {
            found.push((name, attributes));
        }
    }
    found
}

/// The attributes up to the tag's `>`, and how many bytes that took.
fn parse_attributes(text: &str) -> (BTreeMap<String, String>, usize) {
    let bytes = text.as_bytes();
    let mut attributes = BTreeMap::new();
    let mut i = 0;
    while i < bytes.len() && bytes[i] != b'>' {
        if bytes[i].is_ascii_whitespace() || bytes[i] == b'/' {
            i += 1;
            continue;
        }
        let name_start = i;
        while i < bytes.len() && !b"= \t\n>/".contains(&bytes[i]) {
            i += 1;
        }
        let name = text[name_start..i].to_owned();
        let mut value = String::new();
        if i < bytes.len() && bytes[i] == b'=' && i + 1 < bytes.len() && bytes[i + 1] == b'"' {
            let value_start = i + 2;
            let end = text[value_start..]
                .find('"')
                .map_or(text.len(), |e| value_start + e);
            value = decode(&text[value_start..end]);
            i = end + 1;
        }
        attributes.insert(name, value);
    }
    (attributes, (i + 1).min(text.len()))
}

fn decode(value: &str) -> String {
    value
        .replace("&gt;", ">")
        .replace("&lt;", "<")
        .replace("&quot;", "\"")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tags_with_an_attribute() {
        let html = r#"<body data-loaded="2"><g class="edge good" data-edge="a-&gt;b" data-rate="1.5"><path d="M0,0"></path></g><td>x > y</td></body>"#;
        let edges = tags(html, "data-edge");
        assert_eq!(edges.len(), 1);
        assert_eq!(edges[0].0, "g");
        assert_eq!(edges[0].1["data-edge"], "a->b");
        assert_eq!(edges[0].1["data-rate"], "1.5");
        assert_eq!(tags(html, "data-loaded")[0].1["data-loaded"], "2");
    }
}

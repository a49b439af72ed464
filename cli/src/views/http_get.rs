//! A plain HTTP/1.1 GET with a deadline: what the views need to read a sidecar's admin port or
//! a Prometheus server's API (both plain HTTP on a trusted network or loopback).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

/// How long one read may take: a stuck sidecar must not hold up a view.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// `http://host:port/prefix` → (`host:port`, `/prefix` without a trailing `/`).
pub fn split_url(url: &str) -> Result<(String, String), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!("{url:?}: expected an http:// URL (https is not supported; use a port-forward)")
    })?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.is_empty() {
        return Err(format!("{url:?}: no host"));
    }
    let authority = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let path = path.trim_end_matches('/');
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("/{path}")
    };
    Ok((authority, prefix))
}

/// GET `path` from `authority` (`host:port`): the status and body, or a sentence saying why not.
pub async fn get(authority: &str, path: &str) -> Result<(u16, String), String> {
    tokio::time::timeout(TIMEOUT, get_inner(authority, path))
        .await
        .map_err(|_| {
            format!(
                "{authority}{path}: no answer within {} s",
                TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| format!("{authority}{path}: {e}"))
}

async fn get_inner(authority: &str, path: &str) -> Result<(u16, String), String> {
    let tcp = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let request = http::Request::get(path)
        .header("host", authority)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    // Valid UTF-8 is the rule (Prometheus text, JSON): checked in place, copied once.
    let text = match std::str::from_utf8(&body) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(&body).into_owned(),
    };
    Ok((status, text))
}

/// `text` as a URL query value: unreserved characters as they are, other bytes `%XX`.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_authority_and_prefix() {
        let split = |u: &str| split_url(u).unwrap();
        assert_eq!(
            split("http://127.0.0.1:9090"),
            ("127.0.0.1:9090".into(), String::new())
        );
        assert_eq!(split("http://prom/"), ("prom:80".into(), String::new()));
        assert_eq!(split("http://p:1/sub/"), ("p:1".into(), "/sub".into()));
        assert!(split_url("https://p").unwrap_err().contains("https"));
        assert_eq!(
            percent_encode("a{b=\"c\"}[1m]"),
            "a%7Bb%3D%22c%22%7D%5B1m%5D"
        );
    }
}

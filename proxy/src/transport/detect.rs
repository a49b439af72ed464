//! Deciding what a connection speaks from its first bytes.
//!
//! The decision needs as few bytes as possible and a bounded wait: a client of a server-speaks-
//! first protocol (SMTP, MySQL) sends nothing until the server greets it, so after the timeout the
//! connection is treated as opaque TCP and handed on with whatever arrived.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;

use crate::telemetry::metrics::Metrics;
use crate::transport::PrefixedIo;

/// What a connection was detected to speak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    /// HTTP/2 with prior knowledge (the connection preface).
    Http2,
    /// A TLS ClientHello, with the application protocols (ALPN) it offers.
    Tls {
        alpn: Vec<Vec<u8>>,
    },
    /// Anything else, including nothing at all before the timeout.
    Opaque,
}

impl Protocol {
    /// A stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Protocol::Http1 => "http1",
            Protocol::Http2 => "http2",
            Protocol::Tls { .. } => "tls",
            Protocol::Opaque => "opaque",
        }
    }
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Longest HTTP/1 request line we wait for before calling the stream opaque.
const MAX_REQUEST_LINE: usize = 8 * 1024;
/// A TLS record carrying a ClientHello is at most 16 KiB plus its 5-byte header.
const MAX_PEEK: usize = 16 * 1024 + 5;

/// Reads from `io` until the protocol is known or `timeout` passes, returning the protocol and
/// the bytes read (which must be replayed to whoever handles the connection).
pub async fn detect<T: AsyncRead + Unpin>(
    io: &mut T,
    timeout: Duration,
) -> std::io::Result<(Protocol, Bytes)> {
    let mut buf = BytesMut::with_capacity(1024);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(protocol) = classify(&buf) {
            return Ok((protocol, buf.freeze()));
        }
        if buf.len() >= MAX_PEEK {
            return Ok((Protocol::Opaque, buf.freeze()));
        }
        match tokio::time::timeout_at(deadline, io.read_buf(&mut buf)).await {
            Err(_elapsed) => return Ok((Protocol::Opaque, buf.freeze())),
            Ok(Ok(0)) => return Ok((Protocol::Opaque, buf.freeze())),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
        }
    }
}

/// Detects the protocol of an accepted connection and counts the result under `direction`.
/// Returns the connection with the bytes read put back in front, or `None` if it failed.
pub async fn accepted(
    mut tcp: TcpStream,
    timeout: Duration,
    direction: &'static str,
    metrics: &Metrics,
) -> Option<(Protocol, PrefixedIo<TcpStream>)> {
    match detect(&mut tcp, timeout).await {
        Ok((protocol, prefix)) => {
            metrics
                .proxy
                .detections
                .with_label_values(&[direction, protocol.label()])
                .inc();
            Some((protocol, PrefixedIo::new(prefix, tcp)))
        }
        Err(e) => {
            let peer = tcp.peer_addr().ok();
            tracing::debug!(?peer, direction, "connection failed during detection: {e}");
            None
        }
    }
}

/// The protocol `buf` starts with, or `None` if more bytes are needed to tell.
pub fn classify(buf: &[u8]) -> Option<Protocol> {
    if buf.is_empty() {
        return None;
    }
    if buf.len() < H2_PREFACE.len() && H2_PREFACE.starts_with(buf) {
        return None;
    }
    if buf.starts_with(H2_PREFACE) {
        return Some(Protocol::Http2);
    }
    if buf[0] == 0x16 {
        return classify_tls(buf);
    }
    match classify_http1(buf) {
        Some(true) => Some(Protocol::Http1),
        Some(false) => Some(Protocol::Opaque),
        None => None,
    }
}

fn classify_tls(buf: &[u8]) -> Option<Protocol> {
    let mut acceptor = rustls::server::Acceptor::default();
    let mut rest = buf;
    while !rest.is_empty() {
        match acceptor.read_tls(&mut rest) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => return Some(Protocol::Opaque),
        }
    }
    match acceptor.accept() {
        Ok(Some(accepted)) => {
            let alpn = accepted
                .client_hello()
                .alpn()
                .map(|protocols| protocols.map(<[u8]>::to_vec).collect())
                .unwrap_or_default();
            Some(Protocol::Tls { alpn })
        }
        Ok(None) => None,
        Err(_) => Some(Protocol::Opaque),
    }
}

/// `Some(true)` for an HTTP/1.0 or 1.1 request line, `Some(false)` if it cannot become one,
/// `None` if it still might.
fn classify_http1(buf: &[u8]) -> Option<bool> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n");
    let line = match line_end {
        Some(end) => &buf[..end],
        None if buf.len() > MAX_REQUEST_LINE => return Some(false),
        // A CR at the end may be the first half of the line's CRLF.
        None => buf.strip_suffix(b"\r").unwrap_or(buf),
    };
    let method_len = line.iter().take_while(|b| b.is_ascii_uppercase()).count();
    if method_len == 0 || method_len > 20 {
        return Some(false);
    }
    if method_len == line.len() {
        return if line_end.is_some() {
            Some(false)
        } else {
            None
        };
    }
    if line[method_len] != b' ' || line.iter().any(|b| b.is_ascii_control()) {
        return Some(false);
    }
    line_end.map(|_| line.ends_with(b" HTTP/1.1") || line.ends_with(b" HTTP/1.0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_http1_request_lines_as_they_arrive() {
        let request = b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n";
        for end in 1..24 {
            assert_eq!(classify(&request[..end]), None, "after {end} bytes");
        }
        assert_eq!(classify(&request[..26]), Some(Protocol::Http1));
        assert_eq!(classify(b"POST / HTTP/1.0\r\n"), Some(Protocol::Http1));
        assert_eq!(classify(b"GET / HTTP/2.0\r\n"), Some(Protocol::Opaque));
        assert_eq!(classify(b"get / HTTP/1.1\r\n"), Some(Protocol::Opaque));
        assert_eq!(classify(b"SSH-2.0-OpenSSH_9.2\r\n"), Some(Protocol::Opaque));
        assert_eq!(classify(b"\x00\x01binary"), Some(Protocol::Opaque));
    }

    #[test]
    fn a_request_line_cut_between_cr_and_lf_is_still_undecided() {
        assert_eq!(classify(b"POST / HTTP/1.0\r"), None);
        assert_eq!(classify(b"GET\r"), None);
        assert_eq!(classify(b"POST / HTTP/1.0\r\n"), Some(Protocol::Http1));
        assert_eq!(classify(b"GET / HTTP/1.1\r\r"), Some(Protocol::Opaque));
    }

    #[test]
    fn recognises_the_http2_preface() {
        assert_eq!(classify(&H2_PREFACE[..10]), None);
        assert_eq!(classify(H2_PREFACE), Some(Protocol::Http2));
    }

    #[test]
    fn reads_alpn_from_a_client_hello() {
        let hello = client_hello(&[b"weft-h2"]);
        for end in [1, 5, hello.len() / 2] {
            assert_eq!(classify(&hello[..end]), None, "after {end} bytes");
        }
        assert_eq!(
            classify(&hello),
            Some(Protocol::Tls {
                alpn: vec![b"weft-h2".to_vec()]
            })
        );
        assert_eq!(
            classify(&client_hello(&[])),
            Some(Protocol::Tls { alpn: vec![] })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_is_opaque_after_the_timeout() {
        let (mut client, _server) = tokio::io::duplex(64);
        let started = tokio::time::Instant::now();
        let (protocol, bytes) = detect(&mut client, Duration::from_millis(300))
            .await
            .unwrap();
        assert_eq!(protocol, Protocol::Opaque);
        assert!(bytes.is_empty());
        // Timers have millisecond resolution and round up.
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(300) && waited <= Duration::from_millis(301),
            "{waited:?}"
        );
    }

    /// The first flight of a real rustls client offering `alpn`.
    fn client_hello(alpn: &[&[u8]]) -> Vec<u8> {
        use std::sync::Arc;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let mut conn =
            rustls::ClientConnection::new(Arc::new(config), "example.com".try_into().unwrap())
                .unwrap();
        let mut out = Vec::new();
        conn.write_tls(&mut out).unwrap();
        out
    }
}

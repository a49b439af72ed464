//! What a port is known to carry, and so what may become of bytes that are not HTTP.
//!
//! Detection alone cannot be trusted with HTTP: a request whose first bytes come late (after
//! `--detect-timeout`) or in a shape the detector does not recognise (a bare LF, a lowercase
//! method, HTTP/0.9) would be classified opaque and spliced to the app unparsed — forged
//! `weft-client-identity` headers, authorization and rate limits per request, and the header
//! timeout would all be bypassed. So a port *known* to carry HTTP never falls back to opaque:
//! its connections always go through weft's HTTP server, which writes the identity headers
//! itself, answers `400` to bytes it cannot parse and `408` to a head that does not arrive within
//! the header timeout. The guarantee: an app listening on an HTTP port never receives bytes weft
//! did not parse.
//!
//! Where the knowledge comes from (the same rule on both sides, so they agree):
//! - the destination's discovery answer (`Resolution.protocol`): a MeshService port's
//!   `protocol: http`, a Kubernetes Service port's `appProtocol` or name (`http`, `http-…`,
//!   `grpc…`, `h2c…`), or a ServicePolicy for the service — the outbound side reads the answer
//!   for the address the app dialled, the inbound side the answer for its own address;
//! - `--http-ports`, for ports the operator declares HTTP whatever discovery says (and the only
//!   source without a control plane).
//!
//! Only ports nobody declared keep detection's fallback to opaque TCP, where an opaque
//! connection is still authorized by the caller's identity and counted as opaque.

use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use weft_api::discovery as proto;

use crate::transport::detect::{self, Protocol};

/// Which HTTP version to serve on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    Http1,
    Http2,
}

/// What a port carries, as declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PortProtocol {
    /// Not declared: HTTP detected from the first bytes, anything else carried as opaque TCP.
    #[default]
    Detect,
    /// Always HTTP/1 or HTTP/2: parsed, never spliced.
    Http,
    /// Carried as TCP at once, never sniffed (server-first and binary protocols).
    Opaque,
}

impl PortProtocol {
    /// From a discovery answer; `opaque` is the field of control planes that predate `protocol`.
    pub fn from_proto(protocol: proto::PortProtocol, opaque: bool) -> Self {
        match protocol {
            proto::PortProtocol::Http => PortProtocol::Http,
            proto::PortProtocol::Opaque => PortProtocol::Opaque,
            proto::PortProtocol::Detect if opaque => PortProtocol::Opaque,
            proto::PortProtocol::Detect => PortProtocol::Detect,
        }
    }

    /// The declaration in force: `--opaque-ports` and discovery's `opaque` win (a server-first
    /// protocol breaks when sniffed), then `--http-ports` and discovery's `http`.
    pub fn with_flags(self, port: u16, opaque_ports: &[u16], http_ports: &[u16]) -> Self {
        if self == PortProtocol::Opaque || opaque_ports.contains(&port) {
            PortProtocol::Opaque
        } else if http_ports.contains(&port) {
            PortProtocol::Http
        } else {
            self
        }
    }

    /// How long to wait for the first bytes: the detection timeout where silence may mean a
    /// server-first protocol, the HTTP server's whole header timeout where it can only mean a
    /// slow client.
    pub fn detect_wait(self, detect_timeout: Duration, header_timeout: Duration) -> Duration {
        match self {
            PortProtocol::Http => header_timeout,
            _ => detect_timeout,
        }
    }

    /// What to do with a connection on this port whose first bytes were `detected` (`prefix`).
    pub fn plan(self, detected: &Protocol, prefix: &[u8]) -> Plan {
        match (detected, self) {
            (Protocol::Http1, _) => Plan::Http(HttpVersion::Http1),
            (Protocol::Http2, _) => Plan::Http(HttpVersion::Http2),
            (Protocol::Tls { .. }, PortProtocol::Http) => Plan::Refuse(Refusal::NotHttp),
            (Protocol::Opaque, PortProtocol::Http) => match detect::classify(prefix) {
                // Still a possible request head when the wait ended: the client is too slow.
                None => Plan::Refuse(Refusal::HeaderTimeout),
                // Bytes the detector does not recognise: weft's HTTP/1 parser decides (the
                // request is served if it parses, refused with 400 if not).
                Some(_) => Plan::Http(HttpVersion::Http1),
            },
            (Protocol::Tls { .. } | Protocol::Opaque, _) => Plan::Opaque,
        }
    }
}

/// What becomes of a connection after detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Served by weft's HTTP server.
    Http(HttpVersion),
    /// Carried as a byte stream (only on ports not known to carry HTTP).
    Opaque,
    /// Closed without reaching the app.
    Refuse(Refusal),
}

/// Why a connection to an HTTP port was refused before any request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The request head did not arrive within the header timeout: `408`.
    HeaderTimeout,
    /// TLS (or another protocol recognised as not HTTP) on a port that carries HTTP: closed.
    NotHttp,
}

impl Refusal {
    /// The `reason` label of the refusal metrics and the `weft-error` value.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::HeaderTimeout => "request_header_timeout",
            Refusal::NotHttp => "not_http",
        }
    }

    /// What the client is sent before the connection closes, if anything.
    pub fn response(self) -> Option<&'static [u8]> {
        match self {
            Refusal::HeaderTimeout => Some(
                b"HTTP/1.1 408 Request Timeout\r\nweft-error: request_header_timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            ),
            Refusal::NotHttp => None,
        }
    }
}

/// Sends the client what `refusal` says (if anything) and closes the connection.
pub async fn send_refusal<I: AsyncWrite + Unpin>(mut io: I, refusal: Refusal) {
    if let Some(response) = refusal.response() {
        let _ = io.write_all(response).await;
    }
    let _ = io.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    const HTTP: PortProtocol = PortProtocol::Http;
    const DETECT: PortProtocol = PortProtocol::Detect;

    #[test]
    fn an_http_port_never_plans_opaque() {
        let tls = Protocol::Tls { alpn: vec![] };
        for (detected, prefix) in [
            (Protocol::Opaque, &b""[..]),
            (Protocol::Opaque, b"GET /slo"),
            (Protocol::Opaque, b"get / HTTP/1.1\r\n"),
            (Protocol::Opaque, b"GET / HTTP/1.1\nhost: x\n\n"),
            (Protocol::Opaque, b"G\x01T / HTTP/1.1\r\n"),
            (Protocol::Opaque, b"GET /\r\n"),
            (tls.clone(), b"\x16\x03\x01"),
        ] {
            assert_ne!(HTTP.plan(&detected, prefix), Plan::Opaque, "{prefix:?}");
            assert_eq!(DETECT.plan(&detected, prefix), Plan::Opaque, "{prefix:?}");
        }
    }

    #[test]
    fn a_slow_head_is_a_header_timeout_and_garbage_goes_to_the_parser() {
        let opaque = Protocol::Opaque;
        assert_eq!(
            HTTP.plan(&opaque, b""),
            Plan::Refuse(Refusal::HeaderTimeout)
        );
        assert_eq!(
            HTTP.plan(&opaque, b"GET /slo"),
            Plan::Refuse(Refusal::HeaderTimeout)
        );
        assert_eq!(
            HTTP.plan(&opaque, b"G\x01T / HTTP/1.1\r\n"),
            Plan::Http(HttpVersion::Http1)
        );
        assert_eq!(
            HTTP.plan(&Protocol::Tls { alpn: vec![] }, b"\x16"),
            Plan::Refuse(Refusal::NotHttp)
        );
        assert_eq!(
            DETECT.plan(&Protocol::Http2, b""),
            Plan::Http(HttpVersion::Http2)
        );
    }

    #[test]
    fn opaque_declarations_win_then_http_ones() {
        assert_eq!(HTTP.with_flags(5432, &[5432], &[]), PortProtocol::Opaque);
        assert_eq!(DETECT.with_flags(80, &[5432], &[80]), PortProtocol::Http);
        assert_eq!(DETECT.with_flags(81, &[5432], &[80]), DETECT);
        assert_eq!(
            PortProtocol::from_proto(proto::PortProtocol::Detect, true),
            PortProtocol::Opaque
        );
    }

    #[test]
    fn an_http_port_waits_the_header_timeout() {
        let detect = Duration::from_millis(300);
        let header = Duration::from_secs(10);
        assert_eq!(HTTP.detect_wait(detect, header), header);
        assert_eq!(DETECT.detect_wait(detect, header), detect);
    }
}

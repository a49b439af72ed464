//! Application protocols (ALPN) spoken between weft proxies.
//!
//! A mesh connection says in its TLS handshake what it carries, so the receiving proxy needs no
//! further detection, and so a TLS connection from outside the mesh (which never offers these)
//! can be told apart from a peer sidecar before any certificate is involved.

/// HTTP/2 between proxies; carries the apps' HTTP/1.1 and HTTP/2 (gRPC) requests, multiplexed.
pub const MESH_H2: &[u8] = b"weft-h2";
/// An opaque byte stream to the destination port.
pub const MESH_TCP: &[u8] = b"weft-tcp";

/// HTTP/1.1 between proxies, for requests HTTP/2 cannot carry (upgrades such as WebSocket).
pub const MESH_HTTP1: &[u8] = b"weft-http1";

/// What the inbound listener accepts: the mesh protocols, plus plain HTTP for a mesh-certified
/// client that is not a proxy (curl with a workload certificate, in strict mode).
pub const SERVER_PROTOCOLS: &[&[u8]] = &[MESH_H2, MESH_TCP, MESH_HTTP1, b"h2", b"http/1.1"];

/// Whether a ClientHello's ALPN list marks it as coming from a weft proxy.
pub fn is_mesh(offered: &[&[u8]]) -> bool {
    offered
        .iter()
        .any(|p| *p == MESH_H2 || *p == MESH_TCP || *p == MESH_HTTP1)
}

//! Refusing plaintext in strict mode, in a way the caller can understand.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::transport::detect::Protocol;

const MESSAGE: &str = "weft: this service requires mutual TLS from the mesh (strict mode); plaintext connections are refused\n";

/// An HTTP/1 caller gets a 403 explaining why; anything else is closed.
pub async fn plaintext<I: AsyncRead + AsyncWrite + Unpin>(
    mut io: I,
    client: SocketAddr,
    protocol: Protocol,
) {
    tracing::info!(%client, protocol = protocol.label(), "refused a plaintext connection (strict mode)");
    if protocol == Protocol::Http1 {
        let response = format!(
            "HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain; charset=utf-8\r\nweft-error: plaintext_refused\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{MESSAGE}",
            MESSAGE.len()
        );
        let _ = io.write_all(response.as_bytes()).await;
        let _ = io.shutdown().await;
    }
}

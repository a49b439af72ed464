//! Joining two byte streams (opaque TCP through the mesh).

use tokio::io::{AsyncRead, AsyncWrite};

/// Copies both ways until both sides have finished, propagating half-closes, and returns the
/// bytes moved (a→b, b→a). Errors end the splice; there is nobody to report them to but the log.
pub async fn splice<A, B>(mut a: A, mut b: B) -> (u64, u64)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::io::copy_bidirectional(&mut a, &mut b).await {
        Ok(moved) => moved,
        Err(e) => {
            tracing::debug!("opaque stream ended with an error: {e}");
            (0, 0)
        }
    }
}

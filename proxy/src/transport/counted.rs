//! A byte stream that counts what passes through it, for `weft_tcp_*` metrics.
//!
//! The counting must cost next to nothing on the hot path: the connection's labelled series are
//! resolved once when it opens (see [`crate::telemetry::metrics::connections`]), so each read or
//! write adds to one atomic counter. The connection is counted closed when this is dropped,
//! however it ends.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::telemetry::metrics::connections::OpenConnection;

pub struct CountedIo<I> {
    inner: I,
    connection: OpenConnection,
}

impl<I> CountedIo<I> {
    pub fn new(inner: I, connection: OpenConnection) -> Self {
        Self { inner, connection }
    }

    pub fn get_ref(&self) -> &I {
        &self.inner
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for CountedIo<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            this.connection.received(read);
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for CountedIo<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = polled {
            this.connection.sent(written);
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(written)) = polled {
            this.connection.sent(written);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::telemetry::metrics::connections::{ConnectionMetrics, Direction, TlsStatus};

    fn rendered(registry: &prometheus::Registry) -> String {
        let mut text = String::new();
        prometheus::TextEncoder::new()
            .encode_utf8(&registry.gather(), &mut text)
            .unwrap();
        text
    }

    fn sample(text: &str, name: &str) -> Option<u64> {
        let prefix = format!(
            "{name}{{direction=\"outbound\",peer_identity=\"spiffe://cluster.local/ns/demo/sa/db\",tls=\"mtls\"}} "
        );
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map(|v| v.parse().unwrap())
    }

    #[tokio::test]
    async fn counts_bytes_each_way_and_closes_when_dropped() {
        let registry = prometheus::Registry::new();
        let metrics = ConnectionMetrics::new(&registry);
        let (ours, mut theirs) = tokio::io::duplex(64);
        let connection = metrics.opened(
            Direction::Outbound,
            TlsStatus::Mtls,
            "spiffe://cluster.local/ns/demo/sa/db",
        );
        let mut counted = CountedIo::new(ours, connection);

        counted.write_all(b"hello, peer").await.unwrap();
        let mut got = [0u8; 11];
        theirs.read_exact(&mut got).await.unwrap();
        theirs.write_all(b"reply").await.unwrap();
        let mut reply = [0u8; 5];
        counted.read_exact(&mut reply).await.unwrap();
        // A read at the end of the stream counts nothing.
        drop(theirs);
        assert_eq!(counted.read(&mut reply).await.unwrap(), 0);

        let text = rendered(&registry);
        assert_eq!(sample(&text, "weft_tcp_sent_bytes_total"), Some(11));
        assert_eq!(sample(&text, "weft_tcp_received_bytes_total"), Some(5));
        assert_eq!(sample(&text, "weft_tcp_connections_open"), Some(1));
        assert_eq!(sample(&text, "weft_tcp_connections_closed_total"), Some(0));

        drop(counted);
        let text = rendered(&registry);
        assert_eq!(sample(&text, "weft_tcp_connections_open"), Some(0));
        assert_eq!(sample(&text, "weft_tcp_connections_closed_total"), Some(1));
        assert_eq!(sample(&text, "weft_tcp_connections_opened_total"), Some(1));
    }
}

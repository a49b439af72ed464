//! A test stream that counts the writes made on it: one write is one system call on a socket, so
//! tests can hold the proxy to sending what belongs together at once.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

pub struct WriteCounted {
    io: DuplexStream,
    writes: Arc<AtomicUsize>,
}

/// The number of writes made so far on a [`WriteCounted`] stream.
#[derive(Clone)]
pub struct Writes(Arc<AtomicUsize>);

impl Writes {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

impl WriteCounted {
    pub fn new(io: DuplexStream) -> (Self, Writes) {
        let writes = Arc::new(AtomicUsize::new(0));
        let counted = Self {
            io,
            writes: writes.clone(),
        };
        (counted, Writes(writes))
    }
}

impl AsyncRead for WriteCounted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteCounted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(1..)) = written {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

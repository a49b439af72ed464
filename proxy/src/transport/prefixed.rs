//! An IO that first replays bytes already read from it: the first bytes protocol detection read,
//! and, under TLS, what a large read brought beyond what rustls asked for.
//!
//! Protocol detection has to read the first bytes of a connection to decide what it is; whoever
//! handles the connection next (hyper, rustls, a TCP copy) must still see them.
//!
//! rustls asks its socket for at most 4 KiB per read (`read_tls`), so a TLS record of a 4 KiB
//! request body took two `recv`s and a 64 KiB answer seventeen. [`PrefixedIo::reading_ahead`]
//! reads what the socket has, up to [`READ_AHEAD`], and replays what rustls had no room for:
//! one system call where there were several, for a copy of the bytes. The read is into the
//! stack, so an idle connection holds no buffer, and most reads (small records) fit the caller's
//! buffer whole and keep nothing.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How much a read ahead asks the socket for: a TLS record's worth (16 KiB of plaintext).
pub const READ_AHEAD: usize = 16 * 1024;

#[derive(Debug)]
pub struct PrefixedIo<T> {
    prefix: Bytes,
    /// Reads smaller than [`READ_AHEAD`] read that much, and replay the rest.
    read_ahead: bool,
    io: T,
}

impl<T> PrefixedIo<T> {
    pub fn new(prefix: Bytes, io: T) -> Self {
        Self {
            prefix,
            read_ahead: false,
            io,
        }
    }

    /// From now on, reads of less than [`READ_AHEAD`] read that much and replay the rest (for a
    /// connection under TLS, see the module doc).
    pub fn reading_ahead(mut self) -> Self {
        self.read_ahead = true;
        self
    }

    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// The bytes still to be replayed.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for PrefixedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.prefix.has_remaining() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            if this.prefix.is_empty() {
                // The bytes are replayed: their buffer is not kept for the connection's life.
                this.prefix = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        if !this.read_ahead || buf.remaining() >= READ_AHEAD {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        let mut space = [MaybeUninit::<u8>::uninit(); READ_AHEAD];
        let mut read = ReadBuf::uninit(&mut space);
        ready!(Pin::new(&mut this.io).poll_read(cx, &mut read))?;
        let bytes = read.filled();
        let n = bytes.len().min(buf.remaining());
        buf.put_slice(&bytes[..n]);
        if n < bytes.len() {
            this.prefix = Bytes::copy_from_slice(&bytes[n..]);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for PrefixedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn replays_the_prefix_then_reads_through() {
        let (client, mut server) = tokio::io::duplex(64);
        server.write_all(b" world").await.unwrap();
        drop(server);
        let mut io = PrefixedIo::new(Bytes::from_static(b"hello"), client);
        let mut out = String::new();
        io.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello world");
    }

    /// Small reads are served from one large read of the socket, in order, and nothing is kept
    /// once they have taken it all.
    #[tokio::test]
    async fn small_reads_come_from_one_read_ahead() {
        let (mut near, far) = tokio::io::duplex(64 * 1024);
        let sent: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        near.write_all(&sent).await.unwrap();
        let mut io = PrefixedIo::new(Bytes::new(), far).reading_ahead();
        let mut got = Vec::new();
        let mut small = [0u8; 4096];
        while got.len() < sent.len() {
            let n = io.read(&mut small).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&small[..n]);
            assert_eq!(
                io.prefix().len(),
                sent.len() - got.len(),
                "read ahead whole"
            );
        }
        assert_eq!(got, sent);

        drop(near);
        assert_eq!(io.read(&mut small).await.unwrap(), 0, "the end is the end");
    }
}

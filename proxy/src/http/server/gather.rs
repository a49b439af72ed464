//! An answer's bytes gathered for one write to the app's connection.
//!
//! A large answer comes from the link in frames of up to 16 KiB. Written each on its own, a
//! 64 KiB answer took four or five `writev`s on the client sidecar; gathered while more frames
//! are ready, it takes one or two. Small pieces (the head, small frames, chunk sizes) are copied
//! into a buffer; a large frame is queued as it is, behind what was copied before it, so nothing
//! large is copied and the order is kept.

use std::io::{self, IoSlice};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncWriteExt, WriteHalf};

use crate::http::h1::encode::encode_chunk_size;
use crate::transport::BoxedConnection;

/// Data frames smaller than this are copied into the buffer; larger ones are queued as they are.
pub const COPY_BELOW: usize = 8 * 1024;
/// Slices handed to one `writev`: a 64 KiB write of 16 KiB frames, with their chunk framing.
const SLICES: usize = 16;

pub struct Gather {
    /// What was copied in after the last queued frame.
    copied: BytesMut,
    /// Pieces to write before `copied`, in order.
    queued: Vec<Bytes>,
    queued_len: usize,
}

impl Gather {
    /// Gathers into `buf` (a pooled buffer, see [`Gather::into_buffer`]).
    pub fn new(buf: BytesMut) -> Gather {
        Gather {
            copied: buf,
            queued: Vec::new(),
            queued_len: 0,
        }
    }

    /// Where small pieces are copied (a head, chunk framing).
    pub fn buf(&mut self) -> &mut BytesMut {
        &mut self.copied
    }

    /// Adds a data frame: copied if small, else queued as it is.
    pub fn push(&mut self, data: Bytes) {
        if data.len() < COPY_BELOW {
            self.copied.extend_from_slice(&data);
            return;
        }
        if !self.copied.is_empty() {
            let copied = self.copied.split().freeze();
            self.queued_len += copied.len();
            self.queued.push(copied);
        }
        self.queued_len += data.len();
        self.queued.push(data);
    }

    /// Adds a data frame as one chunk of the chunked coding (none for an empty frame, which
    /// would end the body): [`crate::http::h1::encode_chunk`]'s framing, with the data queued as [`Gather::push`]
    /// does.
    pub fn push_chunk(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        encode_chunk_size(data.len(), &mut self.copied);
        self.push(data);
        self.copied.extend_from_slice(b"\r\n");
    }

    /// Bytes gathered and not written yet.
    pub fn len(&self) -> usize {
        self.queued_len + self.copied.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes everything gathered, in as few `writev`s as the socket allows.
    pub async fn write_to(&mut self, write: &mut WriteHalf<BoxedConnection>) -> io::Result<()> {
        while !self.is_empty() {
            let mut slices = [IoSlice::new(&[]); SLICES];
            let mut count = 0;
            for piece in self
                .queued
                .iter()
                .map(|b| &b[..])
                .chain([&self.copied[..]])
                .filter(|piece| !piece.is_empty())
                .take(SLICES)
            {
                slices[count] = IoSlice::new(piece);
                count += 1;
            }
            let written = write.write_vectored(&slices[..count]).await?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.advance(written);
        }
        write.flush().await
    }

    /// The buffer, to give back to its pool.
    pub fn into_buffer(self) -> BytesMut {
        self.copied
    }

    fn advance(&mut self, mut written: usize) {
        let mut done = 0;
        for piece in &mut self.queued {
            if written < piece.len() {
                piece.advance(written);
                self.queued_len -= written;
                written = 0;
                break;
            }
            written -= piece.len();
            self.queued_len -= piece.len();
            done += 1;
        }
        self.queued.drain(..done);
        self.copied.advance(written);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn pieces_are_written_in_order_whatever_the_socket_takes() {
        // A small pipe: the socket takes a few bytes at a time.
        let (ours, mut theirs) = tokio::io::duplex(7);
        let (_, mut write) = tokio::io::split(Box::new(ours) as BoxedConnection);
        let mut gather = Gather::new(BytesMut::new());
        gather.buf().extend_from_slice(b"head;");
        gather.push(Bytes::from(vec![b'a'; COPY_BELOW]));
        gather.push(Bytes::from_static(b"small;"));
        gather.push(Bytes::from(vec![b'b'; COPY_BELOW + 1]));
        gather.buf().extend_from_slice(b";end");
        let expected = [
            &b"head;"[..],
            &[b'a'; COPY_BELOW],
            b"small;",
            &[b'b'; COPY_BELOW + 1],
            b";end",
        ]
        .concat();
        assert_eq!(gather.len(), expected.len());
        let reader = tokio::spawn(async move {
            let mut got = vec![0; expected.len()];
            theirs.read_exact(&mut got).await.unwrap();
            assert_eq!(got, expected);
        });
        gather.write_to(&mut write).await.unwrap();
        assert_eq!(gather.len(), 0);
        reader.await.unwrap();
    }
}

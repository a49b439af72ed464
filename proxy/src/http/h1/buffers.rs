//! Read and write buffers lent to a connection while it carries a message, and taken back when
//! it is idle again, so memory follows the requests in flight rather than the connections open.
//!
//! A pool per thread: no lock, and a buffer is most often taken back on the thread that lent it.
//! A buffer may come back while its memory is still shared with data handed on (a body chunk not
//! yet sent): it is kept all the same, and lent again once that data is gone. That way the memory
//! is reused rather than freed, and so is its shared-memory header, which a fresh buffer
//! allocates again the first time a chunk is split off it. A head's bytes are copied out of it
//! ([`super::packed`]), so a message waiting for its answer does not keep it.

use std::cell::RefCell;

use bytes::{Buf, Bytes, BytesMut};

/// The capacity a lent buffer starts with: a typical head, or a read's worth.
pub const BUFFER_SIZE: usize = 8 * 1024;
/// Buffers kept per thread; the rest are freed.
const KEPT_PER_THREAD: usize = 16;
/// Larger buffers (grown for a large body) are freed rather than kept.
const KEPT_CAPACITY: usize = 16 * 1024;
/// Body chunks up to this size are copied out of their buffer rather than sharing it.
const COPY_AT_MOST: usize = BUFFER_SIZE / 4;

thread_local! {
    static FREE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// A buffer with at least [`BUFFER_SIZE`] bytes free: a kept one whose memory nothing else
/// shares any more, or a new one.
pub fn take() -> BytesMut {
    let kept = FREE.with(|free| {
        let mut free = free.borrow_mut();
        // `try_reclaim` succeeds only when no chunk handed on still shares the memory.
        let reusable = free
            .iter_mut()
            .rposition(|buf| buf.try_reclaim(BUFFER_SIZE))?;
        Some(free.swap_remove(reusable))
    });
    kept.unwrap_or_else(|| BytesMut::with_capacity(BUFFER_SIZE))
}

/// The first `len` bytes of `buf`, handed on as a body chunk. A small chunk is copied out, packed
/// with heads ([`super::packed`]): a slice would pin the whole buffer (8 KiB for a 600-byte
/// answer) for as long as the chunk waits to be sent on, and keep the buffer from being lent
/// again. Under a burst, hundreds of answers wait on the link at once. A larger chunk is split
/// off without a copy.
pub fn hand_on(buf: &mut BytesMut, len: usize) -> Bytes {
    if len <= COPY_AT_MOST {
        let chunk = super::packed::copy(&buf[..len]);
        buf.advance(len);
        return chunk;
    }
    buf.split_to(len).freeze()
}

/// Gives `buf` back, leaving an empty one (which holds no memory) in its place.
pub fn give_back(buf: &mut BytesMut) {
    let mut buf = std::mem::take(buf);
    if buf.capacity() == 0 || buf.capacity() > KEPT_CAPACITY {
        return;
    }
    buf.clear();
    FREE.with(|free| {
        let mut free = free.borrow_mut();
        if free.len() < KEPT_PER_THREAD {
            free.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_is_lent_again_once_nothing_shares_its_memory() {
        FREE.with(|free| free.borrow_mut().clear());
        let mut buf = take();
        buf.extend_from_slice(b"hello");
        let address = buf.as_ptr();
        give_back(&mut buf);
        assert_eq!(buf.capacity(), 0, "the connection keeps nothing");
        let mut again = take();
        assert_eq!(again.as_ptr(), address, "the same memory is lent again");

        again.extend_from_slice(b"chunk");
        let handed_on = again.split_to(5).freeze();
        give_back(&mut again);
        let other = take();
        assert_ne!(other.as_ptr(), address, "memory still shared is not lent");
        assert!(other.capacity() >= BUFFER_SIZE);
        drop(handed_on);
        assert_eq!(
            take().as_ptr(),
            address,
            "lent again once the chunk is gone"
        );
    }

    #[test]
    fn a_small_chunk_is_copied_and_leaves_its_buffer_free_to_lend() {
        FREE.with(|free| free.borrow_mut().clear());
        let mut buf = take();
        let address = buf.as_ptr();
        buf.extend_from_slice(&[7; COPY_AT_MOST + 1]);
        let small = hand_on(&mut buf, 100);
        assert_eq!(&small[..], &[7; 100]);
        assert_ne!(small.as_ptr(), address, "copied");
        let large = hand_on(&mut buf, COPY_AT_MOST + 1 - 100);
        assert_eq!(large.len(), COPY_AT_MOST + 1 - 100);
        assert!(buf.is_empty());
        drop(large);
        give_back(&mut buf);
        drop(small);
        assert_eq!(
            take().as_ptr(),
            address,
            "nothing handed on still shares it"
        );
    }

    #[test]
    fn large_buffers_are_freed() {
        FREE.with(|free| free.borrow_mut().clear());
        let mut large = BytesMut::with_capacity(4 * KEPT_CAPACITY);
        give_back(&mut large);
        assert!(FREE.with(|free| free.borrow().is_empty()));
    }
}

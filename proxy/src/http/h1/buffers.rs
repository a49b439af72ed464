//! Read and write buffers lent to a connection while it carries a message, and taken back when
//! it is idle again, so memory follows the requests in flight rather than the connections open.
//!
//! A pool per thread: no lock, and a buffer is most often taken back on the thread that lent it.
//! A buffer whose memory is still shared with data handed on (a body chunk not yet sent) is not
//! kept: it would hold that memory, and `reserve` could not reuse it anyway.

use std::cell::RefCell;

use bytes::BytesMut;

/// The capacity a lent buffer starts with: a typical head, or a read's worth.
pub const BUFFER_SIZE: usize = 8 * 1024;
/// Buffers kept per thread; the rest are freed.
const KEPT_PER_THREAD: usize = 16;
/// Larger buffers (grown for a large body) are freed rather than kept.
const KEPT_CAPACITY: usize = 16 * 1024;

thread_local! {
    static FREE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// A buffer with at least [`BUFFER_SIZE`] bytes free.
pub fn take() -> BytesMut {
    let mut buf = FREE
        .with(|free| free.borrow_mut().pop())
        .unwrap_or_default();
    buf.reserve(BUFFER_SIZE);
    buf
}

/// Gives `buf` back, leaving an empty one (which holds no memory) in its place.
pub fn give_back(buf: &mut BytesMut) {
    let mut buf = std::mem::take(buf);
    if buf.capacity() == 0 || buf.capacity() > KEPT_CAPACITY {
        return;
    }
    buf.clear();
    // `try_reclaim` succeeds only when no chunk handed on still shares the memory.
    if !buf.try_reclaim(BUFFER_SIZE) {
        return;
    }
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
    fn a_buffer_comes_back_unless_its_memory_is_shared() {
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
        assert_ne!(take().as_ptr(), address, "memory still shared was not kept");
        drop(handed_on);
    }
}

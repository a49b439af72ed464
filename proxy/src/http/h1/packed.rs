//! Where small copies live while their message is in flight: a parsed head's bytes, and body
//! chunks too small to keep a read buffer for ([`super::buffers::hand_on`]), packed together into
//! small shared blocks, not in the connection's read buffer.
//!
//! A head's fields are slices of its bytes (no copy per field). Were those bytes a slice of the
//! read buffer they were parsed in, the whole buffer (8 KiB) would stay allocated for as long as
//! the message is in flight: with 512 requests waiting for their answers, 4 MiB of buffers held
//! for a few hundred bytes of heads each. Instead each head is copied (a `memcpy` of its bytes)
//! into a per-thread block of [`BLOCK_SIZE`], behind the heads copied before it, and the read
//! buffer can go back to its pool at once. A block is freed when the last head in it is dropped,
//! or reused when it is full and nothing shares it any more: one allocation per block, about one
//! per fifty requests of a typical head, where a copy of each head would cost one per request.
//!
//! A block is held by its longest-lived head: at most [`BLOCK_SIZE`] per long-lived message
//! (a long poll, a stream), against the 8 KiB read buffer it held before.

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};

/// The size of a block of heads.
pub const BLOCK_SIZE: usize = 4 * 1024;
/// Heads larger than this get an allocation of their own rather than most of a block.
const OWN_ALLOCATION_ABOVE: usize = BLOCK_SIZE / 4;

thread_local! {
    static BLOCK: RefCell<Option<BytesMut>> = const { RefCell::new(None) };
}

/// A copy of `head` (or of a small body chunk), packed into this thread's current block.
pub fn copy(head: &[u8]) -> Bytes {
    if head.len() > OWN_ALLOCATION_ABOVE {
        return Bytes::copy_from_slice(head);
    }
    BLOCK.with(|block| {
        let mut block = block.borrow_mut();
        let block = block.get_or_insert_with(|| BytesMut::with_capacity(BLOCK_SIZE));
        // `try_reclaim` succeeds only when no head copied into the block is still alive.
        if block.capacity() - block.len() < head.len() && !block.try_reclaim(BLOCK_SIZE) {
            *block = BytesMut::with_capacity(BLOCK_SIZE);
        }
        block.extend_from_slice(head);
        block.split().freeze()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_packed_together_and_a_block_is_reused_once_they_are_gone() {
        let first = copy(b"GET / HTTP/1.1\r\n\r\n");
        let second = copy(b"GET /a HTTP/1.1\r\n\r\n");
        assert_eq!(&first[..], b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(&second[..], b"GET /a HTTP/1.1\r\n\r\n");
        assert_eq!(
            second.as_ptr() as usize,
            first.as_ptr() as usize + first.len(),
            "the second head follows the first"
        );
        let start = first.as_ptr();
        drop((first, second));

        // Fill the block: the next head starts where the first did, the block being free.
        let head = [b'x'; 1000];
        let kept: Vec<Bytes> = (0..4).map(|_| copy(&head)).collect();
        drop(kept);
        assert_eq!(
            copy(&head).as_ptr(),
            start,
            "the block is reused once nothing shares it"
        );
    }

    #[test]
    fn a_live_head_keeps_its_bytes_while_its_block_fills_up() {
        let live = copy(&[b'y'; 1000]);
        for round in 0..20u8 {
            let others: Vec<Bytes> = (0..8).map(|_| copy(&[round; 1000])).collect();
            assert!(others.iter().all(|other| other[..] == [round; 1000]));
        }
        assert_eq!(live[..], [b'y'; 1000], "a live head's bytes never change");
    }

    #[test]
    fn a_large_head_has_its_own_allocation() {
        let large = vec![b'z'; OWN_ALLOCATION_ABOVE + 1];
        assert_eq!(&copy(&large)[..], &large[..]);
    }
}

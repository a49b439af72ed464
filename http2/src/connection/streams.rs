//! The streams of one connection: what each may still send and receive, and the data queued on
//! it.
//!
//! Streams are found by their number in a hash map with a hash made for stream numbers (a
//! multiplication: they are small, distinct, and chosen by the peer only within the rules the
//! connection checks). A stream leaves the map once both its halves are closed and nothing of it
//! is queued; a frame that arrives later for it finds nothing and is dropped by the connection.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use bytes::Bytes;

/// One stream's state (RFC 9113 section 5.1, as far as weft needs it).
#[derive(Debug)]
pub struct Stream {
    /// The peer has ended its half (`END_STREAM` received, or a reset).
    pub recv_closed: bool,
    /// This side's half has ended: `END_STREAM` queued (it goes out after the queued data), or a
    /// reset.
    pub send_closed: bool,
    /// A head was received: a further `HEADERS` is trailers (or, on a client, the final answer
    /// after an interim 1xx, which leaves this false).
    pub head_received: bool,
    /// What this side may still send on the stream; negative when the peer lowered its initial
    /// window below what was already sent (RFC 9113 section 6.9.2).
    pub send_window: i64,
    /// What the peer may still send on the stream.
    pub recv_window: i64,
    /// Received bytes the application has consumed that no `WINDOW_UPDATE` has given back yet.
    pub recv_released: u32,
    /// The `content-length` of the peer's message, checked against its `DATA` at its end.
    pub expected_length: Option<u64>,
    pub received_length: u64,
    /// Data waiting for window, oldest first, and its total.
    pub queue: VecDeque<Bytes>,
    pub queued: usize,
    /// `END_STREAM` goes out with (or after) the last queued data.
    pub end_queued: bool,
    /// Trailers (an encoded block that refers to no dynamic-table entry) to send after the queue.
    pub trailers: Option<Bytes>,
    /// In the connection's list of streams with data to send.
    pub ready: bool,
    /// Opened by the peer (counts against this side's limit of concurrent streams).
    pub remote: bool,
    /// The application wants to hear when the queue has gone out (see `Connection::drained`).
    pub notify_drained: bool,
    /// The application wants no more of the peer's data: it is dropped as it comes, and once
    /// this side's half has gone out the stream is reset with `NO_ERROR` (RFC 9113 section 8.1).
    pub stop_receiving: bool,
    /// The answer has no content whatever its `content-length` says (a client's `HEAD`).
    pub no_content: bool,
}

impl Stream {
    pub fn new(send_window: u32, recv_window: u32, remote: bool) -> Stream {
        Stream {
            recv_closed: false,
            send_closed: false,
            head_received: false,
            send_window: i64::from(send_window),
            recv_window: i64::from(recv_window),
            recv_released: 0,
            expected_length: None,
            received_length: 0,
            queue: VecDeque::new(),
            queued: 0,
            end_queued: false,
            trailers: None,
            ready: false,
            remote,
            notify_drained: false,
            stop_receiving: false,
            no_content: false,
        }
    }
}

/// The streams of a connection by number.
pub type Streams = HashMap<u32, Stream, BuildHasherDefault<StreamIdHasher>>;

/// A hasher for stream numbers: one multiplication (Fibonacci hashing).
#[derive(Default)]
pub struct StreamIdHasher(u64);

impl Hasher for StreamIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, id: u32) {
        self.0 = u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

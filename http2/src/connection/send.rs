//! What this side sends: heads, data within the peer's windows, trailers, resets, and the bytes
//! that leave.
//!
//! A head is encoded into the output at once, so blocks leave in the order the HPACK encoder
//! made them (the peer's decoder replays them in that order). Data is queued per stream and moved
//! into `DATA` frames by [`Connection::flush`] as far as the stream's and the connection's
//! windows allow, streams taking turns a frame at a time. Trailers wait behind their stream's
//! data, so they are encoded without the dynamic table (literals, no insertion, no reference): a
//! block that leaves later than others were encoded must not depend on the table's state.
//!
//! Frame heads and small payloads are copied into one buffer; a payload of [`COPY_BELOW`] bytes
//! or more leaves as its own chunk beside it. Everything queued leaves in one vectored write.

use bytes::{BufMut, Bytes, BytesMut};

use super::{Connection, Role};
use crate::frame::{self, Reason};
use crate::hpack::{Indexing, default_indexing};

/// Payloads shorter than this are copied next to their frame's head.
const COPY_BELOW: usize = 1024;

/// Writes the fields of one header block; see [`Connection::send_headers`].
pub struct FieldWriter<'a> {
    encoder: &'a mut crate::hpack::Encoder,
    dst: &'a mut BytesMut,
}

impl FieldWriter<'_> {
    /// A field, indexed as [`default_indexing`] says.
    pub fn field(&mut self, name: &[u8], value: &[u8]) {
        let indexing = default_indexing(name, value);
        self.encoder.field(name, value, indexing, self.dst);
    }

    pub fn field_with(&mut self, name: &[u8], value: &[u8], indexing: Indexing) {
        self.encoder.field(name, value, indexing, self.dst);
    }
}

/// Writes trailer fields: literals that neither use nor change the dynamic table.
pub struct TrailerWriter {
    block: BytesMut,
}

impl TrailerWriter {
    pub fn field(&mut self, name: &[u8], value: &[u8]) {
        // Literal Header Field without Indexing, New Name (RFC 7541 section 6.2.2).
        self.block.put_u8(0);
        put_string(&mut self.block, name);
        put_string(&mut self.block, value);
    }
}

/// An HPACK string literal, not Huffman-coded (section 5.2): its length as a 7-bit-prefix integer.
fn put_string(dst: &mut BytesMut, s: &[u8]) {
    let mut len = s.len();
    if len < 127 {
        dst.put_u8(len as u8);
    } else {
        dst.put_u8(127);
        len -= 127;
        while len >= 128 {
            dst.put_u8((len % 128) as u8 | 0x80);
            len /= 128;
        }
        dst.put_u8(len as u8);
    }
    dst.put_slice(s);
}

impl Connection {
    /// Opens a stream (a client's request): its number, or `None` while the peer's limit of
    /// concurrent streams is reached or the connection is going away. Once the stream numbers
    /// are used up (2^30 requests) the connection is going away: the application opens another.
    pub fn open_stream(&mut self) -> Option<u32> {
        if self.next_local_stream > frame::MAX_WINDOW {
            self.going_away.get_or_insert(Reason::NO_ERROR);
        }
        if self.role != Role::Client
            || self.going_away.is_some()
            || self.local_open >= self.peer_max_concurrent_streams
        {
            return None;
        }
        let id = self.next_local_stream;
        self.next_local_stream += 2;
        self.local_open += 1;
        let stream = super::Stream::new(self.peer_initial_window, self.config.stream_window, false);
        self.streams.insert(id, stream);
        Some(id)
    }

    /// The answer on `stream` has no content whatever its `content-length` says: the request
    /// was a `HEAD` (RFC 9113 section 8.1.1).
    pub fn expect_no_content(&mut self, stream: u32) {
        if let Some(state) = self.streams.get_mut(&stream) {
            state.no_content = true;
        }
    }

    /// Sends a head (a request's or an answer's) on `stream`; `fields` writes its fields,
    /// pseudo-fields first. Ignored if the stream is gone (the peer reset it).
    pub fn send_headers(
        &mut self,
        stream: u32,
        end_stream: bool,
        fields: impl FnOnce(&mut FieldWriter<'_>),
    ) {
        let Some(state) = self.streams.get_mut(&stream) else {
            return;
        };
        if state.send_closed {
            return;
        }
        if end_stream {
            state.send_closed = true;
        }
        let start = frame::begin_headers(&mut self.out, stream, end_stream);
        self.encoder.begin_block(&mut self.out);
        fields(&mut FieldWriter {
            encoder: &mut self.encoder,
            dst: &mut self.out,
        });
        frame::finish_headers(&mut self.out, start, self.peer_max_frame_size);
        if end_stream {
            self.close_if_done(stream);
        }
    }

    /// Queues `data` on `stream`, ending it with `end_stream`; it leaves as the windows allow.
    /// Ignored if the stream is gone or its half is closed.
    pub fn send_data(&mut self, stream: u32, data: Bytes, end_stream: bool) {
        let Some(state) = self.streams.get_mut(&stream) else {
            return;
        };
        if state.send_closed {
            return;
        }
        state.queued += data.len();
        if !data.is_empty() {
            state.queue.push_back(data);
        }
        if end_stream {
            state.send_closed = true;
            state.end_queued = true;
        }
        if !state.ready {
            state.ready = true;
            self.ready.push_back(stream);
        }
    }

    /// Ends `stream` with trailers, after its queued data.
    pub fn send_trailers(&mut self, stream: u32, fields: impl FnOnce(&mut TrailerWriter)) {
        let Some(state) = self.streams.get_mut(&stream) else {
            return;
        };
        if state.send_closed {
            return;
        }
        let mut writer = TrailerWriter {
            block: BytesMut::new(),
        };
        fields(&mut writer);
        state.trailers = Some(writer.block.freeze());
        state.send_closed = true;
        if !state.ready {
            state.ready = true;
            self.ready.push_back(stream);
        }
    }

    /// Resets `stream` (`CANCEL` when the application gave it up, `NO_ERROR` when an answer is
    /// complete and the rest of the request is not wanted). Its queued data is dropped.
    pub fn send_reset(&mut self, stream: u32, reason: Reason) {
        let Some(state) = self.streams.remove(&stream) else {
            return;
        };
        self.forget(&state);
        self.write_reset(stream, reason);
    }

    /// The application wants no more of `stream`'s data from the peer (it answered without
    /// reading the whole request, or gave the body up): what comes is dropped, its window given
    /// back, and once this side's half has gone out the stream is reset with `NO_ERROR`.
    pub fn stop_receiving(&mut self, stream: u32) {
        let Some(state) = self.streams.get_mut(&stream) else {
            return;
        };
        if state.recv_closed {
            return;
        }
        state.stop_receiving = true;
        self.close_if_done(stream);
    }

    /// Bytes queued on `stream` and not sent yet (for the application's backpressure).
    pub fn queued(&self, stream: u32) -> usize {
        self.streams.get(&stream).map_or(0, |s| s.queued)
    }

    /// Asks for `stream` to be listed by [`Connection::drained`] once its queue has gone out.
    pub fn notify_drained(&mut self, stream: u32) {
        if let Some(state) = self.streams.get_mut(&stream) {
            state.notify_drained = true;
        }
    }

    /// The streams whose queue has gone out since the last call, of those that asked.
    pub fn drained(&mut self) -> std::vec::Drain<'_, u32> {
        self.drained.drain(..)
    }

    /// Moves queued data into frames as far as the windows allow.
    pub fn flush(&mut self) {
        // Streams take turns a frame at a time; one blocked by the connection's window stays
        // listed for the next WINDOW_UPDATE, one blocked by its own leaves the list until its own.
        while self.send_window > 0 {
            let Some(id) = self.ready.pop_front() else {
                break;
            };
            let Some(stream) = self.streams.get_mut(&id) else {
                continue;
            };
            let mut sent_all = true;
            if let Some(front) = stream.queue.front_mut() {
                if stream.send_window <= 0 {
                    stream.ready = false;
                    continue;
                }
                let room = stream
                    .send_window
                    .min(self.send_window)
                    .min(i64::from(self.peer_max_frame_size)) as usize;
                let take = room.min(front.len());
                let chunk = if take == front.len() {
                    stream.queue.pop_front().unwrap_or_default()
                } else {
                    front.split_to(take)
                };
                stream.queued -= take;
                stream.send_window -= take as i64;
                self.send_window -= take as i64;
                sent_all = stream.queue.is_empty();
                let end = sent_all && stream.end_queued && stream.trailers.is_none();
                frame::write_data_head(&mut self.out, id, take, end);
                if take < COPY_BELOW {
                    self.out.put_slice(&chunk);
                } else {
                    let heads = self.out.split().freeze();
                    self.chunks.push(heads);
                    self.chunks.push(chunk);
                }
                if end {
                    stream.end_queued = false;
                }
            } else if stream.end_queued && stream.trailers.is_none() {
                frame::write_data_head(&mut self.out, id, 0, true);
                stream.end_queued = false;
            }
            if !sent_all {
                self.ready.push_back(id);
                continue;
            }
            if let Some(trailers) = stream.trailers.take() {
                let start = frame::begin_headers(&mut self.out, id, true);
                self.out.put_slice(&trailers);
                frame::finish_headers(&mut self.out, start, self.peer_max_frame_size);
                stream.end_queued = false;
            }
            stream.ready = false;
            if stream.notify_drained {
                stream.notify_drained = false;
                self.drained.push(id);
            }
            self.close_if_done(id);
        }
    }

    /// Whether anything waits to be written.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty() || !self.chunks.is_empty()
    }

    /// Moves what is ready to leave into `dst`, in order (after [`Connection::flush`]).
    pub fn take_output(&mut self, dst: &mut Vec<Bytes>) {
        dst.append(&mut self.chunks);
        if !self.out.is_empty() {
            dst.push(self.out.split().freeze());
        }
    }

    /// Starts a graceful shutdown: `GOAWAY` naming the last stream the peer opened; streams it
    /// opens after are refused, those in flight finish.
    pub fn go_away(&mut self, reason: Reason) {
        if self.going_away.is_none() {
            self.going_away = Some(reason);
            frame::write_goaway(&mut self.out, self.last_remote_stream, reason, b"");
        }
    }

    /// Gives back `n` bytes of `stream`'s received data the application has consumed: the peer
    /// may send that much more (a `WINDOW_UPDATE` once half a window has been consumed).
    pub fn release(&mut self, stream: u32, n: usize) {
        let n = n as u32;
        self.release_connection(n);
        let Some(state) = self.streams.get_mut(&stream) else {
            return;
        };
        if state.recv_closed {
            return;
        }
        state.recv_released += n;
        if state.recv_released >= self.config.stream_window / 2 {
            let increment = state.recv_released;
            state.recv_window += i64::from(increment);
            state.recv_released = 0;
            frame::write_window_update(&mut self.out, stream, increment);
        }
    }

    pub(super) fn release_connection(&mut self, n: u32) {
        self.recv_released += n;
        if self.recv_released >= self.config.connection_window / 2 {
            let increment = self.recv_released;
            self.recv_window += i64::from(increment);
            self.recv_released = 0;
            frame::write_window_update(&mut self.out, 0, increment);
        }
    }

    /// Removes `stream` once nothing more will happen on it.
    pub(super) fn close_if_done(&mut self, stream: u32) {
        let Some(state) = self.streams.get(&stream) else {
            return;
        };
        let sent = state.send_closed
            && state.queue.is_empty()
            && state.trailers.is_none()
            && !state.end_queued;
        let reset = sent && !state.recv_closed && state.stop_receiving;
        if (sent && state.recv_closed) || reset {
            if let Some(state) = self.streams.remove(&stream) {
                self.forget(&state);
            }
            if reset {
                self.write_reset(stream, Reason::NO_ERROR);
            }
        }
    }

    /// Takes a removed stream out of the counts.
    pub(super) fn forget(&mut self, state: &super::Stream) {
        if state.remote {
            self.remote_open -= 1;
        } else {
            self.local_open -= 1;
        }
    }
}

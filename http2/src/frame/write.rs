//! Frames written: each `write_*` appends one frame to an output buffer.

use bytes::{BufMut, BytesMut};

use super::{
    ACK, CONTINUATION, DATA, END_HEADERS, END_STREAM, GOAWAY, HEAD_LEN, HEADERS,
    MAX_MAX_FRAME_SIZE, MAX_WINDOW, PING, RST_STREAM, Reason, SETTINGS, Settings, WINDOW_UPDATE,
};

pub(super) fn write_head(dst: &mut BytesMut, length: usize, kind: u8, flags: u8, stream: u32) {
    debug_assert!(length <= MAX_MAX_FRAME_SIZE as usize);
    dst.put_uint(length as u64, 3);
    dst.put_u8(kind);
    dst.put_u8(flags);
    dst.put_u32(stream);
}

/// Appends a `DATA` frame's head for a payload of `length` bytes, which the caller writes next.
pub fn write_data_head(dst: &mut BytesMut, stream: u32, length: usize, end_stream: bool) {
    let flags = if end_stream { END_STREAM } else { 0 };
    write_head(dst, length, DATA, flags, stream);
}

/// Appends a `SETTINGS` frame with these values (those that are `Some`).
pub fn write_settings(dst: &mut BytesMut, settings: &Settings) {
    let entries = [
        (0x1u16, settings.header_table_size),
        (0x2, settings.enable_push.map(u32::from)),
        (0x3, settings.max_concurrent_streams),
        (0x4, settings.initial_window_size),
        (0x5, settings.max_frame_size),
        (0x6, settings.max_header_list_size),
    ];
    let count = entries.iter().filter(|(_, v)| v.is_some()).count();
    write_head(dst, count * 6, SETTINGS, 0, 0);
    for (id, value) in entries {
        if let Some(value) = value {
            dst.put_u16(id);
            dst.put_u32(value);
        }
    }
}

pub fn write_settings_ack(dst: &mut BytesMut) {
    write_head(dst, 0, SETTINGS, ACK, 0);
}

pub fn write_ping(dst: &mut BytesMut, ack: bool, payload: [u8; 8]) {
    write_head(dst, 8, PING, if ack { ACK } else { 0 }, 0);
    dst.put_slice(&payload);
}

pub fn write_window_update(dst: &mut BytesMut, stream: u32, increment: u32) {
    debug_assert!(increment > 0 && increment <= MAX_WINDOW);
    write_head(dst, 4, WINDOW_UPDATE, 0, stream);
    dst.put_u32(increment);
}

pub fn write_reset(dst: &mut BytesMut, stream: u32, reason: Reason) {
    write_head(dst, 4, RST_STREAM, 0, stream);
    dst.put_u32(reason.0);
}

pub fn write_goaway(dst: &mut BytesMut, last_stream: u32, reason: Reason, debug: &[u8]) {
    write_head(dst, 8 + debug.len(), GOAWAY, 0, 0);
    dst.put_u32(last_stream);
    dst.put_u32(reason.0);
    dst.put_slice(debug);
}

/// Where a header block being written starts; see [`begin_headers`].
#[derive(Debug)]
pub struct HeaderBlockStart {
    at: usize,
    stream: u32,
    end_stream: bool,
}

/// Reserves a `HEADERS` frame's head in `dst`; the caller appends the HPACK block right after,
/// then calls [`finish_headers`].
pub fn begin_headers(dst: &mut BytesMut, stream: u32, end_stream: bool) -> HeaderBlockStart {
    let at = dst.len();
    dst.put_bytes(0, HEAD_LEN);
    HeaderBlockStart {
        at,
        stream,
        end_stream,
    }
}

/// Fills in the `HEADERS` frame's head; a block longer than `max_frame_size` (the peer's) is
/// split into `CONTINUATION` frames.
pub fn finish_headers(dst: &mut BytesMut, start: HeaderBlockStart, max_frame_size: u32) {
    let max = max_frame_size as usize;
    let block_at = start.at + HEAD_LEN;
    let block_len = dst.len() - block_at;
    let first = block_len.min(max);
    let mut flags = if start.end_stream { END_STREAM } else { 0 };
    if first == block_len {
        flags |= END_HEADERS;
    }
    let mut head = BytesMut::with_capacity(HEAD_LEN);
    write_head(&mut head, first, HEADERS, flags, start.stream);
    dst[start.at..block_at].copy_from_slice(&head);
    if first == block_len {
        return;
    }
    // Rare (a block over 16 KiB): the rest moves to make room for each CONTINUATION's head.
    let rest = dst.split_off(block_at + first);
    let mut pieces = rest.chunks(max).peekable();
    while let Some(piece) = pieces.next() {
        let flags = if pieces.peek().is_none() {
            END_HEADERS
        } else {
            0
        };
        write_head(dst, piece.len(), CONTINUATION, flags, start.stream);
        dst.put_slice(piece);
    }
}

//! HTTP/2 frames (RFC 9113 sections 4 and 6): cut from the bytes read, checked, and written.
//!
//! [`decode`] takes one whole frame off the front of the bytes read, or says it needs more. It
//! checks what can be checked from the frame alone: its length against the largest frame this side
//! accepts, the stream each type may be sent on, the fixed lengths of `PRIORITY`, `RST_STREAM`,
//! `SETTINGS`, `PING`, `GOAWAY` and `WINDOW_UPDATE`, padding, and the values a `SETTINGS` frame
//! may carry. What depends on the connection's state (which streams are open, the windows, a
//! header block in progress) is checked by the connection. Payloads are slices of the bytes read:
//! no copy. Unknown frame types are skipped, as RFC 9113 section 4.1 requires.
//!
//! The `write_*` functions append a frame to an output buffer. A `DATA` frame's payload is not
//! copied by [`write_data_head`]: the caller writes the head and hands the payload on beside it
//! (a vectored write), unless it is small enough to copy.

use bytes::{Buf, Bytes, BytesMut};

/// What a client sends first (RFC 9113 section 3.4), before its `SETTINGS`.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The size of every frame's head: length (3 bytes), type, flags, stream (4 bytes).
pub const HEAD_LEN: usize = 9;
/// The smallest `SETTINGS_MAX_FRAME_SIZE`, and every peer's until it says otherwise.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;
/// The largest `SETTINGS_MAX_FRAME_SIZE` (2^24 - 1).
pub const MAX_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;
/// The largest window (2^31 - 1): a `SETTINGS_INITIAL_WINDOW_SIZE` above it is an error, and so
/// is a `WINDOW_UPDATE` that takes a window above it.
pub const MAX_WINDOW: u32 = (1 << 31) - 1;
/// Every window before `SETTINGS` or `WINDOW_UPDATE` change it.
pub const DEFAULT_WINDOW: u32 = 65_535;

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const PRIORITY: u8 = 0x2;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PUSH_PROMISE: u8 = 0x5;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY_FLAG: u8 = 0x20;

/// An HTTP/2 error code (RFC 9113 section 7), as sent in `RST_STREAM` and `GOAWAY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reason(pub u32);

impl Reason {
    pub const NO_ERROR: Reason = Reason(0x0);
    pub const PROTOCOL_ERROR: Reason = Reason(0x1);
    pub const INTERNAL_ERROR: Reason = Reason(0x2);
    pub const FLOW_CONTROL_ERROR: Reason = Reason(0x3);
    pub const SETTINGS_TIMEOUT: Reason = Reason(0x4);
    pub const STREAM_CLOSED: Reason = Reason(0x5);
    pub const FRAME_SIZE_ERROR: Reason = Reason(0x6);
    pub const REFUSED_STREAM: Reason = Reason(0x7);
    pub const CANCEL: Reason = Reason(0x8);
    pub const COMPRESSION_ERROR: Reason = Reason(0x9);
    pub const CONNECT_ERROR: Reason = Reason(0xa);
    pub const ENHANCE_YOUR_CALM: Reason = Reason(0xb);
    pub const INADEQUATE_SECURITY: Reason = Reason(0xc);
    pub const HTTP_1_1_REQUIRED: Reason = Reason(0xd);
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.0 {
            0x0 => "NO_ERROR",
            0x1 => "PROTOCOL_ERROR",
            0x2 => "INTERNAL_ERROR",
            0x3 => "FLOW_CONTROL_ERROR",
            0x4 => "SETTINGS_TIMEOUT",
            0x5 => "STREAM_CLOSED",
            0x6 => "FRAME_SIZE_ERROR",
            0x7 => "REFUSED_STREAM",
            0x8 => "CANCEL",
            0x9 => "COMPRESSION_ERROR",
            0xa => "CONNECT_ERROR",
            0xb => "ENHANCE_YOUR_CALM",
            0xc => "INADEQUATE_SECURITY",
            0xd => "HTTP_1_1_REQUIRED",
            other => return write!(f, "unknown error code {other:#x}"),
        };
        f.write_str(name)
    }
}

/// A frame that breaks RFC 9113: the error code to answer with, the stream it concerns when only
/// that stream is to be reset (`None`: the whole connection), and what was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameError {
    pub reason: Reason,
    pub stream: Option<u32>,
    pub what: &'static str,
}

impl FrameError {
    fn connection(reason: Reason, what: &'static str) -> FrameError {
        FrameError {
            reason,
            stream: None,
            what,
        }
    }
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.stream {
            Some(stream) => write!(f, "{} on stream {stream} ({})", self.what, self.reason),
            None => write!(f, "{} ({})", self.what, self.reason),
        }
    }
}

impl std::error::Error for FrameError {}

/// The values a `SETTINGS` frame set; `None` where it said nothing (the last value wins when a
/// frame repeats one, RFC 9113 section 6.5.3). Unknown settings are ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settings {
    pub header_table_size: Option<u32>,
    pub enable_push: Option<bool>,
    pub max_concurrent_streams: Option<u32>,
    pub initial_window_size: Option<u32>,
    pub max_frame_size: Option<u32>,
    pub max_header_list_size: Option<u32>,
}

/// One frame read. Padding is removed; a `HEADERS` frame's priority fields are checked and
/// dropped (RFC 9113 deprecates the priority scheme; weft does not prioritise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Data {
        stream: u32,
        data: Bytes,
        end_stream: bool,
        /// What the frame counts against the flow-control windows: the payload with its padding.
        flow_len: u32,
    },
    Headers {
        stream: u32,
        fragment: Bytes,
        end_stream: bool,
        end_headers: bool,
    },
    Continuation {
        stream: u32,
        fragment: Bytes,
        end_headers: bool,
    },
    Priority {
        stream: u32,
    },
    Reset {
        stream: u32,
        reason: Reason,
    },
    Settings(Settings),
    SettingsAck,
    PushPromise {
        stream: u32,
    },
    Ping {
        ack: bool,
        payload: [u8; 8],
    },
    GoAway {
        last_stream: u32,
        reason: Reason,
        debug: Bytes,
    },
    WindowUpdate {
        stream: u32,
        increment: u32,
    },
    /// A frame of a type this side does not know: skipped.
    Unknown,
}

/// Takes one frame off the front of `input`: `Ok(None)` if `input` does not hold a whole frame
/// yet (nothing is consumed then). A frame longer than `max_frame_size` (what this side
/// advertised) is an error before its payload arrives.
pub fn decode(input: &mut BytesMut, max_frame_size: u32) -> Result<Option<Frame>, FrameError> {
    if input.len() < HEAD_LEN {
        return Ok(None);
    }
    let length = u32::from_be_bytes([0, input[0], input[1], input[2]]);
    if length > max_frame_size {
        return Err(FrameError::connection(
            Reason::FRAME_SIZE_ERROR,
            "a frame is longer than SETTINGS_MAX_FRAME_SIZE",
        ));
    }
    let total = HEAD_LEN + length as usize;
    if input.len() < total {
        return Ok(None);
    }
    let kind = input[3];
    let flags = input[4];
    let stream = u32::from_be_bytes([input[5], input[6], input[7], input[8]]) & MAX_WINDOW;
    let mut frame = input.split_to(total);
    frame.advance(HEAD_LEN);
    parse(kind, flags, stream, frame.freeze()).map(Some)
}

fn parse(kind: u8, flags: u8, stream: u32, payload: Bytes) -> Result<Frame, FrameError> {
    use FrameError as E;
    let on_stream = |what| {
        if stream == 0 {
            Err(E::connection(Reason::PROTOCOL_ERROR, what))
        } else {
            Ok(())
        }
    };
    let on_connection = |what| {
        if stream != 0 {
            Err(E::connection(Reason::PROTOCOL_ERROR, what))
        } else {
            Ok(())
        }
    };
    let size_error = |what| Err(E::connection(Reason::FRAME_SIZE_ERROR, what));
    Ok(match kind {
        DATA => {
            on_stream("a DATA frame on stream 0")?;
            let flow_len = payload.len() as u32;
            Frame::Data {
                stream,
                data: unpad(flags, payload)?,
                end_stream: flags & END_STREAM != 0,
                flow_len,
            }
        }
        HEADERS => {
            on_stream("a HEADERS frame on stream 0")?;
            let mut fragment = unpad(flags, payload)?;
            if flags & PRIORITY_FLAG != 0 {
                if fragment.len() < 5 {
                    return size_error("a HEADERS frame too short for its priority fields");
                }
                let depends_on =
                    u32::from_be_bytes([fragment[0], fragment[1], fragment[2], fragment[3]])
                        & MAX_WINDOW;
                if depends_on == stream {
                    return Err(E {
                        reason: Reason::PROTOCOL_ERROR,
                        stream: Some(stream),
                        what: "a stream that depends on itself",
                    });
                }
                fragment.advance(5);
            }
            Frame::Headers {
                stream,
                fragment,
                end_stream: flags & END_STREAM != 0,
                end_headers: flags & END_HEADERS != 0,
            }
        }
        PRIORITY => {
            on_stream("a PRIORITY frame on stream 0")?;
            if payload.len() != 5 {
                return Err(E {
                    reason: Reason::FRAME_SIZE_ERROR,
                    stream: Some(stream),
                    what: "a PRIORITY frame not 5 bytes long",
                });
            }
            Frame::Priority { stream }
        }
        RST_STREAM => {
            on_stream("a RST_STREAM frame on stream 0")?;
            if payload.len() != 4 {
                return size_error("a RST_STREAM frame not 4 bytes long");
            }
            Frame::Reset {
                stream,
                reason: Reason(u32_at(&payload, 0)),
            }
        }
        SETTINGS => {
            on_connection("a SETTINGS frame on a stream")?;
            if flags & ACK != 0 {
                if !payload.is_empty() {
                    return size_error("a SETTINGS acknowledgement with a payload");
                }
                Frame::SettingsAck
            } else {
                Frame::Settings(parse_settings(&payload)?)
            }
        }
        PUSH_PROMISE => Frame::PushPromise { stream },
        PING => {
            on_connection("a PING frame on a stream")?;
            let payload: [u8; 8] = match payload[..].try_into() {
                Ok(payload) => payload,
                Err(_) => return size_error("a PING frame not 8 bytes long"),
            };
            Frame::Ping {
                ack: flags & ACK != 0,
                payload,
            }
        }
        GOAWAY => {
            on_connection("a GOAWAY frame on a stream")?;
            if payload.len() < 8 {
                return size_error("a GOAWAY frame shorter than 8 bytes");
            }
            Frame::GoAway {
                last_stream: u32_at(&payload, 0) & MAX_WINDOW,
                reason: Reason(u32_at(&payload, 4)),
                debug: payload.slice(8..),
            }
        }
        WINDOW_UPDATE => {
            if payload.len() != 4 {
                return size_error("a WINDOW_UPDATE frame not 4 bytes long");
            }
            let increment = u32_at(&payload, 0) & MAX_WINDOW;
            if increment == 0 {
                return Err(E {
                    reason: Reason::PROTOCOL_ERROR,
                    stream: (stream != 0).then_some(stream),
                    what: "a WINDOW_UPDATE of 0",
                });
            }
            Frame::WindowUpdate { stream, increment }
        }
        CONTINUATION => {
            on_stream("a CONTINUATION frame on stream 0")?;
            Frame::Continuation {
                stream,
                fragment: payload,
                end_headers: flags & END_HEADERS != 0,
            }
        }
        _ => Frame::Unknown,
    })
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The payload of a frame that may be `PADDED`, without its pad length and padding.
fn unpad(flags: u8, mut payload: Bytes) -> Result<Bytes, FrameError> {
    if flags & PADDED == 0 {
        return Ok(payload);
    }
    let Some(&pad) = payload.first() else {
        return Err(FrameError::connection(
            Reason::FRAME_SIZE_ERROR,
            "a padded frame without its pad length",
        ));
    };
    if usize::from(pad) >= payload.len() {
        return Err(FrameError::connection(
            Reason::PROTOCOL_ERROR,
            "a frame's padding is as long as its payload",
        ));
    }
    payload.truncate(payload.len() - usize::from(pad));
    payload.advance(1);
    Ok(payload)
}

fn parse_settings(payload: &[u8]) -> Result<Settings, FrameError> {
    if !payload.len().is_multiple_of(6) {
        return Err(FrameError::connection(
            Reason::FRAME_SIZE_ERROR,
            "a SETTINGS frame whose length is not a multiple of 6",
        ));
    }
    let mut settings = Settings::default();
    for entry in payload.chunks_exact(6) {
        let value = u32_at(entry, 2);
        match u16::from_be_bytes([entry[0], entry[1]]) {
            0x1 => settings.header_table_size = Some(value),
            0x2 => {
                if value > 1 {
                    return Err(FrameError::connection(
                        Reason::PROTOCOL_ERROR,
                        "SETTINGS_ENABLE_PUSH other than 0 or 1",
                    ));
                }
                settings.enable_push = Some(value == 1);
            }
            0x3 => settings.max_concurrent_streams = Some(value),
            0x4 => {
                if value > MAX_WINDOW {
                    return Err(FrameError::connection(
                        Reason::FLOW_CONTROL_ERROR,
                        "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1",
                    ));
                }
                settings.initial_window_size = Some(value);
            }
            0x5 => {
                if !(DEFAULT_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&value) {
                    return Err(FrameError::connection(
                        Reason::PROTOCOL_ERROR,
                        "SETTINGS_MAX_FRAME_SIZE outside 16,384..16,777,215",
                    ));
                }
                settings.max_frame_size = Some(value);
            }
            0x6 => settings.max_header_list_size = Some(value),
            _ => {}
        }
    }
    Ok(settings)
}

mod write;

pub use write::{
    HeaderBlockStart, begin_headers, finish_headers, write_data_head, write_goaway, write_ping,
    write_reset, write_settings, write_settings_ack, write_window_update,
};

#[cfg(test)]
mod tests;

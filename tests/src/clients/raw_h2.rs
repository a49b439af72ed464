//! A hand-built HTTP/2 client, for callers that break the rules on purpose: a "rapid reset" flood
//! (streams opened and cancelled at once, faster than the server takes them up) is nothing a
//! client library would send. It writes frames byte by byte and reads the server's frames back.
//!
//! Header blocks use only HPACK's static table and literals without indexing, so they need no
//! encoder state: the same bytes are valid for every stream. The HPACK pieces below build the
//! blocks that do use the dynamic table ([`hpack_indexed_literal`]), for attacks on the decoder.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

/// Flags: `END_STREAM` (`DATA`, `HEADERS`) and `ACK` (`SETTINGS`, `PING`) share a bit.
pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

/// `SETTINGS_INITIAL_WINDOW_SIZE`.
pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
/// The largest flow-control window HTTP/2 allows (2^31-1).
pub const MAX_WINDOW: u32 = 0x7fff_ffff;

/// Error codes (RFC 9113, section 7).
pub const PROTOCOL_ERROR: u32 = 0x1;
pub const FLOW_CONTROL_ERROR: u32 = 0x3;
pub const STREAM_CLOSED: u32 = 0x5;
/// `RST_STREAM` code for a stream the client no longer wants.
pub const CANCEL: u32 = 0x8;
/// `GOAWAY` code of a server that finds the client abusive.
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

/// One frame as it travels.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

/// The bytes of one frame.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("a test frame is small");
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// `HEADERS` for `GET http://<authority>/` on `stream`, ending the stream (no body).
pub fn get(stream: u32, authority: &str) -> Vec<u8> {
    frame(
        HEADERS,
        END_STREAM | END_HEADERS,
        stream,
        &get_block(authority),
    )
}

/// The header block of [`get`]: `:method GET` (static 2), `:scheme http` (static 6), `:path /`
/// (static 4), then `:authority` as a literal without indexing whose name is static entry 1.
pub fn get_block(authority: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x84, 0x01];
    let len = u8::try_from(authority.len()).expect("a short authority");
    assert!(len < 0x7f, "the length must fit HPACK's 7-bit prefix");
    block.push(len);
    block.extend_from_slice(authority.as_bytes());
    block
}

/// An HPACK integer (RFC 7541, section 5.1): `value` in a `prefix`-bit prefix of a first byte
/// that carries `flags` in its other bits, continued in 7-bit groups when it does not fit.
pub fn hpack_integer(flags: u8, prefix: u8, value: usize) -> Vec<u8> {
    let max = (1usize << prefix) - 1;
    if value < max {
        return vec![flags | value as u8];
    }
    let mut out = vec![flags | max as u8];
    let mut rest = value - max;
    while rest >= 0x80 {
        out.push(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    out.push(rest as u8);
    out
}

/// A string literal without Huffman coding: its length, then its bytes.
pub fn hpack_string(text: &[u8]) -> Vec<u8> {
    let mut out = hpack_integer(0x00, 7, text.len());
    out.extend_from_slice(text);
    out
}

/// A header field `name: value` as a literal with incremental indexing and a new name: the
/// decoder adds it to its dynamic table, where [`hpack_indexed`] refers to it.
pub fn hpack_indexed_literal(name: &str, value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x40];
    out.extend(hpack_string(name.as_bytes()));
    out.extend(hpack_string(value));
    out
}

/// A header field by its index in the tables: 1–61 static, 62 the newest dynamic entry.
pub fn hpack_indexed(index: usize) -> Vec<u8> {
    hpack_integer(0x80, 7, index)
}

/// [`get`] with one more header, `name: value` (a literal without indexing, with a new name).
pub fn get_with_header(stream: u32, authority: &str, name: &str, value: &str) -> Vec<u8> {
    let mut block = get_block(authority);
    block.push(0x00);
    block.extend(hpack_string(name.as_bytes()));
    block.extend(hpack_string(value.as_bytes()));
    frame(HEADERS, END_STREAM | END_HEADERS, stream, &block)
}

/// `HEADERS` for `GET http://<authority><path>` on `stream`, ending the stream (no body).
pub fn get_path(stream: u32, authority: &str, path: &str) -> Vec<u8> {
    // As [`get`], with `:path` a literal without indexing whose name is static entry 4.
    let mut block = vec![0x82, 0x86, 0x04];
    block.push(u8::try_from(path.len()).expect("a short path"));
    assert!(
        path.len() < 0x7f,
        "the length must fit HPACK's 7-bit prefix"
    );
    block.extend_from_slice(path.as_bytes());
    block.push(0x01);
    let len = u8::try_from(authority.len()).expect("a short authority");
    assert!(len < 0x7f, "the length must fit HPACK's 7-bit prefix");
    block.push(len);
    block.extend_from_slice(authority.as_bytes());
    frame(HEADERS, END_STREAM | END_HEADERS, stream, &block)
}

/// The client's `SETTINGS` with `SETTINGS_INITIAL_WINDOW_SIZE` = `window`: with 0, the server
/// may send no `DATA` on any stream until the client opens its window, which it may never do.
pub fn settings_initial_window(window: u32) -> Vec<u8> {
    settings(&[(INITIAL_WINDOW_SIZE, window)])
}

/// A `SETTINGS` frame carrying these (identifier, value) pairs.
pub fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
    let payload: Vec<u8> = pairs
        .iter()
        .flat_map(|(id, value)| [&id.to_be_bytes()[..], &value.to_be_bytes()[..]].concat())
        .collect();
    frame(SETTINGS, 0, 0, &payload)
}

/// A `PING` (not an acknowledgement) carrying `payload`.
pub fn ping(payload: u64) -> Vec<u8> {
    frame(PING, 0, 0, &payload.to_be_bytes())
}

/// A `WINDOW_UPDATE` adding `increment` to `stream`'s window (0: the connection's).
pub fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

/// `HEADERS` for `POST http://<authority>/` on `stream`, leaving the stream open for a body.
pub fn post(stream: u32, authority: &str) -> Vec<u8> {
    let mut out = get(stream, authority);
    // :method POST is static entry 3 (GET is 2); no END_STREAM: a body follows.
    out[9] = 0x83;
    out[4] = END_HEADERS;
    out
}

/// A `DATA` frame on `stream`, ending it.
pub fn last_data(stream: u32, payload: &[u8]) -> Vec<u8> {
    frame(DATA, END_STREAM, stream, payload)
}

pub fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &code.to_be_bytes())
}

/// The connection preface, empty `SETTINGS`, then `count` streams (1, 3, 5, …) each opened and
/// at once cancelled, then one more `GET` that the server answers if it still serves the
/// connection. Returns the bytes (to send in one write) and that last stream's id.
pub fn rapid_reset_then_get(count: u32, authority: &str) -> (Vec<u8>, u32) {
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    for i in 0..count {
        let stream = 2 * i + 1;
        out.extend(get(stream, authority));
        out.extend(rst_stream(stream, CANCEL));
    }
    let last = 2 * count + 1;
    out.extend(get(last, authority));
    (out, last)
}

/// Reads one frame; `None` when the server closed the connection.
pub async fn read_frame<R: AsyncRead + Unpin>(io: &mut R) -> std::io::Result<Option<Frame>> {
    let mut head = [0u8; 9];
    match io.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; len];
    io.read_exact(&mut payload).await?;
    Ok(Some(Frame {
        kind: head[3],
        flags: head[4],
        stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
        payload,
    }))
}

/// How the server ended the exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// `GOAWAY` with this error code.
    GoAway { code: u32, last_stream: u32 },
    /// Response headers with this status on the stream the test waited for: the connection
    /// still serves.
    Answered { status: u16 },
    /// `RST_STREAM` with this error code on the stream the test waited for.
    Reset { code: u32 },
    /// The connection closed (or broke) without any of these.
    Closed(String),
}

/// Reads the server's frames until `GOAWAY`, response headers or `RST_STREAM` on `stream`, the
/// end of the connection, or `deadline` (which panics). The server's `SETTINGS` are not
/// acknowledged: a write after the server's `GOAWAY` could reset the connection before the test
/// reads it.
pub async fn ending<R: AsyncRead + Unpin>(io: &mut R, stream: u32, deadline: Duration) -> Ending {
    let read = async {
        loop {
            let frame = match read_frame(io).await {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ending::Closed("closed without GOAWAY".to_owned()),
                Err(e) => return Ending::Closed(e.to_string()),
            };
            match frame.kind {
                GOAWAY if frame.payload.len() >= 8 => {
                    let p = &frame.payload;
                    return Ending::GoAway {
                        last_stream: u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff,
                        code: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
                    };
                }
                HEADERS if frame.stream == stream => {
                    return Ending::Answered {
                        status: status(&frame.payload),
                    };
                }
                RST_STREAM if frame.stream == stream && frame.payload.len() == 4 => {
                    let p = &frame.payload;
                    return Ending::Reset {
                        code: u32::from_be_bytes([p[0], p[1], p[2], p[3]]),
                    };
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(deadline, read)
        .await
        .unwrap_or_else(|_| {
            panic!("no GOAWAY, nor an answer or a reset on stream {stream} in {deadline:?}")
        })
}

/// The `:status` of a response header block (its first field, as RFC 9113 requires), as an h2
/// server encodes it: a static table entry (200, 204, 206, 304, 400, 404, 500), or a literal
/// whose name is static entry 8 and whose value is plain or Huffman-coded digits.
fn status(block: &[u8]) -> u16 {
    let text = match block {
        [index @ 0x88..=0x8e, ..] => {
            return [200, 204, 206, 304, 400, 404, 500][usize::from(index - 0x88)];
        }
        // A literal with incremental indexing, without indexing or never indexed; name index 8.
        [0x48 | 0x08 | 0x18, len, rest @ ..] if usize::from(len & 0x7f) <= rest.len() => {
            let value = &rest[..usize::from(len & 0x7f)];
            if len & 0x80 == 0 {
                Some(String::from_utf8_lossy(value).into_owned())
            } else {
                huffman_digits(value)
            }
        }
        _ => None,
    };
    text.and_then(|text| text.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the :status of the header block {block:02x?}"))
}

/// Decodes Huffman-coded decimal digits (RFC 7541, appendix B: `0`–`2` are the 5-bit codes 0–2,
/// `3`–`9` the 6-bit codes 0x19–0x1f), `None` for anything else.
fn huffman_digits(bytes: &[u8]) -> Option<String> {
    let bits: Vec<u8> = bytes
        .iter()
        .flat_map(|byte| (0..8).rev().map(move |i| (byte >> i) & 1))
        .collect();
    let code = |at: usize, len: usize| {
        bits.get(at..at + len)
            .map(|b| b.iter().fold(0u8, |acc, bit| (acc << 1) | bit))
    };
    let (mut at, mut digits) = (0, String::new());
    loop {
        match (code(at, 5), code(at, 6)) {
            (Some(five @ 0..=2), _) => {
                digits.push(char::from(b'0' + five));
                at += 5;
            }
            (_, Some(six @ 0x19..=0x1f)) => {
                digits.push(char::from(b'3' + six - 0x19));
                at += 6;
            }
            // The rest must be padding: fewer than 8 bits, all ones (a prefix of EOS).
            _ => break,
        }
    }
    let padding = &bits[at..];
    (padding.len() < 8 && padding.iter().all(|&bit| bit == 1)).then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_status_from_the_static_table_and_from_huffman_coded_digits() {
        assert_eq!(status(&[0x88]), 200);
        assert_eq!(status(&[0x8d]), 404);
        // 431 as h2 encodes it: name index 8, value Huffman-coded.
        assert_eq!(status(&[0x48, 0x83, 0x69, 0x90, 0xff]), 431);
        assert_eq!(status(&[0x08, 0x03, b'5', b'0', b'3']), 503);
    }

    #[test]
    fn encodes_hpack_integers_that_overflow_their_prefix() {
        // RFC 7541, C.1.2: 1337 in a 5-bit prefix.
        assert_eq!(hpack_integer(0x00, 5, 1337), [0x1f, 0x9a, 0x0a]);
        assert_eq!(hpack_integer(0x80, 7, 62), [0xbe]);
    }
}

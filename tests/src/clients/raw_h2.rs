//! A hand-built HTTP/2 client, for callers that break the rules on purpose: a "rapid reset" flood
//! (streams opened and cancelled at once, faster than the server takes them up) is nothing a
//! client library would send. It writes frames byte by byte and reads the server's frames back.
//!
//! Header blocks use only HPACK's static table and literals without indexing, so they need no
//! encoder state: the same bytes are valid for every stream.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const GOAWAY: u8 = 0x7;

const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

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
    // :method GET (static 2), :scheme http (static 6), :path / (static 4), then :authority as a
    // literal without indexing whose name is static entry 1.
    let mut block = vec![0x82, 0x86, 0x84, 0x01];
    let len = u8::try_from(authority.len()).expect("a short authority");
    assert!(len < 0x7f, "the length must fit HPACK's 7-bit prefix");
    block.push(len);
    block.extend_from_slice(authority.as_bytes());
    frame(HEADERS, END_STREAM | END_HEADERS, stream, &block)
}

/// [`get`] with one more header, `name: value` (a literal without indexing, with a new name).
pub fn get_with_header(stream: u32, authority: &str, name: &str, value: &str) -> Vec<u8> {
    let mut out = get(stream, authority);
    let mut literal = vec![0x00];
    for text in [name, value] {
        let len = u8::try_from(text.len()).expect("a short header");
        assert!(len < 0x7f, "the length must fit HPACK's 7-bit prefix");
        literal.push(len);
        literal.extend_from_slice(text.as_bytes());
    }
    let len = u32::from_be_bytes([0, out[0], out[1], out[2]]) + literal.len() as u32;
    out[..3].copy_from_slice(&len.to_be_bytes()[1..]);
    out.extend(literal);
    out
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
    let mut payload = vec![0x00, 0x04];
    payload.extend_from_slice(&window.to_be_bytes());
    frame(SETTINGS, 0, 0, &payload)
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
    /// Response headers on the stream the test waited for: the connection still serves.
    Answered,
    /// The connection closed (or broke) without either.
    Closed(String),
}

/// Reads the server's frames until `GOAWAY`, response headers on `stream`, the end of the
/// connection, or `deadline` (which panics). The server's `SETTINGS` are not acknowledged: a
/// write after the server's `GOAWAY` could reset the connection before the test reads it.
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
                HEADERS if frame.stream == stream => return Ending::Answered,
                _ => {}
            }
        }
    };
    tokio::time::timeout(deadline, read)
        .await
        .unwrap_or_else(|_| {
            panic!("neither GOAWAY nor an answer on stream {stream} in {deadline:?}")
        })
}

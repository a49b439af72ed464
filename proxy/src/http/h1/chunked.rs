//! The chunked transfer coding (RFC 9112 7.1), read incrementally from a connection's buffer.
//!
//! Strict, because chunk framing read differently by two hops is a smuggling vector: a chunk
//! size is 1 to 16 hex digits and nothing else (no sign, no `0x`, no whitespace before it),
//! every line ends in CRLF, and a chunk extension (which weft ignores) is bounded.

use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;

use crate::http::h1::H1Error;
use crate::http::h1::head::MAX_HEADERS;

/// The longest chunk extension accepted on one chunk line.
pub const MAX_CHUNK_EXTENSION: usize = 4096;
/// The largest trailer section accepted.
pub const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// What the decoder read next.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    /// Body data, taken from the buffer without a copy.
    Data(Bytes),
    /// The trailer section; the body is over.
    Trailers(HeaderMap),
    /// The last chunk with no trailers; the body is over.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In the chunk size: its value and digits so far.
    Size {
        value: u64,
        digits: u8,
    },
    /// After the size: whitespace before a `;` (BWS).
    SizeSpace,
    /// In a chunk extension: its length so far.
    Extension {
        length: usize,
    },
    /// The LF of the chunk line.
    SizeLf,
    /// Chunk data still to come.
    Data {
        left: u64,
    },
    /// The CR after chunk data.
    DataCr,
    /// The LF after chunk data.
    DataLf,
    /// After the last chunk: the trailer section.
    Trailers,
    Done,
}

/// Decodes one chunked body. Feed it the connection's buffer as bytes arrive.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// The size of the chunk whose line is being read.
    size: u64,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        Self {
            state: State::Size {
                value: 0,
                digits: 0,
            },
            size: 0,
        }
    }

    /// Whether the body has been read to its end.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Reads what `buf` holds of the body, consuming it: the next data, the end, or `None` when
    /// more bytes are needed. Bytes after the body's end stay in `buf` (the next message).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Chunk>, H1Error> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Data { left } => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let left = left - take as u64;
                    self.state = match left {
                        0 => State::DataCr,
                        _ => State::Data { left },
                    };
                    return Ok(Some(Chunk::Data(super::buffers::hand_on(buf, take))));
                }
                State::Trailers => return self.trailers(buf),
                _ => {
                    let Some(&byte) = buf.first() else {
                        return Ok(None);
                    };
                    buf.advance(1);
                    self.line_byte(byte)?;
                }
            }
        }
    }

    /// One byte of a chunk line or of the CRLF after chunk data.
    fn line_byte(&mut self, byte: u8) -> Result<(), H1Error> {
        self.state = match (self.state, byte) {
            (State::Size { value, digits }, _) if byte.is_ascii_hexdigit() => {
                if digits == 16 {
                    return Err(H1Error::InvalidChunk);
                }
                let digit = (byte as char).to_digit(16).unwrap_or_default();
                State::Size {
                    value: value << 4 | u64::from(digit),
                    digits: digits + 1,
                }
            }
            (State::Size { digits: 0, .. }, _) => return Err(H1Error::InvalidChunk),
            (State::Size { value, .. }, b'\r') => {
                self.size = value;
                State::SizeLf
            }
            (State::Size { value, .. }, b' ' | b'\t') => {
                self.size = value;
                State::SizeSpace
            }
            (State::Size { value, .. }, b';') => {
                self.size = value;
                State::Extension { length: 0 }
            }
            (State::SizeSpace, b' ' | b'\t') => State::SizeSpace,
            (State::SizeSpace, b';') => State::Extension { length: 0 },
            (State::Extension { .. }, b'\r') => State::SizeLf,
            (State::Extension { length }, _) => {
                if length >= MAX_CHUNK_EXTENSION {
                    return Err(H1Error::ChunkExtensionTooLong);
                }
                if byte == b'\n' || (byte < 0x20 && byte != b'\t') || byte == 0x7f {
                    return Err(H1Error::InvalidChunk);
                }
                State::Extension { length: length + 1 }
            }
            (State::SizeLf, b'\n') => match self.size {
                0 => State::Trailers,
                left => State::Data { left },
            },
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => State::Size {
                value: 0,
                digits: 0,
            },
            _ => return Err(H1Error::InvalidChunk),
        };
        Ok(())
    }

    /// The trailer section: an empty line alone, or header fields and an empty line.
    fn trailers(&mut self, buf: &mut BytesMut) -> Result<Option<Chunk>, H1Error> {
        if buf.len() < 2 {
            return Ok(None);
        }
        if buf.starts_with(b"\r\n") {
            buf.advance(2);
            self.state = State::Done;
            return Ok(Some(Chunk::End));
        }
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match httparse::parse_headers(buf, &mut fields) {
            Ok(httparse::Status::Complete((len, parsed))) => {
                if len > MAX_TRAILER_BYTES {
                    return Err(H1Error::InvalidTrailers);
                }
                let mut trailers = HeaderMap::with_capacity(parsed.len());
                for field in parsed {
                    let name = http::HeaderName::from_bytes(field.name.as_bytes());
                    let value = http::HeaderValue::from_bytes(field.value);
                    let (Ok(name), Ok(value)) = (name, value) else {
                        return Err(H1Error::InvalidTrailers);
                    };
                    trailers.append(name, value);
                }
                buf.advance(len);
                self.state = State::Done;
                Ok(Some(Chunk::Trailers(trailers)))
            }
            Ok(httparse::Status::Partial) if buf.len() <= MAX_TRAILER_BYTES => Ok(None),
            _ => Err(H1Error::InvalidTrailers),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The data, the trailers, and what is left after the body.
    type Decoded = (Vec<u8>, Option<HeaderMap>, Vec<u8>);

    /// Decodes `input` fed `step` bytes at a time: the data, the trailers, what is left.
    fn decode(input: &[u8], step: usize) -> Result<Decoded, H1Error> {
        let mut decoder = ChunkedDecoder::new();
        let mut buf = BytesMut::new();
        let mut data = Vec::new();
        let mut trailers = None;
        let mut fed = 0;
        while !decoder.is_done() {
            match decoder.decode(&mut buf)? {
                Some(Chunk::Data(bytes)) => data.extend_from_slice(&bytes),
                Some(Chunk::Trailers(map)) => trailers = Some(map),
                Some(Chunk::End) => {}
                None if fed < input.len() => {
                    let end = (fed + step).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
                None => return Err(H1Error::Truncated),
            }
        }
        let mut rest = buf.to_vec();
        rest.extend_from_slice(&input[fed..]);
        Ok((data, trailers, rest))
    }

    #[test]
    fn chunks_trailers_and_what_follows_whatever_the_split() {
        let input = b"5\r\nhello\r\n1;name=\"v\"\r\n!\r\nA \t;x\r\n0123456789\r\n0\r\nGrpc-Status: 0\r\nX: y\r\n\r\nGET /";
        for step in [1, 2, 3, 7, input.len()] {
            let (data, trailers, rest) = decode(input, step).unwrap();
            assert_eq!(data, b"hello!0123456789", "step {step}");
            let trailers = trailers.unwrap();
            assert_eq!(trailers["grpc-status"], "0");
            assert_eq!(trailers["x"], "y");
            assert_eq!(rest, b"GET /");
        }
        let (data, trailers, rest) = decode(b"0\r\n\r\n", 1).unwrap();
        assert!(data.is_empty() && trailers.is_none() && rest.is_empty());
    }

    #[test]
    fn invalid_framing_is_refused() {
        let cases: [(&[u8], H1Error); 10] = [
            (b"-1\r\n", H1Error::InvalidChunk),
            (b"0x10\r\n", H1Error::InvalidChunk),
            (b"zz\r\n", H1Error::InvalidChunk),
            (b" 5\r\nhello\r\n0\r\n\r\n", H1Error::InvalidChunk),
            (b"11111111111111111\r\n", H1Error::InvalidChunk),
            (b"5\nhello\r\n0\r\n\r\n", H1Error::InvalidChunk),
            (b"5\r\nhelloXY0\r\n\r\n", H1Error::InvalidChunk),
            (b"5\r\nhello\n0\r\n\r\n", H1Error::InvalidChunk),
            (b"5 5\r\nhello\r\n0\r\n\r\n", H1Error::InvalidChunk),
            (b"0\r\nX: a\r\n b\r\n\r\n", H1Error::InvalidTrailers),
        ];
        for (input, error) in cases {
            assert_eq!(decode(input, 1).map(|_| ()), Err(error), "{input:?}");
        }
        let mut long = b"1;".to_vec();
        long.resize(3 + MAX_CHUNK_EXTENSION, b'a');
        long.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
        assert_eq!(
            decode(&long, 64).map(|_| ()),
            Err(H1Error::ChunkExtensionTooLong)
        );
        assert_eq!(decode(b"5\r\nhel", 1).map(|_| ()), Err(H1Error::Truncated));
    }

    #[test]
    fn the_largest_size_is_sixteen_digits() {
        let mut decoder = ChunkedDecoder::new();
        let mut buf = BytesMut::from(&b"ffffffffffffffff\r\nab"[..]);
        assert_eq!(
            decoder.decode(&mut buf).unwrap(),
            Some(Chunk::Data(Bytes::from_static(b"ab")))
        );
    }
}

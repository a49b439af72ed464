//! Heads and chunks written for the other side, into a buffer the caller sends.
//!
//! A head is written from the header map it arrived with, less the fields that frame the body
//! (`Content-Length`, `Transfer-Encoding`): the encoder writes those itself from the [`Framing`]
//! the sender chose, so a message's length is stated exactly once, by weft. A message without a
//! body keeps the map's `Content-Length`: the answer to a `HEAD`, or a `304`, states the length
//! of the body it stands for.

use bytes::{BufMut, BytesMut};
use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, Method, StatusCode, Uri, Version};

use crate::http::h1::Framing;

/// Writes a request head: `uri` in origin form (authority form for `CONNECT`), its authority
/// in `Host` when the headers have none.
pub fn encode_request_head(
    method: &Method,
    uri: &Uri,
    version: Version,
    headers: &HeaderMap,
    framing: Framing,
    dst: &mut BytesMut,
) {
    dst.reserve(256);
    dst.put_slice(method.as_str().as_bytes());
    dst.put_u8(b' ');
    match (uri.path_and_query(), uri.authority()) {
        (_, Some(authority)) if method == Method::CONNECT => {
            dst.put_slice(authority.as_str().as_bytes())
        }
        (Some(path), _) => {
            // `http://x?q=1` has an empty path: the origin form still starts with `/`.
            if path.as_str().starts_with('?') {
                dst.put_u8(b'/');
            }
            dst.put_slice(path.as_str().as_bytes());
        }
        (None, _) => dst.put_u8(b'/'),
    }
    dst.put_slice(match version {
        Version::HTTP_10 => b" HTTP/1.0\r\n",
        _ => b" HTTP/1.1\r\n",
    });
    // HTTP/1.1 needs `Host`: a request that arrived as HTTP/2 has its authority in the URI.
    if let (false, Some(authority)) = (headers.contains_key(HOST), uri.authority()) {
        dst.put_slice(b"host: ");
        dst.put_slice(authority.as_str().as_bytes());
        dst.put_slice(b"\r\n");
    }
    fields(headers, framing, dst);
}

/// Writes a response head.
pub fn encode_response_head(
    status: StatusCode,
    version: Version,
    headers: &HeaderMap,
    framing: Framing,
    dst: &mut BytesMut,
) {
    dst.reserve(256);
    dst.put_slice(match version {
        Version::HTTP_10 => b"HTTP/1.0 ",
        _ => b"HTTP/1.1 ",
    });
    dst.put_slice(status.as_str().as_bytes());
    dst.put_u8(b' ');
    dst.put_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    dst.put_slice(b"\r\n");
    fields(headers, framing, dst);
}

fn fields(headers: &HeaderMap, framing: Framing, dst: &mut BytesMut) {
    let keep_length = matches!(framing, Framing::Empty);
    for (name, value) in headers {
        if name == TRANSFER_ENCODING || (name == CONTENT_LENGTH && !keep_length) {
            continue;
        }
        dst.put_slice(name.as_str().as_bytes());
        dst.put_slice(b": ");
        dst.put_slice(value.as_bytes());
        dst.put_slice(b"\r\n");
    }
    match framing {
        Framing::Length(length) => {
            dst.put_slice(b"content-length: ");
            put_decimal(length, dst);
            dst.put_slice(b"\r\n");
        }
        Framing::Chunked => dst.put_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Empty | Framing::CloseDelimited => {}
    }
    dst.put_slice(b"\r\n");
}

/// The line before `length` bytes of chunk data.
pub fn encode_chunk_size(length: usize, dst: &mut BytesMut) {
    dst.put_slice(format!("{length:x}\r\n").as_bytes());
}

/// One chunk of data, copied.
pub fn encode_chunk(data: &[u8], dst: &mut BytesMut) {
    if data.is_empty() {
        return;
    }
    encode_chunk_size(data.len(), dst);
    dst.put_slice(data);
    dst.put_slice(b"\r\n");
}

/// The last chunk and the trailers.
pub fn encode_last_chunk(trailers: Option<&HeaderMap>, dst: &mut BytesMut) {
    dst.put_slice(b"0\r\n");
    for (name, value) in trailers.into_iter().flatten() {
        dst.put_slice(name.as_str().as_bytes());
        dst.put_slice(b": ");
        dst.put_slice(value.as_bytes());
        dst.put_slice(b"\r\n");
    }
    dst.put_slice(b"\r\n");
}

fn put_decimal(mut n: u64, dst: &mut BytesMut) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    dst.put_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::h1::{Chunk, ChunkedDecoder, parse_request, parse_response};

    #[test]
    fn a_request_head_reads_back_with_the_framing_weft_chose() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "example".parse().unwrap());
        headers.insert("content-length", "999".parse().unwrap());
        headers.append("x-a", "1".parse().unwrap());
        headers.append("x-a", "2".parse().unwrap());
        let uri: Uri = "http://example/p?q=1".parse().unwrap();
        let mut dst = BytesMut::new();
        encode_request_head(
            &Method::POST,
            &uri,
            Version::HTTP_11,
            &headers,
            Framing::Chunked,
            &mut dst,
        );
        assert_eq!(
            &dst[..],
            b"POST /p?q=1 HTTP/1.1\r\nhost: example\r\nx-a: 1\r\nx-a: 2\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        let (head, _) = parse_request(&dst).unwrap().unwrap();
        assert_eq!(head.framing, Framing::Chunked);
    }

    #[test]
    fn an_absolute_target_without_a_path_is_written_from_the_root() {
        let headers = HeaderMap::new();
        let uri: Uri = "http://x?q=1".parse().unwrap();
        let mut dst = BytesMut::new();
        encode_request_head(
            &Method::GET,
            &uri,
            Version::HTTP_11,
            &headers,
            Framing::Empty,
            &mut dst,
        );
        assert_eq!(&dst[..], b"GET /?q=1 HTTP/1.1\r\nhost: x\r\n\r\n");
    }

    #[test]
    fn a_response_head_states_its_length_once() {
        let mut headers = HeaderMap::new();
        headers.insert("transfer-encoding", "chunked".parse().unwrap());
        let mut dst = BytesMut::new();
        encode_response_head(
            StatusCode::NOT_FOUND,
            Version::HTTP_11,
            &headers,
            Framing::Length(12345),
            &mut dst,
        );
        assert_eq!(
            &dst[..],
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 12345\r\n\r\n"
        );
        let (head, _) = parse_response(&dst, &Method::GET).unwrap().unwrap();
        assert_eq!(head.framing, Framing::Length(12345));

        // The answer to a HEAD keeps the length of the body it stands for.
        headers.insert("content-length", "7".parse().unwrap());
        let mut dst = BytesMut::new();
        encode_response_head(
            StatusCode::OK,
            Version::HTTP_11,
            &headers,
            Framing::Empty,
            &mut dst,
        );
        assert_eq!(&dst[..], b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n");
    }

    #[test]
    fn chunks_round_trip() {
        let mut dst = BytesMut::new();
        encode_chunk(b"hello", &mut dst);
        encode_chunk(b"", &mut dst);
        encode_chunk(&[7u8; 300], &mut dst);
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        encode_last_chunk(Some(&trailers), &mut dst);
        let mut decoder = ChunkedDecoder::new();
        let mut data = Vec::new();
        let mut seen = None;
        while let Some(chunk) = decoder.decode(&mut dst).unwrap() {
            match chunk {
                Chunk::Data(bytes) => data.extend_from_slice(&bytes),
                Chunk::Trailers(map) => seen = Some(map),
                Chunk::End => {}
            }
        }
        assert_eq!(data.len(), 305);
        assert_eq!(seen.unwrap(), trailers);
        assert!(dst.is_empty());
    }
}

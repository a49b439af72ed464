//! Request and response heads: parsed by `httparse`, then checked for what decides where the
//! message ends (RFC 9112 6), the one thing a proxy and the app behind it must never read
//! differently.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, EXPECT, HOST, TRANSFER_ENCODING};
use http::uri::{Authority, Scheme};
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version,
};

use crate::http::h1::{H1Error, packed};
use crate::http::spare_headers;

/// Heads larger than this are refused (431 for a request).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Header fields a head may have (431 for a request beyond it).
pub const MAX_HEADERS: usize = 128;

/// Where a message's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// `Content-Length` bytes (more than zero).
    Length(u64),
    /// The chunked transfer coding, up to its last chunk and trailers.
    Chunked,
    /// Up to the end of the connection (a response with neither length nor coding).
    CloseDelimited,
}

/// A request head, checked.
#[derive(Debug)]
pub struct RequestHead {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    pub framing: Framing,
    /// Whether the connection may carry another request after this one.
    pub keep_alive: bool,
    /// `Expect: 100-continue`: the client waits for a `100 Continue` before its body.
    pub expect_continue: bool,
    /// `Connection: upgrade` with an `Upgrade` header.
    pub upgrade: bool,
    /// The `Host` value, sharing the head's bytes.
    pub host: Option<Bytes>,
}

/// A response head, checked.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub framing: Framing,
    /// Whether the connection may carry another request after this response.
    pub keep_alive: bool,
}

impl RequestHead {
    /// The request, with its target in absolute form (`http://` and the `Host` value) when it
    /// came in origin form: the authority shares the head's bytes, so the request that travels
    /// between proxies, and the copies of its URI kept for retries, need no copy of their own.
    /// An app's HTTP/1 connection is still written the origin form
    /// ([`super::encode::encode_request_head`]).
    pub fn into_request<B>(self, body: B) -> Request<B> {
        let uri = match self.host {
            Some(host) if self.uri.authority().is_none() && self.uri.path().starts_with('/') => {
                absolute(self.uri, host)
            }
            _ => self.uri,
        };
        let mut request = Request::new(body);
        *request.method_mut() = self.method;
        *request.uri_mut() = uri;
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers;
        request
    }
}

impl ResponseHead {
    pub fn into_response<B>(self, body: B) -> Response<B> {
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        *response.version_mut() = self.version;
        *response.headers_mut() = self.headers;
        response
    }
}

/// `http://host` and `uri`'s path, or `uri` as it is if `host` is not a valid authority (the
/// proxy refuses it later, saying why).
fn absolute(uri: Uri, host: Bytes) -> Uri {
    let Ok(authority) = Authority::from_maybe_shared(host) else {
        return uri;
    };
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(authority);
    parts.path_and_query = uri.path_and_query().cloned();
    Uri::from_parts(parts).unwrap_or(uri)
}

/// Reads the request head at the start of `buf`, taking its bytes out of it: `None` while it is
/// incomplete (the caller refuses a head still incomplete at [`MAX_HEAD_BYTES`]). The target and
/// the header values share the head's bytes rather than copying them, and those bytes are not
/// the buffer's.
pub fn read_request(buf: &mut BytesMut) -> Result<Option<RequestHead>, H1Error> {
    // Left uninitialised: zeroing 128 fields on every request cost more than parsing them.
    let mut fields = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    let config = httparse::ParserConfig::default();
    let len = match config.parse_request_with_uninit_headers(&mut parsed, buf, &mut fields) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(syntax_error(buf, e)),
    };
    let version = version(parsed.version);
    let method = Method::from_bytes(parsed.method.unwrap_or_default().as_bytes())
        .map_err(|_| H1Error::MalformedHead)?;
    let target = span(buf, parsed.path.unwrap_or_default().as_bytes());
    let mut spans = [FieldSpan::default(); MAX_HEADERS];
    let count = field_spans(buf, parsed.headers, &mut spans);
    let head = take_head(buf, len);
    let uri = Uri::from_maybe_shared(head.slice(target)).map_err(|_| H1Error::MalformedHead)?;
    let fields = Fields::read(&head, &spans[..count])?;
    if version == Version::HTTP_11 && fields.hosts != 1 {
        return Err(H1Error::InvalidHost);
    }
    let framing = match (&fields.transfer_encoding, fields.content_length) {
        (Some(_), Some(_)) => return Err(H1Error::ContentLengthWithTransferEncoding),
        (Some(_), None) if version == Version::HTTP_10 => {
            return Err(H1Error::UnsupportedTransferEncoding);
        }
        (Some(coding), None) => chunked_only(coding)?,
        (None, Some(0)) | (None, None) => Framing::Empty,
        (None, Some(n)) => Framing::Length(n),
    };
    Ok(Some(RequestHead {
        keep_alive: fields.keep_alive(version),
        expect_continue: fields.expect_continue,
        upgrade: fields.connection_upgrade && fields.headers.contains_key(http::header::UPGRADE),
        host: fields.host,
        method,
        uri,
        version,
        headers: fields.headers,
        framing,
    }))
}

/// Reads the response head at the start of `buf`, the answer to a `request_method` request,
/// taking its bytes out of it: `None` while it is incomplete. Interim (1xx) heads are returned
/// like any other; the caller reads on for the final one.
pub fn read_response(
    buf: &mut BytesMut,
    request_method: &Method,
) -> Result<Option<ResponseHead>, H1Error> {
    let mut fields = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let config = httparse::ParserConfig::default();
    let len = match config.parse_response_with_uninit_headers(&mut parsed, buf, &mut fields) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(syntax_error(buf, e)),
    };
    let version = version(parsed.version);
    let status = StatusCode::from_u16(parsed.code.unwrap_or_default())
        .map_err(|_| H1Error::MalformedHead)?;
    let mut spans = [FieldSpan::default(); MAX_HEADERS];
    let count = field_spans(buf, parsed.headers, &mut spans);
    let head = take_head(buf, len);
    let fields = Fields::read(&head, &spans[..count])?;
    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || request_method == Method::HEAD;
    let framing = match (&fields.transfer_encoding, fields.content_length) {
        // Checked even where no body follows: an app that sends both is not to be trusted.
        (Some(_), Some(_)) => return Err(H1Error::ContentLengthWithTransferEncoding),
        _ if bodiless => Framing::Empty,
        (Some(coding), None) => chunked_only(coding)?,
        (None, Some(0)) => Framing::Empty,
        (None, Some(n)) => Framing::Length(n),
        (None, None) => Framing::CloseDelimited,
    };
    Ok(Some(ResponseHead {
        status,
        version,
        keep_alive: fields.keep_alive(version) && framing != Framing::CloseDelimited,
        headers: fields.headers,
        framing,
    }))
}

/// The head's `len` bytes, taken out of `buf` and copied where they do not keep the buffer
/// allocated ([`packed`]).
fn take_head(buf: &mut BytesMut, len: usize) -> Bytes {
    let head = packed::copy(&buf[..len]);
    buf.advance(len);
    head
}

/// [`read_request`] on a slice (copied): the head and its length.
pub fn parse_request(buf: &[u8]) -> Result<Option<(RequestHead, usize)>, H1Error> {
    let mut bytes = BytesMut::from(buf);
    let head = read_request(&mut bytes)?;
    Ok(head.map(|head| (head, buf.len() - bytes.len())))
}

/// [`read_response`] on a slice (copied): the head and its length.
pub fn parse_response(
    buf: &[u8],
    request_method: &Method,
) -> Result<Option<(ResponseHead, usize)>, H1Error> {
    let mut bytes = BytesMut::from(buf);
    let head = read_response(&mut bytes, request_method)?;
    Ok(head.map(|head| (head, buf.len() - bytes.len())))
}

/// Where a header field's name and value lie in the head's bytes (small: an array of them is
/// set up for every head).
#[derive(Debug, Clone, Copy, Default)]
struct FieldSpan {
    name: (u32, u32),
    value: (u32, u32),
}

/// Where `part`, a slice of `buf`, lies in it.
fn span(buf: &[u8], part: &[u8]) -> std::ops::Range<usize> {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    start..start + part.len()
}

fn field_spans(buf: &[u8], parsed: &[httparse::Header<'_>], out: &mut [FieldSpan]) -> usize {
    for (field, out) in parsed.iter().zip(out.iter_mut()) {
        let name = span(buf, field.name.as_bytes());
        let value = span(buf, field.value);
        // Heads are far below 4 GiB: the caller refuses them beyond MAX_HEAD_BYTES.
        *out = FieldSpan {
            name: (name.start as u32, name.end as u32),
            value: (value.start as u32, value.end as u32),
        };
    }
    parsed.len()
}

fn version(minor: Option<u8>) -> Version {
    match minor {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    }
}

/// The reason behind a syntax error: the smuggling vectors get their own.
fn syntax_error(buf: &[u8], error: httparse::Error) -> H1Error {
    if error == httparse::Error::TooManyHeaders {
        return H1Error::HeadTooLarge;
    }
    let head = &buf[..head_end(buf)];
    if head.windows(2).any(|w| w[0] == b'\r' && w[1] != b'\n') {
        return H1Error::BareCr;
    }
    if head
        .windows(2)
        .any(|w| w[0] == b'\n' && (w[1] == b' ' || w[1] == b'\t'))
    {
        return H1Error::ObsFold;
    }
    H1Error::MalformedHead
}

/// Where the head in `buf` ends, or `buf`'s end.
fn head_end(buf: &[u8]) -> usize {
    buf.windows(2)
        .position(|w| w == b"\n\n")
        .or_else(|| buf.windows(4).position(|w| w == b"\r\n\r\n"))
        .map_or(buf.len(), |at| at + 2)
}

/// A `Transfer-Encoding` weft forwards: `chunked` alone.
fn chunked_only(coding: &[u8]) -> Result<Framing, H1Error> {
    let mut codings = coding
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty());
    match (codings.next(), codings.next()) {
        (Some(c), None) if c.eq_ignore_ascii_case(b"chunked") => Ok(Framing::Chunked),
        _ => Err(H1Error::UnsupportedTransferEncoding),
    }
}

/// The header fields of a head, with what framing and connection handling need from them.
struct Fields {
    headers: HeaderMap,
    content_length: Option<u64>,
    /// Every `Transfer-Encoding` line, joined with commas.
    transfer_encoding: Option<Vec<u8>>,
    hosts: usize,
    host: Option<Bytes>,
    connection_close: bool,
    connection_keep_alive: bool,
    connection_upgrade: bool,
    expect_continue: bool,
}

impl Fields {
    fn read(head: &Bytes, spans: &[FieldSpan]) -> Result<Self, H1Error> {
        let mut fields = Fields {
            headers: spare_headers::map(spans.len()),
            content_length: None,
            transfer_encoding: None,
            hosts: 0,
            host: None,
            connection_close: false,
            connection_keep_alive: false,
            connection_upgrade: false,
            expect_continue: false,
        };
        for span in spans {
            let name = &head[span.name.0 as usize..span.name.1 as usize];
            let name = HeaderName::from_bytes(name).map_err(|_| H1Error::MalformedHead)?;
            let value = head.slice(span.value.0 as usize..span.value.1 as usize);
            fields.note(&name, &value)?;
            if name == HOST && fields.host.is_none() {
                fields.host = Some(value.clone());
            }
            let value =
                HeaderValue::from_maybe_shared(value).map_err(|_| H1Error::MalformedHead)?;
            fields.headers.append(name, value);
        }
        Ok(fields)
    }

    fn note(&mut self, name: &HeaderName, value: &[u8]) -> Result<(), H1Error> {
        if name == CONTENT_LENGTH {
            for length in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                let length = decimal(length).ok_or(H1Error::InvalidContentLength)?;
                match self.content_length {
                    Some(seen) if seen != length => return Err(H1Error::InvalidContentLength),
                    _ => self.content_length = Some(length),
                }
            }
        } else if name == TRANSFER_ENCODING {
            let all = self.transfer_encoding.get_or_insert_with(Vec::new);
            if !all.is_empty() {
                all.push(b',');
            }
            all.extend_from_slice(value);
        } else if name == HOST {
            self.hosts += 1;
        } else if name == CONNECTION {
            for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                self.connection_close |= token.eq_ignore_ascii_case(b"close");
                self.connection_keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                self.connection_upgrade |= token.eq_ignore_ascii_case(b"upgrade");
            }
        } else if name == EXPECT {
            self.expect_continue = value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        }
        Ok(())
    }

    fn keep_alive(&self, version: Version) -> bool {
        match version {
            Version::HTTP_10 => self.connection_keep_alive && !self.connection_close,
            _ => !self.connection_close,
        }
    }
}

/// A `Content-Length` value: decimal digits only, no sign, no overflow.
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(raw: &str) -> Result<RequestHead, H1Error> {
        parse_request(raw.as_bytes()).map(|parsed| parsed.expect("complete").0)
    }

    fn response(raw: &str, method: Method) -> Result<ResponseHead, H1Error> {
        parse_response(raw.as_bytes(), &method).map(|parsed| parsed.expect("complete").0)
    }

    #[test]
    fn the_request_names_its_host_in_its_target_without_copying_it() {
        let mut buf = BytesMut::from("GET /a?b=c HTTP/1.1\r\nHost: hello.demo:8080\r\n\r\n");
        let head = read_request(&mut buf).unwrap().unwrap();
        let host = head.headers[HOST].as_bytes().as_ptr();
        let req = head.into_request(());
        assert_eq!(req.uri(), "http://hello.demo:8080/a?b=c");
        assert_eq!(req.uri().authority().unwrap().as_str().as_ptr(), host);

        for raw in [
            "GET http://other/x HTTP/1.1\r\nHost: hello\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\nHost: hello\r\n\r\n",
            "GET /x HTTP/1.1\r\nHost: not valid\r\n\r\n",
            "GET /x HTTP/1.0\r\n\r\n",
        ] {
            let head = request(raw).unwrap();
            let target = head.uri.clone();
            assert_eq!(head.into_request(()).uri(), &target, "{raw:?}");
        }
    }

    #[test]
    fn a_request_head_and_its_length() {
        let raw =
            "POST /a?b=c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhello";
        let (head, len) = parse_request(raw.as_bytes()).unwrap().unwrap();
        assert_eq!(&raw[len..], "hello");
        assert_eq!(head.method, Method::POST);
        assert_eq!(head.uri, "/a?b=c");
        assert_eq!(head.version, Version::HTTP_11);
        assert_eq!(head.framing, Framing::Length(5));
        assert!(head.keep_alive && !head.expect_continue && !head.upgrade);
        let values: Vec<_> = head.headers.get_all("x-a").iter().collect();
        assert_eq!(values, ["1", "2"]);
        assert_eq!(
            parse_request(&raw.as_bytes()[..20]).unwrap().map(|_| ()),
            None
        );
    }

    #[test]
    fn framing_of_requests() {
        let framing = |raw: &str| request(raw).map(|h| h.framing);
        assert_eq!(
            framing("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok(Framing::Empty)
        );
        assert_eq!(
            framing("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n"),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            framing(
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\ncontent-length: 5\r\n\r\n"
            ),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            framing("GET / HTTP/1.0\r\n\r\n"),
            Ok(Framing::Empty),
            "HTTP/1.0 needs no Host"
        );
    }

    #[test]
    fn smuggling_vectors_are_refused() {
        let cases = [
            (
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                H1Error::ContentLengthWithTransferEncoding,
            ),
            (
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                H1Error::InvalidContentLength,
            ),
            (
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\n",
                H1Error::InvalidContentLength,
            ),
            (
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n",
                H1Error::InvalidContentLength,
            ),
            (
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
                H1Error::InvalidContentLength,
            ),
            (
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
                H1Error::UnsupportedTransferEncoding,
            ),
            (
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n",
                H1Error::UnsupportedTransferEncoding,
            ),
            (
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                H1Error::UnsupportedTransferEncoding,
            ),
            (
                "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                H1Error::UnsupportedTransferEncoding,
            ),
            (
                "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n",
                H1Error::ObsFold,
            ),
            (
                "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r2\r\n\r\n",
                H1Error::BareCr,
            ),
            ("GET / HTTP/1.1\r\n\r\n", H1Error::InvalidHost),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                H1Error::InvalidHost,
            ),
            ("GET / HTTP/1.1\r\nHost : x\r\n\r\n", H1Error::MalformedHead),
            (
                "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n",
                H1Error::MalformedHead,
            ),
        ];
        for (raw, error) in cases {
            assert_eq!(request(raw).map(|_| ()), Err(error), "{raw:?}");
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: 1\r\n")).collect();
        let raw = format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n");
        assert_eq!(request(&raw).map(|_| ()), Err(H1Error::HeadTooLarge));
    }

    #[test]
    fn connection_handling() {
        let head = request("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        assert!(!head.keep_alive);
        let head = request("GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(!head.keep_alive);
        let head = request("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap();
        assert!(head.keep_alive);
        let head = request(
            "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
        )
        .unwrap();
        assert!(head.upgrade);
        let head = request(
            "PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n",
        )
        .unwrap();
        assert!(head.expect_continue);
    }

    #[test]
    fn framing_of_responses() {
        let framing = |raw: &str, method| response(raw, method).map(|h| (h.framing, h.keep_alive));
        let get = || Method::GET;
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", get()),
            Ok((Framing::Length(2), true))
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", Method::HEAD),
            Ok((Framing::Empty, true))
        );
        for status in [100, 101, 204, 304] {
            let raw = format!("HTTP/1.1 {status} X\r\nContent-Length: 9\r\n\r\n");
            assert_eq!(framing(&raw, get()), Ok((Framing::Empty, true)), "{status}");
        }
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\n\r\n", get()),
            Ok((Framing::CloseDelimited, false))
        );
        assert_eq!(
            framing(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
                get()
            ),
            Ok((Framing::Chunked, true))
        );
        assert_eq!(
            framing("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n", get()),
            Ok((Framing::Length(2), false))
        );
        assert_eq!(
            framing(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 2\r\n\r\n",
                get()
            ),
            Err(H1Error::ContentLengthWithTransferEncoding)
        );
        assert_eq!(
            framing(
                "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n",
                get()
            ),
            Err(H1Error::InvalidContentLength)
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", get()),
            Err(H1Error::ObsFold)
        );
    }
}

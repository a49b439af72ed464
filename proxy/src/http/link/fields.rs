//! A link stream's header fields to and from the `http` crate's request and answer heads, with
//! RFC 9113 section 8's rules on what a head may hold.
//!
//! Received heads go into maps kept from earlier messages ([`crate::http::spare_headers`]), which
//! `h2` could not do: it builds a map of its own for every message.

use http::header::{HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use weft_http2::connection::FieldWriter;
use weft_http2::hpack::{Field, Indexing, default_indexing};

use crate::http::spare_headers;

/// Why a received head is malformed (the stream is reset with `PROTOCOL_ERROR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a malformed HTTP/2 head: {0}")]
pub struct Malformed(pub &'static str);

/// A request's head from its fields.
pub fn request(fields: impl ExactSizeIterator<Item = Field>) -> Result<Request<()>, Malformed> {
    let mut method = None;
    let mut scheme = None;
    let mut authority = None;
    let mut path = None;
    let mut headers = spare_headers::map(fields.len());
    let mut regular = false;
    for field in fields {
        if field.name.first() == Some(&b':') {
            if regular {
                return Err(Malformed("a pseudo-field after a regular field"));
            }
            let slot = match &field.name[..] {
                b":method" => &mut method,
                b":scheme" => &mut scheme,
                b":authority" => &mut authority,
                b":path" => &mut path,
                _ => {
                    return Err(Malformed(
                        "an unknown or response pseudo-field in a request",
                    ));
                }
            };
            if slot.replace(field.value).is_some() {
                return Err(Malformed("a pseudo-field twice"));
            }
            continue;
        }
        regular = true;
        append(&mut headers, field)?;
    }
    let method = method.ok_or(Malformed("no :method"))?;
    let method = Method::from_bytes(&method).map_err(|_| Malformed("an invalid :method"))?;
    let mut uri = http::uri::Parts::default();
    if method != Method::CONNECT {
        let scheme = scheme.ok_or(Malformed("no :scheme"))?;
        uri.scheme =
            Some(Scheme::try_from(&scheme[..]).map_err(|_| Malformed("an invalid :scheme"))?);
        let path = path
            .filter(|p| !p.is_empty())
            .ok_or(Malformed("no :path"))?;
        uri.path_and_query =
            Some(PathAndQuery::from_maybe_shared(path).map_err(|_| Malformed("an invalid :path"))?);
    }
    if let Some(authority) = authority {
        uri.authority = Some(
            Authority::from_maybe_shared(authority)
                .map_err(|_| Malformed("an invalid :authority"))?,
        );
    }
    let uri = Uri::from_parts(uri).map_err(|_| Malformed("an invalid request target"))?;
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_2;
    *request.headers_mut() = headers;
    Ok(request)
}

/// An answer's head from its fields: `:status` first, then regular fields.
pub fn response(
    mut fields: impl ExactSizeIterator<Item = Field>,
) -> Result<Response<()>, Malformed> {
    let status = match fields.next() {
        Some(field) if &field.name[..] == b":status" => field.value,
        _ => return Err(Malformed("no :status first")),
    };
    let status =
        http::StatusCode::from_bytes(&status).map_err(|_| Malformed("an invalid :status"))?;
    let mut headers = spare_headers::map(fields.len());
    for field in fields {
        if field.name.first() == Some(&b':') {
            return Err(Malformed(
                "a pseudo-field other than :status first in an answer",
            ));
        }
        append(&mut headers, field)?;
    }
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = Version::HTTP_2;
    *response.headers_mut() = headers;
    Ok(response)
}

/// Trailers from their fields (no pseudo-field allowed).
pub fn trailers(fields: impl ExactSizeIterator<Item = Field>) -> Result<HeaderMap, Malformed> {
    let mut headers = HeaderMap::with_capacity(fields.len());
    for field in fields {
        if field.name.first() == Some(&b':') {
            return Err(Malformed("a pseudo-field in trailers"));
        }
        append(&mut headers, field)?;
    }
    Ok(headers)
}

fn append(headers: &mut HeaderMap, field: Field) -> Result<(), Malformed> {
    let name = match mesh_name(&field.name) {
        Some(name) => name,
        None => HeaderName::from_lowercase(&field.name)
            .map_err(|_| Malformed("an invalid field name"))?,
    };
    if is_connection_specific(&name) {
        return Err(Malformed("a connection-specific field"));
    }
    if name == http::header::TE && field.value.as_ref() != b"trailers" {
        return Err(Malformed("te other than trailers"));
    }
    let value = HeaderValue::from_maybe_shared(field.value)
        .map_err(|_| Malformed("an invalid field value"))?;
    headers.append(name, value);
    Ok(())
}

/// The names the sidecars add to nearly every message, as constants: `http` copies a name it does
/// not know into an allocation of its own every time it parses one (`h2` kept them in its HPACK
/// table instead).
fn mesh_name(name: &[u8]) -> Option<HeaderName> {
    use crate::http::headers::{ATTEMPT, CLIENT_IDENTITY, ERROR, ORIG_PROTO, SERVER_IDENTITY};
    use crate::telemetry::trace_context::{B3, TRACEPARENT};
    Some(match name {
        b"weft-orig-proto" => ORIG_PROTO,
        b"weft-client-identity" => CLIENT_IDENTITY,
        b"weft-server-identity" => SERVER_IDENTITY,
        b"weft-error" => ERROR,
        b"weft-attempt" => ATTEMPT,
        b"traceparent" => TRACEPARENT,
        b"tracestate" => HeaderName::from_static("tracestate"),
        b"b3" => B3,
        _ => return None,
    })
}

fn is_connection_specific(name: &HeaderName) -> bool {
    use http::header::{CONNECTION, TRANSFER_ENCODING, UPGRADE};
    *name == CONNECTION
        || *name == TRANSFER_ENCODING
        || *name == UPGRADE
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

/// Writes an answer's head: `:status`, then its fields (connection-specific ones are stripped
/// before).
pub fn write_response(status: http::StatusCode, headers: &HeaderMap, writer: &mut FieldWriter<'_>) {
    writer.field(b":status", status.as_str().as_bytes());
    write_fields(headers, writer);
}

/// Writes a request's head: the pseudo-fields from its method and target, then its fields.
pub fn write_request(parts: &http::request::Parts, writer: &mut FieldWriter<'_>) {
    writer.field(b":method", parts.method.as_str().as_bytes());
    if parts.method != Method::CONNECT {
        let scheme = parts.uri.scheme_str().unwrap_or("http");
        writer.field(b":scheme", scheme.as_bytes());
    }
    if let Some(authority) = parts.uri.authority() {
        writer.field(b":authority", authority.as_str().as_bytes());
    }
    if parts.method != Method::CONNECT {
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        writer.field(b":path", path.as_bytes());
    }
    write_fields(&parts.headers, writer);
}

/// A value marked sensitive is never indexed, and says so to the peer (RFC 7541 section 7.1.3);
/// the others are indexed as [`default_indexing`] says.
fn write_fields(headers: &HeaderMap, writer: &mut FieldWriter<'_>) {
    for (name, value) in headers {
        let (name, bytes) = (name.as_str().as_bytes(), value.as_bytes());
        let indexing = match value.is_sensitive() {
            true => Indexing::Never,
            false => default_indexing(name, bytes),
        };
        writer.field_with(name, bytes, indexing);
    }
}

/// Fields as `Bytes`, for tests.
#[cfg(test)]
pub fn field(name: &'static str, value: &'static str) -> Field {
    use bytes::Bytes;
    Field {
        name: Bytes::from_static(name.as_bytes()),
        value: Bytes::from_static(value.as_bytes()),
        never_index: false,
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use weft_http2::connection::{Config, Connection, Event, Role};

    use super::*;

    /// A request's head written by one end and read by the other: a sensitive value travels
    /// never indexed, and the head reads back as it was.
    #[test]
    fn a_request_head_crosses_the_link_and_sensitive_values_stay_out_of_the_tables() {
        let config = |role| Config {
            role,
            max_concurrent_streams: 8,
            stream_window: 65_535,
            connection_window: 65_535,
            max_header_list_size: 16_384,
        };
        let (mut client, mut server) = (
            Connection::new(config(Role::Client)),
            Connection::new(config(Role::Server)),
        );
        let mut secret = HeaderValue::from_static("token");
        secret.set_sensitive(true);
        let sent = Request::get("http://hello.demo:8080/v1?x=1")
            .header("x-api-key", secret)
            .header("x-a", "1")
            .body(())
            .expect("a request");
        let (parts, ()) = sent.into_parts();
        let stream = client.open_stream().expect("a stream");
        client.send_headers(stream, true, |w| write_request(&parts, w));
        let mut wire = BytesMut::new();
        let mut chunks = Vec::new();
        client.take_output(&mut chunks);
        for chunk in chunks {
            wire.extend_from_slice(&chunk);
        }
        let event = server.receive(&mut wire).expect("valid");
        assert!(matches!(event, Some(Event::Headers { .. })), "{event:?}");
        let fields: Vec<Field> = server.take_fields().collect();
        let never: Vec<_> = fields
            .iter()
            .filter(|f| f.never_index)
            .map(|f| &f.name[..])
            .collect();
        assert_eq!(never, [&b"x-api-key"[..]]);
        let read = request(fields.into_iter()).expect("valid");
        assert_eq!(read.uri(), "http://hello.demo:8080/v1?x=1");
        assert_eq!(read.headers()["x-api-key"], "token");
        assert_eq!(read.headers()["x-a"], "1");
    }

    #[test]
    fn a_request_head_is_read_and_its_rules_kept() {
        let post = request(
            [
                field(":method", "POST"),
                field(":scheme", "http"),
                field(":authority", "hello.demo:8080"),
                field(":path", "/v1/charges?x=1"),
                field("content-type", "application/json"),
                field("x-a", "1"),
                field("x-a", "2"),
            ]
            .into_iter(),
        )
        .expect("valid");
        assert_eq!(post.method(), Method::POST);
        assert_eq!(post.uri(), "http://hello.demo:8080/v1/charges?x=1");
        assert_eq!(post.version(), Version::HTTP_2);
        let values: Vec<_> = post.headers().get_all("x-a").iter().collect();
        assert_eq!(values, ["1", "2"]);

        let base = || {
            vec![
                field(":method", "GET"),
                field(":scheme", "http"),
                field(":path", "/"),
            ]
        };
        let refused = |extra: Vec<Field>, what| {
            let mut fields = base();
            fields.extend(extra);
            assert_eq!(
                request(fields.into_iter()).err(),
                Some(Malformed(what)),
                "{what}"
            );
        };
        refused(
            vec![field("x-a", "1"), field(":authority", "a")],
            "a pseudo-field after a regular field",
        );
        refused(vec![field(":path", "/again")], "a pseudo-field twice");
        refused(
            vec![field(":status", "200")],
            "an unknown or response pseudo-field in a request",
        );
        refused(vec![field("Upper", "1")], "an invalid field name");
        refused(
            vec![field("connection", "close")],
            "a connection-specific field",
        );
        refused(
            vec![field("transfer-encoding", "chunked")],
            "a connection-specific field",
        );
        refused(vec![field("te", "gzip")], "te other than trailers");
        refused(vec![field("x-a", "bad\nvalue")], "an invalid field value");
        assert_eq!(
            request([field(":method", "GET"), field(":scheme", "http")].into_iter()).err(),
            Some(Malformed("no :path"))
        );
    }
}

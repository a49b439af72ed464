//! Header rewriting between the app's HTTP version and HTTP/2 between proxies.
//!
//! Proxies always talk HTTP/2 to each other so that many app connections share a few TLS
//! connections. A request that the app sent as HTTP/1.x travels with `weft-orig-proto` so the
//! receiving proxy speaks HTTP/1.x to its app again.
//!
//! The `weft-*` headers steer proxies, so each is believed only from whoever may set it: the
//! receiving proxy alone says who the caller is (`weft-client-identity`); `weft-orig-proto` is
//! honoured only from a peer proxy (an app's own copy, or a plaintext caller's, would let it pick
//! the version the remote app is spoken to); and `weft-error` on a response means that a proxy
//! made it, so the inbound side removes an app's own (see [`for_app`], [`to_mesh`]).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Uri, Version};

pub mod carried;

pub use carried::Carried;

/// Set on requests that the app sent as HTTP/1.x; removed before the request reaches the app,
/// and honoured only from a peer proxy.
pub const ORIG_PROTO: HeaderName = HeaderName::from_static("weft-orig-proto");
/// The caller's SPIFFE ID, set by the receiving proxy for the app (never trusted from outside).
pub const CLIENT_IDENTITY: HeaderName = HeaderName::from_static("weft-client-identity");
/// On responses to the local app: the SPIFFE ID the destination's proxy proved in its handshake.
pub const SERVER_IDENTITY: HeaderName = HeaderName::from_static("weft-server-identity");
/// On responses the proxy generates itself: a stable reason why it could not forward. Removed
/// from the app's responses, so that callers can tell the two apart.
pub const ERROR: HeaderName = HeaderName::from_static("weft-error");
/// `weft-attempt`: which attempt of the request a retry is (2 for the first retry), for the
/// server. The first attempt carries none: it is most requests, and the header would cost each
/// of them its encoding on both proxies and a line in the app's headers.
pub const ATTEMPT: HeaderName = HeaderName::from_static("weft-attempt");

/// What a received head's `content-length` announces, for a streamed body's `size_hint` (an
/// HTTP/1.1 peer then gets `Content-Length` instead of chunked encoding).
pub fn announced_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Removes connection-specific headers (RFC 9110 §7.6.1), including those named in
/// `Connection`, and any `TE` other than `trailers`; `carried` is what [`Carried::scan`] found in
/// `headers`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, carried: Carried) {
    if !carried.any(Carried::HOP_BY_HOP) {
        return;
    }
    if carried.any(Carried::CONNECTION) {
        // The names `Connection` lists go too. Taken out of the map first, so that removing them
        // needs no copy of the names (a message has one `Connection` line but for rare
        // exceptions).
        if headers.get_all(header::CONNECTION).iter().nth(1).is_none() {
            if let Some(connection) = headers.remove(header::CONNECTION) {
                remove_listed(headers, &connection, carried);
            }
        } else {
            let listed: Vec<HeaderValue> = headers
                .get_all(header::CONNECTION)
                .iter()
                .cloned()
                .collect();
            headers.remove(header::CONNECTION);
            for connection in &listed {
                remove_listed(headers, connection, carried);
            }
        }
    }
    let te_trailers = carried.any(Carried::TE)
        && headers
            .get(header::TE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
            });
    carried.remove(Carried::HOP_BY_HOP.without(Carried::CONNECTION), headers);
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Removes the headers a `Connection` value names (`HeaderMap::remove` takes a name as `&str`
/// without copying it, and finds nothing for one that is not a valid name), but for those of
/// weft's set that the head does not carry (`keep-alive`, most often).
fn remove_listed(headers: &mut HeaderMap, connection: &HeaderValue, carried: Carried) {
    let Ok(listed) = connection.to_str() else {
        return;
    };
    for name in listed.split(',').map(str::trim) {
        let known = Carried::named(name);
        if known == Carried::NONE || carried.any(known) {
            headers.remove(name);
        }
    }
}

/// Prepares a request from the app to travel as HTTP/2 to a peer proxy: absolute URI (authority
/// from `Host`, or `fallback_authority()`), `weft-orig-proto` for HTTP/1.x (and never the app's
/// own), no hop-by-hop headers.
pub fn to_mesh<B>(
    req: &mut Request<B>,
    fallback_authority: impl FnOnce() -> String,
) -> Result<(), String> {
    let version = req.version();
    if req.uri().authority().is_none() {
        let authority = match req.headers().get(header::HOST) {
            Some(host) => Authority::try_from(host.as_bytes())
                .map_err(|e| format!("the Host header is not a valid authority: {e}"))?,
            None => Authority::try_from(fallback_authority())
                .map_err(|e| format!("invalid destination authority: {e}"))?,
        };
        *req.uri_mut() = with_authority(req.uri().clone(), authority)
            .map_err(|e| format!("cannot build the request URI: {e}"))?;
    } else if req.uri().scheme().is_none() {
        let authority = req.uri().authority().cloned();
        if let Some(authority) = authority {
            *req.uri_mut() = with_authority(req.uri().clone(), authority)
                .map_err(|e| format!("cannot build the request URI: {e}"))?;
        }
    }
    let carried = Carried::scan(req.headers());
    strip_hop_by_hop(req.headers_mut(), carried);
    req.headers_mut().remove(header::HOST);
    // Only this proxy says which version the app spoke: an app's own `weft-orig-proto` would
    // make the remote proxy speak another version to its app than this app did (`insert`
    // below replaces it too).
    if version >= Version::HTTP_2 {
        carried.remove(Carried::ORIG_PROTO, req.headers_mut());
    } else {
        let proto = if version == Version::HTTP_10 {
            "HTTP/1.0"
        } else {
            "HTTP/1.1"
        };
        req.headers_mut()
            .insert(ORIG_PROTO, HeaderValue::from_static(proto));
    }
    *req.version_mut() = Version::HTTP_2;
    Ok(())
}

/// `uri` made absolute with `authority` (scheme `http` unless it has one), reusing its path.
pub fn with_authority(uri: Uri, authority: Authority) -> Result<Uri, http::uri::InvalidUriParts> {
    let mut parts = uri.into_parts();
    if parts.scheme.is_none() {
        parts.scheme = Some(Scheme::HTTP);
    }
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(PathAndQuery::from_static("/"));
    }
    Uri::from_parts(parts)
}

/// At the receiving proxy, everything a request needs before it goes to the app: hop-by-hop
/// headers removed, the version the app expects (see below), and `weft-client-identity` set to
/// `identity` (`Some` only on a peer proxy's mutual-TLS connection), never to a caller's copy.
///
/// The order matters: hop-by-hop headers first, so that a caller's `Connection:
/// weft-client-identity` cannot remove the identity set after them. The version is the one a peer
/// proxy's `weft-orig-proto` names; any other caller is answered in the version it spoke, and its
/// `weft-orig-proto` is dropped. Returns HTTP/1.x or HTTP/2. An HTTP/1 request that came as
/// HTTP/2 has no `Host`: the encoder writes the URI's authority as its `Host` line
/// ([`crate::http::h1::encode`]), without a header value made for it.
pub fn for_app<B>(req: &mut Request<B>, identity: Option<&HeaderValue>) -> Version {
    let carried = Carried::scan(req.headers());
    strip_hop_by_hop(req.headers_mut(), carried);
    let orig_proto = match carried.any(Carried::ORIG_PROTO) {
        true => req.headers_mut().remove(ORIG_PROTO),
        false => None,
    };
    let version = match (identity, orig_proto) {
        (Some(_), Some(v)) if v == "HTTP/1.0" => Version::HTTP_10,
        (Some(_), Some(_)) => Version::HTTP_11,
        _ => req.version(),
    };
    // `insert` replaces every value a caller sent with exactly this proxy's; without one, the
    // caller's go.
    match identity {
        Some(identity) => _ = req.headers_mut().insert(CLIENT_IDENTITY, identity.clone()),
        None => carried.remove(Carried::CLIENT_IDENTITY, req.headers_mut()),
    }
    version
}

/// Whether the request is gRPC (errors are then reported as gRPC statuses).
pub fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head the app's HTTP/1 connection carries for `req`, without the client identity.
    fn app_head(req: &Request<()>, version: Version) -> String {
        let mut headers = req.headers().clone();
        headers.remove(CLIENT_IDENTITY);
        let mut head = bytes::BytesMut::new();
        crate::http::h1::encode::encode_request_head(
            req.method(),
            req.uri(),
            version,
            &headers,
            crate::http::h1::Framing::Empty,
            &mut head,
        );
        String::from_utf8(head.to_vec()).unwrap()
    }

    fn peer() -> HeaderValue {
        HeaderValue::from_static("spiffe://cluster.local/ns/demo/sa/web")
    }

    #[test]
    fn http1_requests_travel_as_http2_and_come_back() {
        let mut req = Request::builder()
            .uri("/hello?x=1")
            .header("host", "hello.demo:8080")
            .header("connection", "keep-alive, x-private")
            .header("x-private", "1")
            .header("te", "trailers, deflate")
            .header("accept", "*/*")
            .body(())
            .unwrap();
        to_mesh(&mut req, || "unused".to_owned()).unwrap();
        assert_eq!(req.uri(), "http://hello.demo:8080/hello?x=1");
        assert_eq!(req.version(), Version::HTTP_2);
        assert_eq!(req.headers()[ORIG_PROTO], "HTTP/1.1");
        assert_eq!(req.headers()["te"], "trailers");
        for gone in ["host", "connection", "x-private"] {
            assert!(!req.headers().contains_key(gone), "{gone} should be gone");
        }

        assert_eq!(for_app(&mut req, Some(&peer())), Version::HTTP_11);
        assert!(!req.headers().contains_key(ORIG_PROTO));
        assert_eq!(req.headers()["accept"], "*/*");
        let head = app_head(&req, Version::HTTP_11);
        assert!(
            head.starts_with("GET /hello?x=1 HTTP/1.1\r\nhost: hello.demo:8080\r\n"),
            "the app gets the authority as its Host: {head:?}"
        );
        assert!(head.contains("\r\naccept: */*\r\n"), "{head:?}");
    }

    #[test]
    fn http2_requests_keep_their_authority_and_version() {
        let mut req = Request::builder()
            .version(Version::HTTP_2)
            .uri("http://grpc.demo:50051/pkg.Svc/Call")
            .header("content-type", "application/grpc")
            .body(())
            .unwrap();
        to_mesh(&mut req, || "unused".to_owned()).unwrap();
        assert!(!req.headers().contains_key(ORIG_PROTO));
        assert_eq!(for_app(&mut req, Some(&peer())), Version::HTTP_2);
        assert!(!req.headers().contains_key("host"));
        assert!(is_grpc(&req));
    }

    #[test]
    fn a_request_without_host_uses_the_destination() {
        let mut req = Request::builder()
            .version(Version::HTTP_10)
            .uri("/")
            .body(())
            .unwrap();
        to_mesh(&mut req, || "10.0.0.7:8080".to_owned()).unwrap();
        assert_eq!(req.uri(), "http://10.0.0.7:8080/");
        assert_eq!(req.headers()[ORIG_PROTO], "HTTP/1.0");
    }

    #[test]
    fn only_this_proxy_sets_the_client_identity_even_if_connection_names_it() {
        let forged = || {
            Request::builder()
                .uri("/")
                .header("host", "hello.demo")
                .header("connection", "weft-client-identity")
                .header(CLIENT_IDENTITY, "spiffe://cluster.local/ns/demo/sa/admin")
                .header(CLIENT_IDENTITY, "spiffe://cluster.local/ns/demo/sa/root")
                .body(())
                .unwrap()
        };
        let mut req = forged();
        for_app(&mut req, Some(&peer()));
        let values: Vec<_> = req.headers().get_all(CLIENT_IDENTITY).iter().collect();
        assert_eq!(values, [&peer()]);
        assert!(!req.headers().contains_key(header::CONNECTION));

        let mut req = forged();
        for_app(&mut req, None);
        assert!(!req.headers().contains_key(CLIENT_IDENTITY));
    }

    #[test]
    fn orig_proto_is_honoured_only_from_a_peer_proxy() {
        let forged = || {
            Request::builder()
                .version(Version::HTTP_2)
                .uri("http://hello.demo:8080/")
                .header(ORIG_PROTO, "HTTP/1.0")
                .body(())
                .unwrap()
        };
        let mut req = forged();
        assert_eq!(for_app(&mut req, None), Version::HTTP_2);
        assert!(!req.headers().contains_key(ORIG_PROTO));
        assert!(!req.headers().contains_key(header::HOST));

        let mut req = forged();
        assert_eq!(for_app(&mut req, Some(&peer())), Version::HTTP_10);
        assert!(!req.headers().contains_key(ORIG_PROTO));
        assert!(
            app_head(&req, Version::HTTP_10)
                .starts_with("GET / HTTP/1.0\r\nhost: hello.demo:8080\r\n")
        );
    }

    #[test]
    fn the_apps_own_orig_proto_never_travels() {
        let mut req = Request::builder()
            .version(Version::HTTP_2)
            .uri("http://hello.demo:8080/")
            .header(ORIG_PROTO, "HTTP/1.0")
            .body(())
            .unwrap();
        to_mesh(&mut req, || "unused".to_owned()).unwrap();
        assert!(!req.headers().contains_key(ORIG_PROTO));

        let mut req = Request::builder()
            .uri("/")
            .header("host", "hello.demo")
            .header(ORIG_PROTO, "HTTP/1.0")
            .body(())
            .unwrap();
        to_mesh(&mut req, || "unused".to_owned()).unwrap();
        let values: Vec<_> = req.headers().get_all(ORIG_PROTO).iter().collect();
        assert_eq!(values, ["HTTP/1.1"]);
    }
}

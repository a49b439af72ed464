//! What a Gateway API rule does to a request before it is sent, and to its response: header
//! modifiers, the redirect a rule answers with, and URL rewrites (path and hostname).

use bytes::Bytes;
use http::header::{HOST, LOCATION};
use http::uri::{Authority, PathAndQuery};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use weft_api::policy as proto;

use crate::http::headers::ERROR;

/// `RequestHeaderModifier` / `ResponseHeaderModifier`, with names and values parsed once.
#[derive(Debug, Default)]
pub struct HeaderModifier {
    set: Vec<(HeaderName, HeaderValue)>,
    add: Vec<(HeaderName, HeaderValue)>,
    remove: Vec<HeaderName>,
}

fn header(h: &proto::Header) -> Option<(HeaderName, HeaderValue)> {
    Some((
        HeaderName::try_from(h.name.as_str()).ok()?,
        HeaderValue::try_from(h.value.as_str()).ok()?,
    ))
}

impl HeaderModifier {
    pub fn from_proto(m: Option<proto::HeaderModifier>) -> Option<Self> {
        let m = m?;
        let modifier = Self {
            set: m.set.iter().filter_map(header).collect(),
            add: m.add.iter().filter_map(header).collect(),
            remove: m
                .remove
                .iter()
                .filter_map(|n| HeaderName::try_from(n.as_str()).ok())
                .collect(),
        };
        let empty =
            modifier.set.is_empty() && modifier.add.is_empty() && modifier.remove.is_empty();
        (!empty).then_some(modifier)
    }

    pub fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.set {
            headers.insert(name, value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name, value.clone());
        }
        for name in &self.remove {
            headers.remove(name);
        }
    }
}

/// How a path changes: replaced whole, or the matched prefix replaced.
#[derive(Debug, Clone)]
pub enum PathRewrite {
    Full(String),
    Prefix(String),
}

impl PathRewrite {
    fn from_proto(p: Option<proto::PathRewrite>) -> Option<Self> {
        let p = p?;
        Some(match p.full {
            true => PathRewrite::Full(p.value),
            false => PathRewrite::Prefix(p.value),
        })
    }

    /// `path` rewritten; `matched` is the prefix the rule's match named (without a trailing
    /// `/`), which `ReplacePrefixMatch` replaces.
    pub fn apply(&self, path: &str, matched: &str) -> String {
        match self {
            PathRewrite::Full(value) => value.clone(),
            PathRewrite::Prefix(value) => {
                let rest = path.strip_prefix(matched).unwrap_or(path);
                let joined = format!("{}{rest}", value.trim_end_matches('/'));
                if joined.is_empty() {
                    "/".to_owned()
                } else {
                    joined
                }
            }
        }
    }
}

/// `RequestRedirect`: the rule answers, no backend is called.
#[derive(Debug)]
pub struct Redirect {
    scheme: Option<String>,
    hostname: Option<String>,
    path: Option<PathRewrite>,
    port: Option<u16>,
    status: StatusCode,
}

impl Redirect {
    pub fn from_proto(r: Option<proto::Redirect>) -> Option<Self> {
        let r = r?;
        Some(Self {
            scheme: (!r.scheme.is_empty()).then_some(r.scheme),
            hostname: (!r.hostname.is_empty()).then_some(r.hostname),
            path: PathRewrite::from_proto(r.path),
            port: u16::try_from(r.port).ok().filter(|p| *p > 0),
            status: StatusCode::from_u16(r.status_code as u16).unwrap_or(StatusCode::FOUND),
        })
    }

    /// The redirect for `req`, whose rule matched `matched` as its path prefix. Unset parts
    /// are the request's; the port is left out when it is the scheme's well-known one.
    pub fn response<B, R: From<Bytes>>(&self, req: &Request<B>, matched: &str) -> Response<R> {
        let (host, request_port) = request_host(req);
        let scheme = self.scheme.as_deref().unwrap_or("http");
        let hostname = self.hostname.as_deref().unwrap_or(host);
        // The spec: with a scheme given and no port, the scheme's own port; otherwise the
        // port the request was sent to.
        let port = match (self.port, &self.scheme) {
            (Some(port), _) => Some(port),
            (None, Some(_)) => None,
            (None, None) => request_port,
        };
        let well_known = matches!((scheme, port), ("http", Some(80)) | ("https", Some(443)));
        let port = match (port, well_known) {
            (Some(port), false) => format!(":{port}"),
            _ => String::new(),
        };
        let path = match &self.path {
            Some(rewrite) => rewrite.apply(req.uri().path(), matched),
            None => req.uri().path().to_owned(),
        };
        let query = req
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        let location = format!("{scheme}://{hostname}{port}{path}{query}");
        let mut response = Response::new(R::from(Bytes::new()));
        *response.status_mut() = self.status;
        if let Ok(location) = HeaderValue::try_from(location) {
            response.headers_mut().insert(LOCATION, location);
        }
        response
            .headers_mut()
            .insert(ERROR, HeaderValue::from_static("redirect"));
        response
    }
}

/// The host (without its port) and port the request names, from its URI or `Host`.
fn request_host<B>(req: &Request<B>) -> (&str, Option<u16>) {
    let authority = req
        .uri()
        .authority()
        .map(Authority::as_str)
        .or_else(|| req.headers().get(HOST).and_then(|h| h.to_str().ok()));
    let Some(authority) = authority else {
        return ("", None);
    };
    // `[v6]` alone has colons but no port.
    match authority.rsplit_once(':') {
        Some((host, port)) if !authority.ends_with(']') => match port.parse() {
            Ok(port) => (host, Some(port)),
            Err(_) => (authority, None),
        },
        _ => (authority, None),
    }
}

/// `URLRewrite`: the request goes on with another path or host.
#[derive(Debug)]
pub struct Rewrite {
    hostname: Option<HeaderValue>,
    path: Option<PathRewrite>,
}

impl Rewrite {
    pub fn from_proto(r: Option<proto::Rewrite>) -> Option<Self> {
        let r = r?;
        Some(Self {
            hostname: HeaderValue::try_from(r.hostname)
                .ok()
                .filter(|h| !h.is_empty()),
            path: PathRewrite::from_proto(r.path),
        })
    }

    pub fn apply<B>(&self, req: &mut Request<B>, matched: &str) {
        if let Some(hostname) = &self.hostname {
            req.headers_mut().insert(HOST, hostname.clone());
            if req.uri().authority().is_some() {
                let mut parts = req.uri().clone().into_parts();
                parts.authority = Authority::try_from(hostname.as_bytes()).ok();
                if let Ok(uri) = Uri::from_parts(parts) {
                    *req.uri_mut() = uri;
                }
            }
        }
        if let Some(rewrite) = &self.path {
            let path = rewrite.apply(req.uri().path(), matched);
            let path_and_query = match req.uri().query() {
                Some(query) => format!("{path}?{query}"),
                None => path,
            };
            let mut parts = req.uri().clone().into_parts();
            parts.path_and_query = PathAndQuery::try_from(path_and_query).ok();
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_rewrites_replace_the_matched_prefix_only() {
        let strip = PathRewrite::Prefix("/".into());
        assert_eq!(
            strip.apply("/strip-prefix/three", "/strip-prefix"),
            "/three"
        );
        assert_eq!(strip.apply("/strip-prefix", "/strip-prefix"), "/");
        let one = PathRewrite::Prefix("/one".into());
        assert_eq!(one.apply("/prefix/one/two", "/prefix/one"), "/one/two");
        assert_eq!(
            PathRewrite::Full("/one".into()).apply("/full/x", "/full"),
            "/one"
        );
    }

    #[test]
    fn redirects_keep_what_they_do_not_change() {
        let redirect = Redirect::from_proto(Some(proto::Redirect {
            hostname: "example.org".into(),
            status_code: 301,
            ..Default::default()
        }))
        .unwrap();
        let req = Request::get("/a?b=c")
            .header(HOST, "hello.demo:8080")
            .body(())
            .unwrap();
        let response: Response<Bytes> = redirect.response(&req, "");
        assert_eq!(response.status(), 301);
        assert_eq!(
            response.headers()[LOCATION],
            "http://example.org:8080/a?b=c"
        );
        let https = Redirect::from_proto(Some(proto::Redirect {
            scheme: "https".into(),
            path: Some(proto::PathRewrite {
                full: false,
                value: "/new".into(),
            }),
            status_code: 302,
            ..Default::default()
        }))
        .unwrap();
        let response: Response<Bytes> = https.response(
            &Request::get("/old/x")
                .header(HOST, "h:8080")
                .body(())
                .unwrap(),
            "/old",
        );
        assert_eq!(response.headers()[LOCATION], "https://h/new/x");
    }

    #[test]
    fn rewrites_change_host_and_path_and_keep_the_query() {
        let rewrite = Rewrite::from_proto(Some(proto::Rewrite {
            hostname: "one.example.org".into(),
            path: Some(proto::PathRewrite {
                full: true,
                value: "/one".into(),
            }),
        }))
        .unwrap();
        let mut req = Request::get("/full/path?x=1")
            .header(HOST, "hello.demo")
            .body(())
            .unwrap();
        rewrite.apply(&mut req, "/full");
        assert_eq!(req.uri(), "/one?x=1");
        assert_eq!(req.headers()[HOST], "one.example.org");
    }
}

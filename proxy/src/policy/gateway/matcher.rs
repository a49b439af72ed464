//! Whether a request holds one match of a Gateway API rule: path (prefix on a segment
//! boundary, exact, or a regular expression over the whole path), method, headers and query
//! parameters (exact or a regular expression over the whole value). Every condition must hold.
//!
//! Regular expressions are compiled once, when the table arrives; one the proxy cannot compile
//! (the control plane checked them, so only a version mismatch brings one) matches nothing.

use regex::Regex;
use weft_api::policy as proto;

#[derive(Debug)]
pub struct Matcher {
    /// Index into the table's rules.
    pub rule: usize,
    pub path: PathMatcher,
    method: Option<http::Method>,
    headers: Vec<(http::HeaderName, ValueMatcher)>,
    query: Vec<(String, ValueMatcher)>,
}

#[derive(Debug)]
pub enum PathMatcher {
    /// Stored without a trailing `/` (so `/` is empty, and covers every path).
    Prefix(String),
    Exact(String),
    Regex(Option<Regex>),
}

#[derive(Debug)]
enum ValueMatcher {
    Exact(String),
    Regex(Option<Regex>),
}

/// `pattern` anchored at both ends, as the spec's "the whole value" means.
fn whole(pattern: &str) -> Option<Regex> {
    Regex::new(&format!("^(?:{pattern})$")).ok()
}

impl ValueMatcher {
    fn from_proto(m: &proto::ValueMatch) -> Self {
        match m.regex {
            true => ValueMatcher::Regex(whole(&m.value)),
            false => ValueMatcher::Exact(m.value.clone()),
        }
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            ValueMatcher::Exact(expected) => value == expected,
            ValueMatcher::Regex(regex) => regex.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }
}

impl Matcher {
    pub fn from_proto(m: &proto::RuleMatch) -> Self {
        let path = match &m.path {
            Some(p) if p.kind == proto::PathKind::Exact as i32 => {
                PathMatcher::Exact(p.value.clone())
            }
            Some(p) if p.kind == proto::PathKind::Regex as i32 => {
                PathMatcher::Regex(whole(&p.value))
            }
            Some(p) => PathMatcher::Prefix(p.value.trim_end_matches('/').to_owned()),
            None => PathMatcher::Prefix(String::new()),
        };
        Self {
            rule: m.rule as usize,
            path,
            method: (!m.method.is_empty())
                .then(|| m.method.parse().ok())
                .flatten(),
            headers: m
                .headers
                .iter()
                .filter_map(|h| {
                    let name = http::HeaderName::try_from(h.name.as_str()).ok()?;
                    Some((name, ValueMatcher::from_proto(h)))
                })
                .collect(),
            query: m
                .query_params
                .iter()
                .map(|q| (q.name.clone(), ValueMatcher::from_proto(q)))
                .collect(),
        }
    }

    pub fn matches<B>(&self, req: &http::Request<B>) -> bool {
        let path = req.uri().path();
        let path_holds = match &self.path {
            PathMatcher::Prefix(prefix) => segment_prefix(path, prefix),
            PathMatcher::Exact(exact) => path == exact,
            PathMatcher::Regex(regex) => regex.as_ref().is_some_and(|r| r.is_match(path)),
        };
        if !path_holds {
            return false;
        }
        if let Some(method) = &self.method
            && req.method() != method
        {
            return false;
        }
        for (name, expected) in &self.headers {
            let value = req.headers().get(name).and_then(|v| v.to_str().ok());
            if !value.is_some_and(|v| expected.matches(v)) {
                return false;
            }
        }
        if self.query.is_empty() {
            return true;
        }
        let query = req.uri().query().unwrap_or_default();
        self.query
            .iter()
            .all(|(name, expected)| query_param(query, name).is_some_and(|v| expected.matches(v)))
    }
}

/// `/v1` covers `/v1` and `/v1/…`, not `/v1x`; the empty prefix covers everything.
fn segment_prefix(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The first value of `name` in a query string (as the spec says: the first one counts).
fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(path: proto::PathMatch) -> proto::RuleMatch {
        proto::RuleMatch {
            path: Some(path),
            ..Default::default()
        }
    }

    fn path(kind: proto::PathKind, value: &str) -> proto::PathMatch {
        proto::PathMatch {
            kind: kind as i32,
            value: value.into(),
        }
    }

    fn get(uri: &str) -> http::Request<()> {
        http::Request::get(uri).body(()).unwrap()
    }

    #[test]
    fn paths_prefixes_and_expressions() {
        let prefix = Matcher::from_proto(&matcher(path(proto::PathKind::Prefix, "/v1/")));
        assert!(prefix.matches(&get("/v1")) && prefix.matches(&get("/v1/x?y=1")));
        assert!(!prefix.matches(&get("/v1x")));
        let root = Matcher::from_proto(&matcher(path(proto::PathKind::Prefix, "/")));
        assert!(root.matches(&get("/anything")));
        let exact = Matcher::from_proto(&matcher(path(proto::PathKind::Exact, "/one")));
        assert!(exact.matches(&get("/one")) && !exact.matches(&get("/one/")));
        let regex = Matcher::from_proto(&matcher(path(proto::PathKind::Regex, "/v[0-9]+/.*")));
        assert!(regex.matches(&get("/v12/a")) && !regex.matches(&get("/x/v1/a")));
        let broken = Matcher::from_proto(&matcher(path(proto::PathKind::Regex, "(")));
        assert!(!broken.matches(&get("/(")));
    }

    #[test]
    fn methods_headers_and_query_parameters_must_all_hold() {
        let m = Matcher::from_proto(&proto::RuleMatch {
            method: "POST".into(),
            headers: vec![proto::ValueMatch {
                name: "version".into(),
                value: "two|three".into(),
                regex: true,
            }],
            query_params: vec![proto::ValueMatch {
                name: "animal".into(),
                value: "whale".into(),
                regex: false,
            }],
            ..Default::default()
        });
        let req = |method: &str, version: &str, uri: &str| {
            http::Request::builder()
                .method(method)
                .uri(uri)
                .header("version", version)
                .body(())
                .unwrap()
        };
        assert!(m.matches(&req("POST", "two", "/?animal=whale&color=blue")));
        assert!(m.matches(&req("POST", "three", "/x?color=red&animal=whale")));
        assert!(!m.matches(&req("GET", "two", "/?animal=whale")));
        assert!(!m.matches(&req("POST", "twothree", "/?animal=whale")));
        assert!(!m.matches(&req("POST", "two", "/?animal=dolphin&animal=whale")));
        assert!(!m.matches(&req("POST", "two", "/")));
    }
}

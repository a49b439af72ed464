//! Which route a request belongs to: path (exact or segment prefix), methods, headers, or a gRPC
//! service and method. Every condition given must hold.

use weft_api::policy as proto;

#[derive(Debug, Clone, Default)]
pub struct RouteMatch {
    path: Option<String>,
    path_prefix: Option<String>,
    methods: Vec<http::Method>,
    headers: Vec<(http::HeaderName, Option<String>)>,
    /// `/<service>/` or `/<service>/<method>` as a path: that is how gRPC names a call.
    grpc: Option<GrpcPath>,
}

#[derive(Debug, Clone)]
struct GrpcPath {
    prefix: String,
    whole_service: bool,
}

impl RouteMatch {
    pub fn from_proto(m: proto::Match) -> Self {
        Self {
            path: (!m.path.is_empty()).then_some(m.path),
            path_prefix: (!m.path_prefix.is_empty())
                .then(|| m.path_prefix.trim_end_matches('/').to_owned()),
            methods: m
                .methods
                .iter()
                .filter_map(|method| method.parse().ok())
                .collect(),
            headers: m
                .headers
                .into_iter()
                .filter_map(|h| {
                    let name = http::HeaderName::try_from(h.name.as_str()).ok()?;
                    Some((name, (!h.exact.is_empty()).then_some(h.exact)))
                })
                .collect(),
            grpc: m.grpc.map(|g| match g.method.is_empty() {
                true => GrpcPath {
                    prefix: format!("/{}/", g.service),
                    whole_service: true,
                },
                false => GrpcPath {
                    prefix: format!("/{}/{}", g.service, g.method),
                    whole_service: false,
                },
            }),
        }
    }

    pub fn matches<B>(&self, req: &http::Request<B>) -> bool {
        let path = req.uri().path();
        if let Some(exact) = &self.path
            && path != exact
        {
            return false;
        }
        if let Some(prefix) = &self.path_prefix
            && !segment_prefix(path, prefix)
        {
            return false;
        }
        if !self.methods.is_empty() && !self.methods.contains(req.method()) {
            return false;
        }
        for (name, value) in &self.headers {
            match (req.headers().get(name), value) {
                (None, _) => return false,
                (Some(actual), Some(expected)) if actual.as_bytes() != expected.as_bytes() => {
                    return false;
                }
                _ => {}
            }
        }
        if let Some(grpc) = &self.grpc {
            let hit = match grpc.whole_service {
                true => path.starts_with(&grpc.prefix),
                false => path == grpc.prefix,
            };
            if !hit || !crate::http::headers::is_grpc(req) {
                return false;
            }
        }
        true
    }
}

/// `/v1` covers `/v1` and `/v1/…`, not `/v1x`; `/` (stored as empty) covers everything.
fn segment_prefix(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> http::Request<()> {
        http::Request::get(path).body(()).unwrap()
    }

    #[test]
    fn prefixes_end_on_segment_boundaries() {
        let m = RouteMatch::from_proto(proto::Match {
            path_prefix: "/v1/charges/".into(),
            methods: vec!["GET".into()],
            ..Default::default()
        });
        assert!(m.matches(&get("/v1/charges")));
        assert!(m.matches(&get("/v1/charges/7?x=1")));
        assert!(!m.matches(&get("/v1/chargesX")));
        let post = http::Request::post("/v1/charges").body(()).unwrap();
        assert!(!m.matches(&post));
        let root = RouteMatch::from_proto(proto::Match {
            path_prefix: "/".into(),
            ..Default::default()
        });
        assert!(root.matches(&get("/anything")));
    }

    #[test]
    fn grpc_headers_and_exact_paths() {
        let m = RouteMatch::from_proto(proto::Match {
            grpc: Some(proto::GrpcMatch {
                service: "pay.v1.Charges".into(),
                method: "Get".into(),
            }),
            headers: vec![proto::HeaderMatch {
                name: "x-tenant".into(),
                exact: String::new(),
            }],
            ..Default::default()
        });
        let call = |path: &str, tenant: bool| {
            let mut b = http::Request::post(path).header("content-type", "application/grpc");
            if tenant {
                b = b.header("x-tenant", "a");
            }
            b.body(()).unwrap()
        };
        assert!(m.matches(&call("/pay.v1.Charges/Get", true)));
        assert!(!m.matches(&call("/pay.v1.Charges/Get", false)));
        assert!(!m.matches(&call("/pay.v1.Charges/GetAll", true)));
        let exact = RouteMatch::from_proto(proto::Match {
            path: "/create".into(),
            ..Default::default()
        });
        assert!(exact.matches(&get("/create")) && !exact.matches(&get("/create/1")));
    }
}

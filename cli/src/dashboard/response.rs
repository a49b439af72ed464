//! The dashboard's plain responses: a fixed body with its content type, never cached (the page
//! polls the snapshot; a cached one would freeze it).

use std::convert::Infallible;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};

/// Every response body of the dashboard: a whole body, or the tap relay's stream.
pub type Body = BoxBody<Bytes, Infallible>;

pub fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    with_type(status, body, "text/plain; charset=utf-8")
}

pub fn with_type(status: StatusCode, body: impl Into<Bytes>, content_type: &str) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    if let Ok(value) = http::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, value);
    }
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}

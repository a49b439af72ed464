//! HTTP, shared by the inbound and the outbound side: the [`server`] that reads a request off an
//! accepted connection (HTTP/1.1 on weft's own codec, [`h1`]; HTTP/2 on `h2`), the [`link`]
//! between two sidecars (HTTP/2 on weft's own, both ends), the [`body`] every
//! request and response travels in, the [`headers`] the mesh adds and strips (and the [`spare_headers`] kept for the next request), [`upgrade`]d
//! connections, the [`error`] a failed request is answered with, and the [`client`]s that send it
//! on: to the peer proxy, or to the app.

pub mod body;
pub mod client;
pub mod error;
pub mod h1;
pub mod headers;
pub mod link;
pub mod refusal;
pub mod server;
pub mod spare_headers;
pub mod upgrade;
#[cfg(test)]
pub mod write_count;

/// The error of every body and HTTP connection the proxy handles.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

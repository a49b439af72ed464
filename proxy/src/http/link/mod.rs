//! The link between two sidecars: HTTP/2 on weft's own connection rules ([`weft_http2`]), with
//! the I/O and the tasks around them.
//!
//! One task per connection owns the socket: it reads, hands what it read to the
//! [`weft_http2::connection::Connection`], and writes what the connection has queued. Each
//! stream is served by a task of its own (the request's whole path), which reaches the
//! connection through the [`Link`]: a lock around the connection and the streams' mailboxes. The
//! runtime has one thread, so the lock is never contended; it is there because tasks must be
//! `Send`.
//!
//! Why not the `h2` crate, which the proxy uses for HTTP/2 everywhere else: its stream store,
//! queues and HPACK were about a third of a sidecar's instructions per request
//! (`docs/performance.md`), most of it generality the link between two sidecars does not use.

pub mod body;
pub mod client;
mod driver;
pub mod fields;
mod send;
pub mod server;
mod shared;

pub use shared::Link;

//! HTTP/2 (RFC 9113) and HPACK (RFC 7541) as weft's sidecars speak them to each other, without
//! I/O: bytes in, frames and header fields out, and the other way round.
//!
//! Why weft has its own: between two sidecars every request is one HTTP/2 stream, and the `h2`
//! crate's general machinery (a shared stream store behind a lock, queues, a header map built
//! per message) was about a third of a sidecar's instructions per request
//! (`docs/performance.md`). The wire stays standard HTTP/2, so a sidecar still talks to any
//! HTTP/2 peer (an older weft on `h2` during a rolling upgrade, curl, h2load), and the abuse
//! limits the `h2` crate enforces are enforced here too.
//!
//! Nothing here reads a socket or spawns a task: the proxy does the I/O and hands the bytes in.
//! That keeps every rule testable and fuzzable on plain byte strings.

pub mod connection;
pub mod frame;
pub mod hpack;

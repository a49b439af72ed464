//! Our binaries as processes: `weft demo`, the duration flags, and `weft-proxy` taking SIGTERM
//! under load and holding many idle connections.

// A failed step fails the test on the spot, with its message.
#![allow(clippy::unwrap_used)]

mod demo;
mod duration_flags;
mod outbound_connections;
mod shutdown;

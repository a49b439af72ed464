//! Our binaries as processes: `weft demo`, the duration flags, `weft-proxy` taking SIGTERM
//! under load and holding many idle connections, and the reference pages checked against the
//! binaries' `--help` and `/metrics`.

// A failed step fails the test on the spot, with its message.
#![allow(clippy::unwrap_used)]

mod demo;
mod duration_flags;
mod idle_connection_memory;
mod outbound_connections;
mod reference_docs;
mod shutdown;

//! weft in pods (network namespaces) the way a cluster runs it: `weft-proxy init` and the sidecar
//! as UID 1337, real programs as apps and clients, packet captures of the wire. Needs root.

// A failed step fails the test on the spot, with its message.
#![allow(clippy::unwrap_used)]

mod pods_harness;
mod pods_inbound;
mod pods_injection;
mod pods_mesh;

//! The control plane: discovery and identity over gRPC, watched files reloaded, two replicas
//! sharing one CA, startup failures, and `weft policy check` agreeing with what it serves.

// A failed step fails the test on the spot, with its message.
#![allow(clippy::unwrap_used)]

mod config_reload;
mod control_plane_ha;
mod control_plane_startup;
mod discovery_service;
mod gitops_policies;
mod identity_service;

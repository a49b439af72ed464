//! Test harness for weft: a control plane and proxies in-process on loopback, small apps that
//! report what they received, clients, polling helpers, and pods (network namespaces) for
//! end-to-end runs.
//!
//! Everything runs on real sockets with real TLS; nothing of weft's own is mocked.

// This is test support: a failed setup step should fail the test on the spot, with its message.
#![allow(clippy::unwrap_used)]

pub mod apps;
pub mod bins;
pub mod clients;
pub mod control_plane_client;
pub mod control_plane_process;
pub mod fake_apiserver;
pub mod fault_app;
pub mod local_peer;
pub mod logged_process;
pub mod mesh;
pub mod otlp;
pub mod pod_mesh;
pub mod pod_spec;
pub mod pods;
pub mod policy_mesh;
pub mod programs;
pub mod prometheus_server;
pub mod proxy_process;
pub mod raw_h2;
pub mod reference;
pub mod refusing_peer;
pub mod sa_token;
pub mod stalling_relay;
pub mod tls_probe;
pub mod traffic;
pub mod wait;

pub use mesh::{Mesh, ProxyOptions};

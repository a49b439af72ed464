//! Test harness for weft, grouped by what it provides:
//!
//! - [`mesh`]: a control plane and proxies in-process on loopback, and a control-plane client;
//! - [`process`]: our binaries and other programs run as processes;
//! - [`pods`]: network namespaces running weft the way a cluster does;
//! - [`apps`]: apps behind a proxy that report what reached them;
//! - [`clients`]: callers in the local app's place, polite or not;
//! - [`observe`]: metrics and traces, read as their consumers read them;
//! - [`kubernetes`]: a fake API server and service-account tokens;
//! - [`reference`]: the flags and metrics the docs' reference pages must list;
//! - [`wait`], [`ports`]: polling with a deadline, and a free port.
//!
//! Everything runs on real sockets with real TLS; nothing of weft's own is mocked.

// This is test support: a failed setup step should fail the test on the spot, with its message.
#![allow(clippy::unwrap_used)]

pub mod apps;
pub mod clients;
pub mod kubernetes;
pub mod mesh;
pub mod observe;
pub mod pods;
pub mod ports;
pub mod process;
pub mod reference;
pub mod wait;

pub use mesh::{Mesh, ProxyOptions};

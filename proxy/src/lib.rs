//! weft's sidecar proxy.
//!
//! A request from the local app enters [`outbound`], is detected ([`detect`]), and travels over a
//! pooled mutual-TLS HTTP/2 connection ([`pool`], [`tls`]) to the destination's proxy, whose
//! [`inbound`] side verifies the caller's identity and forwards to its app ([`app_client`]). The
//! certificate behind every handshake comes from the control plane ([`identity`]) and is swapped
//! in without restarts. Every request is counted, traced and logged by [`telemetry`]. [`build::start`] wires it all from a [`config::ProxyConfig`]. Before any
//! of it runs, [`init`] (`weft-proxy init`) points the pod's traffic at the proxy with iptables.

pub mod admin;
pub mod app;
pub mod config;
pub mod destination;
pub mod discovery;
pub mod http;
pub mod identity;
pub mod inbound;
pub mod init;
pub mod outbound;
pub mod policy;
pub mod resilience;
pub mod telemetry;
pub mod tls;
pub mod transport;

pub use app::{RunningProxy, StartError, start};
pub use config::{ProxyArgs, ProxyConfig};

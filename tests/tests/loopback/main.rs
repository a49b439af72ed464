//! The data path on a loopback mesh, all in this process: HTTP/1.1, HTTP/2, upgrades and
//! opaque TCP through two sidecars, refusals of bad certificates, rotation under traffic, real
//! TLS peers (curl, openssl), the admin server's limits, and the hardening against callers and
//! apps that break the rules.

// A failed step fails the test on the spot, with its message.
#![allow(clippy::unwrap_used)]

mod admin_limits;
mod h2_abuse;
mod h2_app_fairness;
mod h2_rapid_reset;
mod http1;
mod http_refusals;
mod inbound_headers;
mod mesh_http;
mod peers;
mod post_quantum;
mod refusals;
mod refused_streams;
mod rotation;
mod upgrade;

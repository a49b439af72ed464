//! weft's sidecar proxy.
//!
//! The modules follow a request. The app's request is accepted by [`transport`] (the original
//! destination, the connection limits, protocol detection, the drain at shutdown), goes over
//! [`http`] (the servers that read it, the bodies and headers both sides share, the clients
//! that send it on) through [`outbound`], where the client half of the [`policy`] picks the route
//! and [`resilience`] puts the timeouts, retries, breakers and limits around its attempts. A
//! [`destination`] (from [`discovery`]) holds the endpoints, the balancer and the breakers' state;
//! the attempt travels over a pooled mutual-TLS HTTP/2 connection ([`tls`]) to the endpoint's
//! proxy, whose [`inbound`] side verifies the caller's identity, applies the server half of the
//! policy and forwards to its app. The certificate behind every handshake comes from the control
//! plane ([`identity`]) and is swapped in without restarts. [`telemetry`] counts, traces and logs
//! every request and connection; [`admin`] serves the metrics and health endpoints. [`app`] wires
//! it all from a [`config::ProxyConfig`]. Before any of it runs, [`init`] (`weft-proxy init`)
//! points the pod's traffic at the proxy with iptables.

pub mod init; // weft-proxy init: the pod's iptables rules, before the proxy runs
pub mod config; // flags and environment, checked
pub mod app; // the one wiring place: a config in, a running proxy out
pub mod transport; // accept, original destination, detect, limits, drain, splice
pub mod tls; // mutual TLS with SPIFFE identities, the certificate store
pub mod http; // bodies, headers, errors, the HTTP servers and clients of both sides
pub mod outbound; // the app's connections and requests to other services
pub mod inbound; // connections and requests for this pod's app
pub mod policy; // the client and server halves of the policy, route matching
pub mod resilience; // timeouts, retries, breakers, limits, backoff
pub mod destination; // a destination's endpoints, balancer and breaker state
pub mod discovery; // watches of the control plane: destinations and server policies
pub mod identity; // the proxy's certificate from the control plane, renewed
pub mod telemetry; // metrics, spans, access logs and logging
pub mod admin; // the admin server: metrics, readiness, log level

pub use app::{RunningProxy, StartError, start};
pub use config::{ProxyArgs, ProxyConfig};

//! The Kubernetes side against a fake API server on loopback: discovery, ServicePolicy objects,
//! Gateway API routes, service-account tokens, `weft check`, the injection webhook, and the
//! manifests.

// A failed step fails the test on the spot, with its message.
#![allow(clippy::unwrap_used)]

mod fake_apiserver;
mod gateway_routes;
mod injection;
mod kubernetes_discovery;
mod kubernetes_policy;
mod kubernetes_tokens;
mod manifests;
mod service_account_tokens;
mod weft_check;
mod weft_views;

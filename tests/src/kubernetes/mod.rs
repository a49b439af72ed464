//! Kubernetes without a cluster: an API server on loopback that the control plane's real kube
//! client talks to ([`fake_apiserver`]), and service-account tokens shaped like the ones it
//! issues ([`sa_token`]).

pub mod fake_apiserver;
pub mod sa_token;

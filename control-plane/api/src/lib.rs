//! The contract between weft proxies and the control plane, generated from `proto/`.
//!
//! Both sides depend on this crate and nothing else of each other: the proxy never links the
//! control plane. The code is generated at build time by protox (a pure-Rust protobuf compiler)
//! and tonic-prost-build, so a build needs only cargo.

/// `weft.identity.v1`: certificate issuance.
pub mod identity {
    #![allow(clippy::all, missing_docs, unreachable_pub)]
    tonic::include_proto!("weft.identity.v1");
}

/// `weft.discovery.v1`: destination resolution as a live stream.
pub mod discovery {
    #![allow(clippy::all, missing_docs, unreachable_pub)]
    tonic::include_proto!("weft.discovery.v1");
}

/// `weft.policy.v1`: the client half of a ServicePolicy, as the control plane sends it.
pub mod policy {
    #![allow(clippy::all, missing_docs, unreachable_pub)]
    tonic::include_proto!("weft.policy.v1");
}

pub mod policy_defaults;

/// The gRPC port the control plane listens on.
pub const CONTROL_PLANE_PORT: u16 = 15010;

/// Response metadata key carrying a refusal's stable, machine-readable reason.
pub const REFUSAL_METADATA_KEY: &str = "weft-refusal";

//! The contract between weft proxies and the control plane, generated from `proto/`.
//!
//! Both sides depend on this crate and nothing else of each other: the proxy never links the
//! control plane. The code is generated at build time by protox (a pure-Rust protobuf compiler)
//! and tonic-prost-build, so a build needs only cargo.

/// The generated packages, nested as prost expects (`weft.discovery.v1` refers to
/// `weft.policy.v1` as `super::super::policy::v1`); used through the flat names below.
pub mod weft {
    pub mod identity {
        pub mod v1 {
            #![allow(clippy::all, missing_docs, unreachable_pub)]
            tonic::include_proto!("weft.identity.v1");
        }
    }
    pub mod discovery {
        pub mod v1 {
            #![allow(clippy::all, missing_docs, unreachable_pub)]
            tonic::include_proto!("weft.discovery.v1");
        }
    }
    pub mod policy {
        pub mod v1 {
            #![allow(clippy::all, missing_docs, unreachable_pub)]
            tonic::include_proto!("weft.policy.v1");
        }
    }
}

/// `weft.identity.v1`: certificate issuance.
pub use weft::identity::v1 as identity;

/// `weft.discovery.v1`: destination resolution as a live stream.
pub use weft::discovery::v1 as discovery;

/// `weft.policy.v1`: the client half of a ServicePolicy, and the Gateway API route table of a
/// Service port, as the control plane sends them.
pub use weft::policy::v1 as policy;

pub mod duration;
pub mod policy_defaults;

/// The gRPC port the control plane listens on.
pub const CONTROL_PLANE_PORT: u16 = 15010;

/// Response metadata key carrying a refusal's stable, machine-readable reason.
pub const REFUSAL_METADATA_KEY: &str = "weft-refusal";

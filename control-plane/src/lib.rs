//! weft's control plane: the certificate authority that names every workload and the services
//! proxies talk to. The `weft` command line (the `weft-cli` crate) builds on this library.
//!
//! - [`server::start`] builds and runs a control plane from a [`ControlPlaneConfig`];
//! - [`identity_service`] implements `weft.identity.v1.Identity/Certify`;
//! - [`discovery`] implements `weft.discovery.v1.Discovery/Watch` from a file of services;
//! - [`policy`] checks ServicePolicy documents and merges them into effective client policies;
//! - [`authn`] decides who a caller is (bootstrap tokens, Kubernetes service-account tokens);
//! - [`kubernetes`] connects to the API server for the Kubernetes sources (`--kubernetes`);
//! - [`inject`] adds the sidecar to pods: the admission webhook and `weft inject`;
//! - [`ca_store`] loads the operator's CA or keeps a generated one in the data directory.

pub mod admin;
pub mod authn;
pub mod ca_secret;
pub mod ca_store;
pub mod config;
pub mod discovery;
pub mod empty_file;
pub mod grpc_server;
pub mod identity_service;
pub mod inject;
pub mod kubernetes;
pub mod logging;
pub mod metrics;
pub mod peer;
pub mod policy;
pub mod reload;
pub mod routes;
pub mod server;
pub mod serving_tls;
pub mod yaml;

pub use config::ControlPlaneConfig;
pub use server::{RunningControlPlane, start};

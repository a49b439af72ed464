//! HTTP, shared by the inbound and the outbound side.

pub mod body;
pub mod client;
pub mod error;
pub mod headers;
pub mod server;
pub mod upgrade;

/// The error of every body and HTTP connection the proxy handles.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

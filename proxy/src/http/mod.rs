//! HTTP, shared by the inbound and the outbound side.

pub mod body;
pub mod client;
pub mod error;
pub mod headers;
pub mod server;
pub mod upgrade;

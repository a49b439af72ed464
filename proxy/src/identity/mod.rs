//! The proxy's own identity: fetching and renewing its certificate from the control plane.

pub mod call_error;
mod client;
pub mod control_plane;
pub mod refresh;
mod token;

pub use client::IdentityClient;
pub use token::TokenSource;

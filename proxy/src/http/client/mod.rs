//! The HTTP clients.

pub mod app;
pub mod h1_pool;
pub mod h2_pool;

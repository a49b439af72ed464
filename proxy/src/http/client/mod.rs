//! The HTTP clients: [`h2_pool`], one multiplexed HTTP/2 connection per peer proxy (and per
//! caller to an HTTP/2 app); [`h1_pool`], keep-alive HTTP/1.1 connections to the app; and
//! [`app`], which picks between them for the receiving proxy's app.

pub mod app;
pub mod h1_pool;
pub mod h2_pool;

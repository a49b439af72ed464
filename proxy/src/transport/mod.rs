//! Sockets: listening, replaying detected bytes, and splicing two streams together.

mod prefixed;
mod splice;

pub use prefixed::PrefixedIo;
pub use splice::splice;

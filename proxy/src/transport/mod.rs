//! Sockets: listening, replaying detected bytes, and splicing two streams together.

mod accept;
mod prefixed;
mod splice;

pub use accept::accept_loop;
pub use prefixed::PrefixedIo;
pub use splice::splice;

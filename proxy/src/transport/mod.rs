//! Sockets: listening, original destinations, replaying detected bytes, and splicing two streams together.

mod accept;
mod orig_dst;
mod prefixed;
mod splice;

pub use accept::accept_loop;
pub use orig_dst::{OrigDstAddr, original_dst};
pub use prefixed::PrefixedIo;
pub use splice::splice;

//! Sockets: listening, draining, limits, original destinations, replaying bytes read ahead,
//! counting bytes, and splicing two streams together.

mod accept;
mod connection;
mod counted;
pub mod detect;
pub mod drain;
mod limit;
mod listen;
mod orig_dst;
pub mod port_protocol;
mod prefixed;
mod splice;

pub use accept::{accept_draining, accept_loop};
pub use connection::{BoxedConnection, Connection};
pub use counted::CountedIo;
pub use drain::{Drain, Listening};
pub use limit::{ConnectionLimit, ConnectionSlot};
pub use listen::{bind_any_family, bind_loopback_twin, loopback_twin};
pub use orig_dst::{OrigDstAddr, original_dst};
pub use prefixed::PrefixedIo;
pub use splice::splice;

//! Mutual TLS between proxies: the certificate store, SPIFFE verification, connecting and
//! accepting, and naming what went wrong when a handshake fails.

pub mod alpn;
mod connect;
mod error;
mod store;
mod verify;

pub use connect::{ConnectError, connect, is_local_reason};
pub use error::{HandshakeFailure, classify, classify_rustls};
pub use store::{Credentials, InstallError, TlsStore};
pub use verify::{IdentityMismatch, SpiffeServerVerifier, identity_of, peer_identity};

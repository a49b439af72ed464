//! The one connection type HTTP is served and sent on.

use tokio::io::{AsyncRead, AsyncWrite};

/// Any connection HTTP runs on. hyper's HTTP/1 server and `h2` are generic over their transport,
/// and the proxy has several (plaintext and mutual TLS inbound, each counted, the app's
/// connections outbound; to peers and to HTTP/2 apps in [`crate::http::client::h2_pool`]):
/// behind one boxed type that code is compiled once per role, not once per transport, which
/// keeps the binary's resident code (and so an idle sidecar's memory) smaller. A read or write
/// through the box costs one indirect call.
pub trait Connection: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Connection for T {}

/// A connection to serve HTTP on (see [`Connection`]).
pub type BoxedConnection = Box<dyn Connection>;

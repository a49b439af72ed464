//! Where an intercepted connection was going before iptables redirected it to the proxy.
//!
//! `weft-proxy init` installs `REDIRECT` rules, which rewrite a connection's destination to a
//! proxy port; the kernel's connection tracking remembers the original, and `SO_ORIGINAL_DST`
//! (`IP6T_SO_ORIGINAL_DST` for IPv6) reads it back. A connection that was not redirected (a
//! client that dialled the proxy port itself) either has no tracked original or one equal to the
//! socket's own address; both mean "no original destination".

use std::net::SocketAddr;

use tokio::net::TcpStream;

/// The address an intercepted connection's client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrigDstAddr(pub SocketAddr);

impl std::fmt::Display for OrigDstAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The original destination of `tcp`, or `None` if it was not redirected.
pub fn original_dst(tcp: &TcpStream) -> Option<OrigDstAddr> {
    let local = tcp.local_addr().ok()?;
    // A v4 connection accepted on a dual-stack socket reports a v4-mapped local address.
    let local = SocketAddr::new(local.ip().to_canonical(), local.port());
    let socket = socket2::SockRef::from(tcp);
    let original = match local {
        SocketAddr::V4(_) => socket.original_dst_v4(),
        SocketAddr::V6(_) => socket.original_dst_v6(),
    };
    let original = original.ok()?.as_socket()?;
    let original = SocketAddr::new(original.ip().to_canonical(), original.port());
    (original != local).then_some(OrigDstAddr(original))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_that_was_not_redirected_has_no_original_destination() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert_eq!(original_dst(&accepted), None);
    }
}

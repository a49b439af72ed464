//! Listening so that the proxy receives every connection `weft-proxy init` redirects to it.
//!
//! `init` writes the same `REDIRECT` rules with ip6tables as with iptables (unless `--ipv6 off`
//! or the kernel has no IPv6). A redirected connection keeps its family and arrives at the proxy
//! port on an address of that family: an inbound one at the pod's own address, an outbound one
//! (opened inside the pod) at loopback, `127.0.0.1` or `::1`. A listener of one family only would
//! leave the other family's redirected connections with nobody to accept them: the app's IPv6
//! connections would fail although the network could carry them. So:
//!
//! - The inbound listener's default `[::]` is one dual-stack socket (`IPV6_V6ONLY` off) taking
//!   both families; an IPv4 caller shows up as a v4-mapped address, which
//!   [`super::original_dst`] turns back into IPv4. On a kernel without IPv6 it falls back to
//!   `0.0.0.0` at the same port, with a log line.
//! - The outbound listener must stay on loopback (on a pod address it would be an open relay
//!   with the pod's identity), and no one socket covers both `127.0.0.1` and `::1`. So a
//!   loopback address gets a twin on the other family's loopback at the same port, skipped with
//!   a log line when the kernel has no IPv6 (or `::1` is not configured).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

/// As tokio's default for `TcpListener::bind`.
const BACKLOG: i32 = 1024;

/// Binds `addr`; `[::]` dual-stack, or `0.0.0.0` at the same port if IPv6 is unavailable.
pub fn bind_any_family(addr: SocketAddr, what: &str) -> io::Result<TcpListener> {
    if addr.ip() != IpAddr::V6(Ipv6Addr::UNSPECIFIED) {
        return bind(addr);
    }
    match bind(addr) {
        Err(e) if family_unavailable(&e) => {
            let v4 = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), addr.port());
            tracing::info!(
                "{what} listener: cannot listen on {addr} ({e}): IPv6 seems unavailable; \
                 listening on {v4}, IPv4 only"
            );
            bind(v4)
        }
        result => result,
    }
}

/// For an address on loopback with a fixed port, the same port on the other family's loopback
/// (`127.0.0.1:15001` ↔ `[::1]:15001`). Port 0 has no twin: a random port is nobody's
/// redirect target.
pub fn loopback_twin(addr: SocketAddr) -> Option<SocketAddr> {
    if !addr.ip().is_loopback() || addr.port() == 0 {
        return None;
    }
    let ip: IpAddr = match addr.ip() {
        IpAddr::V4(_) => Ipv6Addr::LOCALHOST.into(),
        IpAddr::V6(_) => Ipv4Addr::LOCALHOST.into(),
    };
    Some(SocketAddr::new(ip, addr.port()))
}

/// Binds `addr`'s [`loopback_twin`], if it has one; `Ok(None)` (with a log line) if its family
/// is unavailable. Any other failure (the port taken) is an error: connections redirected there
/// would reach someone else.
pub fn bind_loopback_twin(addr: SocketAddr, what: &str) -> io::Result<Option<TcpListener>> {
    let Some(twin) = loopback_twin(addr) else {
        return Ok(None);
    };
    match bind(twin) {
        Ok(listener) => Ok(Some(listener)),
        Err(e) if family_unavailable(&e) => {
            tracing::info!("{what} listener: not listening on {twin} ({e}); {addr} only");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// A failure that says the address family (or this address of it) does not work here, rather
/// than that the port is taken or forbidden (which would fail the same in the other family).
fn family_unavailable(e: &io::Error) -> bool {
    !matches!(
        e.kind(),
        io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied
    )
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        // Explicit, whatever net.ipv6.bindv6only says: `[::]` means both families.
        socket.set_only_v6(addr.ip() != IpAddr::V6(Ipv6Addr::UNSPECIFIED))?;
    }
    // As tokio's `TcpListener::bind` does: a restarted proxy can rebind at once.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv6_works() -> bool {
        std::net::TcpListener::bind("[::1]:0").is_ok()
    }

    #[tokio::test]
    async fn the_unspecified_ipv6_address_takes_both_families() {
        if !ipv6_works() {
            eprintln!("skipped: this machine has no IPv6 loopback");
            return;
        }
        let listener = bind_any_family("[::]:0".parse().unwrap(), "test").unwrap();
        let port = listener.local_addr().unwrap().port();
        for client in ["127.0.0.1", "::1"] {
            let ip: IpAddr = client.parse().unwrap();
            let _tcp = tokio::net::TcpStream::connect((ip, port)).await.unwrap();
            let (_, peer) = listener.accept().await.unwrap();
            assert_eq!(peer.ip().to_canonical(), ip);
        }
    }

    #[test]
    fn a_loopback_address_has_a_twin_of_the_other_family() {
        let twin = |a: &str| loopback_twin(a.parse().unwrap()).map(|t| t.to_string());
        assert_eq!(twin("127.0.0.1:15001").as_deref(), Some("[::1]:15001"));
        assert_eq!(twin("[::1]:15001").as_deref(), Some("127.0.0.1:15001"));
        assert_eq!(twin("127.0.0.1:0"), None);
        assert_eq!(twin("10.0.0.1:15001"), None);
        assert_eq!(twin("0.0.0.0:15001"), None);
    }
}

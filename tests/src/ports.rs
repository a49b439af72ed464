//! Ports for programs that must be told one (most of the harness binds port 0 and reads back
//! the address instead), and for listeners a test stops and starts again on the same address.

use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicU16, Ordering};

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where [`restartable_port`] looks: below Linux's ephemeral range (`ip_local_port_range`
/// starts at 32768), so no `bind(0)` and no outgoing connection is ever given one of these.
const RESTARTABLE: std::ops::Range<u16> = 20_000..32_000;

/// A port free on 127.0.0.1 that stays free while the listener holding it is down.
///
/// A port from [`free_port`] is an ephemeral port: once the listener on it stops, the kernel
/// may hand it to any other socket of the many tests running at once (a client's local port),
/// and a restart on the same address fails with "address in use". Ports from here come from a
/// range the kernel never allocates, each handed out once per test process (a counter from an
/// offset per process), and checked free when handed out.
pub fn restartable_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let span = RESTARTABLE.end - RESTARTABLE.start;
    // Different test processes (cargo nextest, two `cargo test`s) start at different places.
    let offset = (std::process::id() % u32::from(span)) as u16;
    for _ in 0..span {
        let step = NEXT.fetch_add(1, Ordering::Relaxed) % span;
        let port = RESTARTABLE.start + (offset + step) % span;
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {RESTARTABLE:?} on 127.0.0.1");
}

//! What a mutual-TLS handshake between two sidecars costs, with the post-quantum key exchange
//! (`X25519MLKEM768`, weft's default) and with X25519 alone, measured on the proxy's own TLS
//! configs (a CA-signed P-256 certificate each, TLS 1.3, client certificate verified), in memory:
//! no sockets, so the number is the CPU of one handshake on both sides together.
//!
//! `cargo run --release -p weft-proxy --example handshake_cost [handshakes] [pq|classical]`
//!
//! Wall-clock numbers vary with the machine's load; instruction counts do not: run it under
//! `valgrind --tool=callgrind` with 0 and with N handshakes for one group and divide the
//! difference by N.

#![allow(clippy::unwrap_used)] // a benchmark: any failure is a bug to see at once

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::crypto::CryptoProvider;
use rustls::{ClientConnection, NamedGroup, ServerConnection};
use weft_certs::{CertificateAuthority, SpiffeId, TrustBundle, tls_provider};
use weft_proxy::tls::TlsStore;
use weft_proxy::tls::alpn::MESH_H2;

fn main() {
    let handshakes: u32 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let ca =
        CertificateAuthority::generate("cluster.local", Duration::from_secs(3600)).expect("a CA");
    let classical = {
        let mut provider = tls_provider();
        provider
            .kx_groups
            .retain(|g| g.name() != NamedGroup::X25519MLKEM768);
        provider
    };
    let only = std::env::args().nth(2);
    for (name, provider) in [("pq", tls_provider()), ("classical", classical)] {
        if only.as_deref().is_some_and(|only| only != name) {
            continue;
        }
        let (per_handshake, group, hello) = measure(&ca, provider, handshakes);
        println!(
            "{name:>9}: {:>7.1} µs per handshake (both sides, {handshakes} handshakes), negotiated {group:?}, ClientHello {hello} bytes",
            per_handshake.as_secs_f64() * 1e6
        );
    }
}

fn store(ca: &CertificateAuthority, account: &str, provider: &Arc<CryptoProvider>) -> TlsStore {
    let id: SpiffeId = format!("spiffe://cluster.local/ns/demo/sa/{account}")
        .parse()
        .unwrap();
    let store = TlsStore::new(id.clone(), ca.trust_bundle().clone(), provider.clone()).unwrap();
    let issued = ca
        .certify(&store.csr().unwrap(), &id, Duration::from_secs(3600))
        .unwrap();
    let bundle: TrustBundle = ca.trust_bundle().clone();
    store
        .install(issued.leaf, issued.intermediates, bundle)
        .unwrap();
    store
}

fn measure(
    ca: &CertificateAuthority,
    provider: CryptoProvider,
    handshakes: u32,
) -> (Duration, Option<NamedGroup>, usize) {
    let provider = Arc::new(provider);
    let client = store(ca, "web", &provider).current().unwrap();
    let server = store(ca, "hello", &provider).current().unwrap();
    let hello_id: SpiffeId = "spiffe://cluster.local/ns/demo/sa/hello".parse().unwrap();
    let (client_config, server_config) = (
        client.client_config(&hello_id, MESH_H2),
        server.server_config(),
    );
    let mut group = None;
    let mut hello_len = 0;
    let started = Instant::now();
    for _ in 0..handshakes {
        let name = "hello.mesh".try_into().unwrap();
        let mut c = ClientConnection::new(client_config.clone(), name).unwrap();
        let mut s = ServerConnection::new(server_config.clone()).unwrap();
        let mut first = true;
        while c.is_handshaking() || s.is_handshaking() {
            let mut buf = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut buf).unwrap();
            }
            if first {
                hello_len = buf.len();
                first = false;
            }
            s.read_tls(&mut buf.as_slice()).unwrap();
            s.process_new_packets().unwrap();
            let mut buf = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut buf).unwrap();
            }
            c.read_tls(&mut buf.as_slice()).unwrap();
            c.process_new_packets().unwrap();
        }
        group = c.negotiated_key_exchange_group().map(|g| g.name());
    }
    (started.elapsed() / handshakes.max(1), group, hello_len)
}

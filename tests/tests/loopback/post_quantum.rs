//! Between sidecars and to the control plane, the key exchange is the hybrid post-quantum
//! `X25519MLKEM768` when both sides speak it, and classical X25519 with a client that does not.

use std::time::Duration;

use rustls::NamedGroup;
use weft_proxy::tls::alpn;
use weft_tests::apps::HttpApp;
use weft_tests::clients::tls_probe::{connect, connect_with};
use weft_tests::mesh::identity;
use weft_tests::{Mesh, ProxyOptions};

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn sidecars_and_the_control_plane_negotiate_x25519mlkem768_and_still_serve_classical_clients()
{
    let mesh = Mesh::start(HOUR).await;
    let app = HttpApp::start("hello").await;
    let server = mesh.proxy("hello", ProxyOptions::app(app.addr)).await;
    let bundle = mesh.trust_bundle();
    let hello = identity("hello");

    // A client with weft's own TLS configuration, as the caller's sidecar is.
    let tls = connect_with(
        weft_certs::tls_provider(),
        server.inbound_addr,
        alpn::MESH_H2,
        &bundle,
        &hello,
        Some(mesh.client_cert("web")),
    )
    .await
    .unwrap();
    assert_eq!(group(&tls), Some(NamedGroup::X25519MLKEM768));

    // A classical TLS 1.3 client is served as before.
    let tls = connect(
        server.inbound_addr,
        alpn::MESH_H2,
        &bundle,
        &hello,
        Some(mesh.client_cert("web")),
    )
    .await
    .unwrap();
    assert_eq!(group(&tls), Some(NamedGroup::X25519));

    // The control plane's gRPC port, as a proxy reaches it.
    let control_plane = "spiffe://cluster.local/ns/weft-system/sa/weft-control-plane"
        .parse()
        .unwrap();
    let tls = connect_with(
        weft_certs::tls_provider(),
        mesh.control_plane_addr,
        b"h2",
        &bundle,
        &control_plane,
        None,
    )
    .await
    .unwrap();
    assert_eq!(group(&tls), Some(NamedGroup::X25519MLKEM768));
}

/// The key exchange group a finished handshake negotiated.
fn group(tls: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> Option<NamedGroup> {
    tls.get_ref()
        .1
        .negotiated_key_exchange_group()
        .map(|g| g.name())
}

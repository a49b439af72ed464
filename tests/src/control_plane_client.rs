//! Acting as a proxy toward the control plane's gRPC port: a [`TlsStore`] holding a certificate
//! from the mesh CA (signed here from the CA files, no Certify round trip), and discovery clients
//! that present it, or none.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tonic::transport::Channel;
use weft_api::discovery::Resolution;
use weft_api::discovery::discovery_client::DiscoveryClient;
use weft_certs::{CertificateAuthority, SpiffeId};
use weft_control_plane::RunningControlPlane;
use weft_proxy::identity::control_plane;
use weft_proxy::tls::TlsStore;

/// A store for `identity` with a certificate from the CA in `ca_cert`/`ca_key` (PEM files, the
/// signing certificate first) living `lifetime`.
pub fn certified_store(
    identity: &SpiffeId,
    ca_cert: &Path,
    ca_key: &Path,
    lifetime: Duration,
) -> Arc<TlsStore> {
    let ca = CertificateAuthority::from_pem(
        &std::fs::read(ca_cert).unwrap(),
        &std::fs::read_to_string(ca_key).unwrap(),
        None,
    )
    .unwrap();
    let store = uncertified_store(identity, &ca);
    let issued = ca
        .certify(&store.csr().unwrap(), identity, lifetime)
        .unwrap();
    store
        .install(issued.leaf, issued.intermediates, ca.trust_bundle().clone())
        .unwrap();
    store
}

/// A store for `identity` trusting `ca`'s roots, with no certificate (a proxy before Certify).
pub fn uncertified_store(identity: &SpiffeId, ca: &CertificateAuthority) -> Arc<TlsStore> {
    Arc::new(
        TlsStore::new(
            identity.clone(),
            ca.trust_bundle().clone(),
            Arc::new(weft_certs::tls_provider()),
        )
        .unwrap(),
    )
}

/// The store of a control plane that keeps its CA in its data directory `data_dir`.
pub fn certified_by_data_dir(identity: &SpiffeId, data_dir: &Path) -> Arc<TlsStore> {
    certified_store(
        identity,
        &data_dir.join("ca.pem"),
        &data_dir.join("ca-key.pem"),
        Duration::from_secs(3600),
    )
}

/// A discovery client of `control_plane` whose connections present `store`'s certificate (or
/// none, if `present` is false), as a proxy's watches do.
pub fn discovery_client(
    control_plane: &RunningControlPlane,
    store: Arc<TlsStore>,
    present: bool,
) -> DiscoveryClient<Channel> {
    discovery_client_at(
        &control_plane.grpc_addr.to_string(),
        &control_plane.identity,
        store,
        present,
    )
}

/// [`discovery_client`] for a control plane at `addrs` proving `identity`.
pub fn discovery_client_at(
    addrs: &str,
    identity: &SpiffeId,
    store: Arc<TlsStore>,
    present: bool,
) -> DiscoveryClient<Channel> {
    let channel = control_plane::channel_with(
        addrs,
        identity.clone(),
        store,
        control_plane::DEFAULT_KEEPALIVE,
        present,
    )
    .unwrap();
    DiscoveryClient::new(channel)
}

/// A discovery client for `control_plane` presenting a certificate of `demo/<account>` from the
/// control plane's own CA (read from its data directory), as a proxy's watches do.
pub fn mesh_discovery_client(
    control_plane: &RunningControlPlane,
    account: &str,
) -> DiscoveryClient<Channel> {
    let data_dir = control_plane
        .trust_bundle_path
        .parent()
        .expect("the trust bundle lives in the data directory");
    let store = certified_by_data_dir(&crate::mesh::identity(account), data_dir);
    discovery_client(control_plane, store, true)
}

/// The next answer of a discovery watch, which must come within `deadline`.
pub async fn next_resolution(
    stream: &mut tonic::Streaming<Resolution>,
    deadline: Duration,
) -> Resolution {
    tokio::time::timeout(deadline, stream.message())
        .await
        .unwrap_or_else(|_| panic!("a message within {deadline:?}"))
        .expect("no stream error")
        .expect("the stream is open")
}

/// Nothing arrives on the watch for `quiet` (and the stream does not end).
pub async fn no_resolution(stream: &mut tonic::Streaming<Resolution>, quiet: Duration, what: &str) {
    if let Ok(message) = tokio::time::timeout(quiet, stream.message()).await {
        panic!("expected no message ({what}), got {message:?}");
    }
}

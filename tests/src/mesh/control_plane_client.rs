//! Acting as a proxy toward the control plane's gRPC port: a [`TlsStore`] holding a certificate
//! from the mesh CA (signed here from the CA files, no Certify round trip), and discovery clients
//! that present it, or none.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};
use weft_api::discovery::discovery_client::DiscoveryClient;
use weft_api::discovery::{Resolution, WatchRequest};
use weft_api::identity::identity_client::IdentityClient;
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

/// An Identity client of the control plane at `addr` (which must prove `control_plane`'s
/// identity to `store`'s trust anchors) whose connections come from the local address `source`,
/// such as `127.0.0.2`: the control plane tells callers apart by their address, as it tells
/// pods apart. It presents no certificate, as a proxy's Certify calls do not.
pub fn identity_client_from(
    source: IpAddr,
    addr: SocketAddr,
    control_plane: &SpiffeId,
    store: &TlsStore,
) -> IdentityClient<Channel> {
    let config = Arc::new(store.control_plane_config(control_plane).unwrap());
    let connector = tower::service_fn(move |_: Uri| {
        let config = config.clone();
        async move {
            let socket = match source {
                IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
            };
            socket.bind(SocketAddr::new(source, 0))?;
            let tcp = socket.connect(addr).await?;
            let tls = TlsConnector::from(config)
                .connect(ServerName::from(addr.ip()), tcp)
                .await?;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    });
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_with_connector_lazy(connector);
    IdentityClient::new(channel)
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

/// A discovery watch of `address`, as a proxy's outbound side opens it.
pub async fn watch(
    client: &DiscoveryClient<Channel>,
    address: &str,
) -> Result<tonic::Streaming<Resolution>, tonic::Status> {
    client
        .clone()
        .watch(WatchRequest {
            address: address.to_owned(),
            server: false,
        })
        .await
        .map(tonic::Response::into_inner)
}

/// The next answer of a discovery watch, which must come within `deadline`.
pub async fn next(stream: &mut tonic::Streaming<Resolution>, deadline: Duration) -> Resolution {
    tokio::time::timeout(deadline, stream.message())
        .await
        .unwrap_or_else(|_| panic!("a message within {deadline:?}"))
        .expect("no stream error")
        .expect("the stream is open")
}

/// Nothing arrives on the watch for `quiet` (and the stream does not end).
pub async fn quiet(stream: &mut tonic::Streaming<Resolution>, quiet: Duration, what: &str) {
    if let Ok(message) = tokio::time::timeout(quiet, stream.message()).await {
        panic!("expected no message ({what}), got {message:?}");
    }
}

//! The gRPC channel to the control plane, over TLS verified by SPIFFE identity.
//!
//! tonic's own TLS verifies DNS names; the control plane is verified like any mesh peer (chain to
//! the trust anchors, then its SPIFFE ID), so the channel gets a connector that does exactly that.
//! The channel is lazy and reconnects by itself: a control plane that is down makes calls fail
//! fast (the identity client backs off and retries), and one that comes back is reused.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};
use weft_certs::SpiffeId;

use crate::tls::{TlsStore, classify};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A channel to `addr` (`host:port`) that accepts only a server proving `identity`.
pub fn channel(
    addr: &str,
    identity: SpiffeId,
    store: Arc<TlsStore>,
) -> Result<Channel, tonic::transport::Error> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .tcp_nodelay(true);
    let target = addr.to_owned();
    let connector = tower::service_fn(move |_: Uri| {
        let (target, identity, store) = (target.clone(), identity.clone(), store.clone());
        async move {
            let config = store
                .control_plane_config(&identity)
                .map_err(|e| io::Error::other(e.to_string()))?;
            let tcp = TcpStream::connect(&target).await?;
            tcp.set_nodelay(true)?;
            let server_name = server_name(&target)?;
            let tls = TlsConnector::from(Arc::new(config))
                .connect(server_name, tcp)
                .await
                .map_err(|e| {
                    io::Error::other(format!(
                        "TLS with the control plane at {target} failed: {}",
                        classify(&e)
                    ))
                })?;
            Ok::<_, io::Error>(TokioIo::new(tls))
        }
    });
    Ok(endpoint.connect_with_connector_lazy(connector))
}

fn server_name(target: &str) -> io::Result<ServerName<'static>> {
    let host = target
        .rsplit_once(':')
        .map(|(host, _port)| host)
        .unwrap_or(target)
        .trim_start_matches('[')
        .trim_end_matches(']');
    ServerName::try_from(host.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{target}: {e}")))
}

//! Who may tap a sidecar: from outside the pod, plain HTTP is refused, and over TLS only a mesh
//! identity named by `--tap-allow`; a TLS caller without a mesh certificate fails its
//! handshake. An admin server alone (no mesh), served connections whose peer address the test
//! chooses.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use weft_certs::CertificateAuthority;
use weft_proxy::admin::Admin;
use weft_proxy::telemetry::metrics::Metrics;
use weft_proxy::telemetry::tap::TapHub;
use weft_proxy::tls::TlsStore;
use weft_tests::mesh::identity;
use weft_tests::wait;

const DEADLINE: Duration = Duration::from_secs(10);

/// A mesh certificate for `account`, issued by `ca`, in a store trusting it.
fn certified(ca: &CertificateAuthority, account: &str) -> Arc<TlsStore> {
    let id = identity(account);
    let store = TlsStore::new(
        id.clone(),
        ca.trust_bundle().clone(),
        Arc::new(weft_certs::tls_provider()),
    )
    .unwrap();
    let issued = ca
        .certify(&store.csr().unwrap(), &id, Duration::from_secs(3600))
        .unwrap();
    store
        .install(issued.leaf, issued.intermediates, ca.trust_bundle().clone())
        .unwrap();
    Arc::new(store)
}

/// `web`'s admin server, alone, letting `dashboard` tap over TLS (`--tap-allow`).
fn admin_server(ca: &CertificateAuthority) -> Arc<Admin> {
    let metrics = Arc::new(Metrics::new());
    Arc::new(Admin {
        store: certified(ca, "web"),
        tap: Arc::new(TapHub::new(metrics.tap.clone())),
        tap_allow: vec![identity("dashboard")],
        metrics,
        config: serde_json::json!({}),
        forwards: Vec::new(),
        discovery: None,
        log_level: None,
        header_read_timeout: weft_proxy::admin::HEADER_READ_TIMEOUT,
        stall_timeout: weft_proxy::admin::STALL_TIMEOUT,
        draining: CancellationToken::new(),
    })
}

/// A connection to `admin` served as if it came from the pod network: every 127/8 address is
/// loopback, so the peer address is what the test chooses.
async fn from_outside(admin: &Arc<Admin>) -> TcpStream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (accepted, _) = listener.accept().await.unwrap();
    let outside: SocketAddr = "10.1.2.3:40000".parse().unwrap();
    tokio::spawn(admin.clone().serve_connection(accepted, outside));
    tcp
}

/// `GET /tap` on `io`: the open stream, or the status and body of a refusal.
async fn get_tap<S>(io: S) -> Result<hyper::body::Incoming, (u16, String)>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = http::Request::get("/tap")
        .header("host", "admin")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    if status == 200 {
        return Ok(response.into_body());
    }
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Err((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Over TLS to `admin` from outside, presenting `account`'s mesh certificate.
async fn tls_from_outside(
    admin: &Arc<Admin>,
    ca: &CertificateAuthority,
    account: &str,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let config = certified(ca, account)
        .current()
        .unwrap()
        .client_config(&identity("web"), b"http/1.1");
    let name = rustls::pki_types::ServerName::try_from("admin").unwrap();
    tokio_rustls::TlsConnector::from(config)
        .connect(name, from_outside(admin).await)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_loopback_only_an_allowed_mesh_identity_may_tap() {
    let ca = CertificateAuthority::generate("cluster.local", Duration::from_secs(3600)).unwrap();
    let admin = admin_server(&ca);
    let refused = |reason: &str| admin.metrics.tap.refused.with_label_values(&[reason]).get();

    // Plain HTTP from the pod network: no identity, refused.
    let (status, body) = get_tap(from_outside(&admin).await).await.unwrap_err();
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body,
        "tap is served only to loopback callers (use kubectl port-forward) and to identities \
         in --tap-allow over TLS\n"
    );
    assert_eq!(refused("not_loopback"), 1);

    // A mesh identity not in --tap-allow, over TLS.
    let (status, body) = get_tap(tls_from_outside(&admin, &ca, "intruder").await)
        .await
        .unwrap_err();
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body,
        "spiffe://cluster.local/ns/demo/sa/intruder may not tap this sidecar (it is not in \
         --tap-allow)\n"
    );
    assert_eq!(refused("identity_not_allowed"), 1);
    assert_eq!(admin.metrics.tap.sessions_total.get(), 0);
    assert!(!admin.tap.tapping());

    // The identity --tap-allow names: a session opens.
    let _stream = get_tap(tls_from_outside(&admin, &ca, "dashboard").await)
        .await
        .unwrap();
    assert_eq!(admin.metrics.tap.sessions_total.get(), 1);
    assert!(admin.tap.tapping());

    // A TLS client without a certificate never gets an answer.
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(weft_certs::tls_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer))
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("admin").unwrap();
    let connected = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, from_outside(&admin).await)
        .await;
    if let Ok(mut tls) = connected {
        // TLS 1.3: the server's refusal of the missing certificate comes after the handshake.
        let _ = tls
            .write_all(b"GET /tap HTTP/1.1\r\nhost: admin\r\n\r\n")
            .await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(DEADLINE, tls.read_to_end(&mut answer)).await;
        assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    }
    let closed = admin
        .metrics
        .admin
        .connections_closed
        .with_label_values(&["tls_handshake"]);
    wait::until(DEADLINE, "the handshake failure counted", || async {
        (closed.get() == 1).then_some(())
    })
    .await;
    assert_eq!(admin.metrics.tap.sessions_total.get(), 1);
}

/// Accepts any server certificate: for a client that must fail on its own missing one.
#[derive(Debug)]
struct AnyServer;

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        weft_certs::tls_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

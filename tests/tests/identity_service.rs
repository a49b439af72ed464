//! The control plane's Certify call over real gRPC and TLS: one success, and each refusal with
//! its own status, message, reason metadata and metric.

#![allow(clippy::unwrap_used)] // a failed step fails the test, with its message

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{CertificateParams, DistinguishedName, KeyPair, SanType};
use weft_api::identity::CertifyRequest;
use weft_api::identity::identity_client::IdentityClient;
use weft_certs::SpiffeId;
use weft_proxy::identity::control_plane;
use weft_proxy::tls::TlsStore;
use weft_tests::Mesh;
use weft_tests::mesh::{identity, token};

fn csr_with(alg: &'static rcgen::SignatureAlgorithm, id: &SpiffeId) -> Vec<u8> {
    let key = KeyPair::generate_for(alg).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![SanType::URI(id.to_string().try_into().unwrap())];
    params.serialize_request(&key).unwrap().der().to_vec()
}

#[tokio::test]
async fn certify_issues_and_refuses_with_distinct_statuses() {
    let mesh = Mesh::start(Duration::from_secs(120)).await;
    let bundle = mesh.trust_bundle();
    let web = identity("web");
    let store = Arc::new(
        TlsStore::new(
            web.clone(),
            bundle.clone(),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .unwrap(),
    );
    let cp_identity = SpiffeId::new("cluster.local", "weft-system", "weft-control-plane").unwrap();
    let channel = control_plane::channel(
        &mesh.control_plane_addr.to_string(),
        cp_identity,
        store.clone(),
    )
    .unwrap();
    let mut grpc = IdentityClient::new(channel);

    // Issued: the leaf names exactly the token's identity and lives about the configured TTL.
    let issued = grpc
        .certify(CertifyRequest {
            token: token("web"),
            csr: store.csr().unwrap(),
        })
        .await
        .unwrap()
        .into_inner();
    let info = weft_certs::inspect(&issued.leaf.clone().into()).unwrap();
    assert_eq!(info.identity, Some(web.clone()));
    assert_eq!(info.uri_sans.len(), 1);
    let not_after = SystemTime::try_from(issued.not_after.unwrap()).unwrap();
    let ttl_left = not_after.duration_since(SystemTime::now()).unwrap();
    assert!(ttl_left <= Duration::from_secs(120) && ttl_left > Duration::from_secs(100));
    assert_eq!(issued.trust_bundle.len(), 1);
    assert_eq!(issued.trust_bundle[0], bundle.roots()[0].to_vec());

    let cases = [
        (
            "wrong-token-0123456789".to_owned(),
            store.csr().unwrap(),
            tonic::Code::Unauthenticated,
            "unknown_token",
            "unknown bootstrap token".to_owned(),
        ),
        (
            token("web"),
            csr_with(&rcgen::PKCS_ECDSA_P256_SHA256, &identity("db")),
            tonic::Code::PermissionDenied,
            "identity_mismatch",
            format!(
                "the CSR asks for {}, but the caller is authenticated as {web}",
                identity("db")
            ),
        ),
        (
            token("web"),
            csr_with(&rcgen::PKCS_ECDSA_P384_SHA384, &web),
            tonic::Code::FailedPrecondition,
            "unsupported_key",
            "unsupported key in CSR: ECDSA P-384".to_owned(),
        ),
        (
            token("web"),
            b"definitely not a CSR".to_vec(),
            tonic::Code::InvalidArgument,
            "malformed_csr",
            "malformed CSR".to_owned(),
        ),
    ];
    let cases_len = cases.len();
    for (token, csr, code, reason, message) in cases {
        let status = grpc
            .certify(CertifyRequest { token, csr })
            .await
            .expect_err("the request must be refused");
        assert_eq!(status.code(), code, "{status:?}");
        assert!(
            status.message().contains(&message),
            "{:?} lacks {message:?}",
            status.message()
        );
        assert_eq!(status.metadata().get("weft-refusal").unwrap(), reason);
        let metrics = mesh.control_plane.as_ref().unwrap().metrics.render();
        let line = format!(r#"weft_certify_requests_total{{result="{reason}"}} 1"#);
        assert!(metrics.contains(&line), "missing {line} in\n{metrics}");
    }
    let metrics = mesh.control_plane.as_ref().unwrap().metrics.render();
    assert!(metrics.contains(r#"weft_certify_requests_total{result="issued"} 1"#));
    // Every call is timed, under issued or refused (the reason is in the counter above).
    assert!(metrics.contains(r#"weft_certify_duration_seconds_count{result="issued"} 1"#));
    assert!(
        metrics.contains(&format!(
            r#"weft_certify_duration_seconds_count{{result="refused"}} {}"#,
            cases_len
        )),
        "{metrics}"
    );
    assert!(metrics.contains(r#"weft_certify_duration_seconds_bucket{result="issued",le="10"} 1"#));
}

#[tokio::test]
async fn the_proxy_refuses_a_control_plane_with_the_wrong_identity() {
    let mesh = Mesh::start(Duration::from_secs(120)).await;
    let bundle = mesh.trust_bundle();
    let store = Arc::new(
        TlsStore::new(
            identity("web"),
            bundle,
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .unwrap(),
    );
    // Expect some other workload where the control plane answers.
    let channel = control_plane::channel(
        &mesh.control_plane_addr.to_string(),
        identity("db"),
        store.clone(),
    )
    .unwrap();
    let status = IdentityClient::new(channel)
        .certify(CertifyRequest {
            token: token("web"),
            csr: store.csr().unwrap(),
        })
        .await
        .unwrap_err();
    let text = format!("{status:?}");
    assert!(
        text.contains("peer presented identity spiffe://cluster.local/ns/weft-system/sa/weft-control-plane, expected spiffe://cluster.local/ns/demo/sa/db"),
        "{text}"
    );
}

//! The control plane's Certify call over real gRPC and TLS: one success, and each refusal with
//! its own status, message, reason metadata and metric.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rcgen::{CertificateParams, DistinguishedName, KeyPair, SanType};
use weft_api::identity::CertifyRequest;
use weft_api::identity::identity_client::IdentityClient;
use weft_certs::{SpiffeId, TrustBundle};
use weft_proxy::identity::control_plane;
use weft_proxy::tls::TlsStore;
use weft_tests::Mesh;
use weft_tests::mesh::control_plane_client::identity_client_from;
use weft_tests::mesh::{identity, token};
use weft_tests::observe::metrics::metric_in;
use weft_tests::process::control_plane_process::ControlPlaneProcess;
use weft_tests::{process::logged_process, wait};

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

/// 200 wrong tokens from one address as fast as they go. After a burst of failures the control
/// plane brakes that address: its calls are refused with `RESOURCE_EXHAUSTED` and a retry hint
/// before their token is looked at (a right token too), each counted, and logged as one line
/// when the brake engages plus one line with the count, not one line per call. A workload at
/// another address gets its certificate at once all the same.
/// When a braked caller may try again (gRPC's server pushback, in the refusal's metadata).
fn pushback(status: &tonic::Status) -> Duration {
    let millis = status
        .metadata()
        .get("grpc-retry-pushback-ms")
        .expect("a braked refusal says when to try again")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    Duration::from_millis(millis)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentications_from_one_address_are_braked_without_locking_out_others() {
    const GUESSES: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.yaml");
    std::fs::write(
        &tokens,
        format!(
            "apiVersion: weft.dev/v1alpha1\nkind: BootstrapTokens\ntokens:\n  - identity: {}\n    token: {}\n",
            identity("web"),
            token("web")
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let control_plane =
        ControlPlaneProcess::start(&data, &[format!("--bootstrap-tokens={}", tokens.display())])
            .await;
    let roots = TrustBundle::from_pem(
        &std::fs::read(data.join("trust-bundle.pem")).unwrap(),
        "trust bundle",
    )
    .unwrap();
    let cp_identity = SpiffeId::new("cluster.local", "weft-system", "weft-control-plane").unwrap();
    let store = TlsStore::new(
        identity("web"),
        roots,
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .unwrap();
    let csr = store.csr().unwrap();
    let guesser_ip = IpAddr::from([127, 0, 0, 2]);
    let mut guesser =
        identity_client_from(guesser_ip, control_plane.grpc_addr, &cp_identity, &store);

    let give_up = Instant::now() + Duration::from_secs(30);
    let (mut unauthenticated, mut braked) = (0, 0);
    for i in 0..GUESSES {
        assert!(Instant::now() < give_up, "{i} guesses took 30 s");
        let status = guesser
            .certify(CertifyRequest {
                token: format!("wrong-token-{i:04}-0123456789"),
                csr: csr.clone(),
            })
            .await
            .expect_err("a wrong token is refused");
        match status.code() {
            tonic::Code::Unauthenticated => unauthenticated += 1,
            tonic::Code::ResourceExhausted => {
                braked += 1;
                assert_eq!(
                    status.metadata().get("weft-refusal").unwrap(),
                    "too_many_failures"
                );
                let pushback = pushback(&status);
                assert!((1..=1000).contains(&pushback.as_millis()), "{pushback:?}");
                assert!(
                    status.message().contains("too many failed authentications")
                        && status.message().contains("try again in"),
                    "{}",
                    status.message()
                );
            }
            code => panic!("unexpected {code:?}: {status:?}"),
        }
    }
    assert!(
        braked >= GUESSES * 3 / 4,
        "only {braked} of {GUESSES} wrong tokens were braked; {unauthenticated} reached the token check"
    );

    // Braked before the token is looked at: the right token from that address waits too. The
    // brake lets a guess through about once a second, and the right token would be that guess
    // if it came after the allowance refilled (on a loaded machine, a gap between two requests
    // can be that long). So first a wrong guess spends the allowance as soon as the brake
    // allows, waiting out the pushback it answers with: the right token then follows a whole
    // refill period before the next guess is due.
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            Instant::now() < give_up,
            "the brake let no guess through in 10 s"
        );
        let status = guesser
            .certify(CertifyRequest {
                token: "wrong-token-last-0123456789".into(),
                csr: csr.clone(),
            })
            .await
            .expect_err("a wrong token is refused");
        match status.code() {
            tonic::Code::Unauthenticated => {
                unauthenticated += 1;
                break;
            }
            tonic::Code::ResourceExhausted => {
                braked += 1;
                tokio::time::sleep(pushback(&status)).await;
            }
            code => panic!("unexpected {code:?}: {status:?}"),
        }
    }
    let status = guesser
        .certify(CertifyRequest {
            token: token("web"),
            csr: csr.clone(),
        })
        .await
        .expect_err("the braked address is refused");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    // Another address is not braked by the guesser's failures.
    let mut workload = identity_client_from(
        IpAddr::from([127, 0, 0, 3]),
        control_plane.grpc_addr,
        &cp_identity,
        &store,
    );
    let issued = workload
        .certify(CertifyRequest {
            token: token("web"),
            csr,
        })
        .await
        .expect("a right token from another address is served at once")
        .into_inner();
    assert!(!issued.leaf.is_empty());

    let refused_by_brake = (braked + 1) as f64;
    let metrics = wait::until(Duration::from_secs(5), "the brake's gauge", || async {
        let text = control_plane.metrics().await?;
        (metric_in(&text, "weft_certify_braked_sources") == 1.0).then_some(text)
    })
    .await;
    for (series, want) in [
        (
            r#"weft_certify_requests_total{result="unknown_token"}"#,
            unauthenticated as f64,
        ),
        (
            r#"weft_certify_requests_total{result="too_many_failures"}"#,
            refused_by_brake,
        ),
        (r#"weft_certify_requests_total{result="issued"}"#, 1.0),
    ] {
        assert_eq!(metric_in(&metrics, series), want, "{series} in\n{metrics}");
    }

    // The log: a line per failure that reached the token check, one when the brake engaged,
    // then the refusals after it as counts, once the guesser is quiet.
    let log = wait::until(
        Duration::from_secs(10),
        "the brake's count in the log",
        || {
            let log = control_plane.log();
            let counted: f64 = log
                .lines()
                .filter(|l| l.contains("certificate requests from this address"))
                .map(|l| logged_process::field(l, "refused").parse::<f64>().unwrap())
                .sum();
            let ready = counted == refused_by_brake - 1.0;
            async move { ready.then_some(log) }
        },
    )
    .await;
    let about_guesser: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&guesser_ip.to_string()))
        .collect();
    assert!(
        about_guesser.len() <= unauthenticated + 3,
        "{} log lines about {guesser_ip} for {GUESSES} wrong tokens:\n{}",
        about_guesser.len(),
        about_guesser.join("\n")
    );
}

//! Service-account tokens checked with the Kubernetes API server's help (`--kubernetes`), by
//! both documented methods: offline against the issuer keys fetched from `/openid/v1/jwks`
//! (refreshed on an unknown `kid`), and TokenReview. The API server is the fake one
//! (`weft_tests::fake_apiserver`) so kube's real client and TLS run; tokens are signed in the
//! test with the claim shape of projected tokens (`weft_tests::sa_token`).

#![allow(clippy::unwrap_used)] // a failed step fails the test, with its message

use std::time::Duration;

use weft_api::identity::CertifyRequest;
use weft_api::identity::identity_client::IdentityClient;
use weft_control_plane::config::ServiceAccountValidation;
use weft_proxy::ProxyConfig;
use weft_proxy::identity::control_plane;
use weft_tests::fake_apiserver::{FakeApiServer, ReviewedToken};
use weft_tests::mesh::{Mesh, ProxyOptions, wait_ready};
use weft_tests::sa_token::{ISSUER, Issuer};

/// The mesh's control plane restarted with `--kubernetes` against `api`.
async fn mesh_on(api: &FakeApiServer, validation: ServiceAccountValidation) -> Mesh {
    let mut mesh = Mesh::start(Duration::from_secs(3600)).await;
    mesh.stop_control_plane().await;
    let mut config = mesh.control_plane_config();
    config.kubernetes = true;
    config.kubeconfig = Some(api.kubeconfig().to_owned());
    config.service_account_validation = validation;
    mesh.control_plane = Some(weft_control_plane::start(config).await.unwrap());
    mesh
}

/// What a Certify for `account`'s identity with `token` gets: the identity, or the status code,
/// refusal reason and message.
async fn certify(
    mesh: &Mesh,
    account: &str,
    token: String,
) -> Result<String, (tonic::Code, String, String)> {
    let store = mesh.uncertified_store(account);
    let cp = mesh.control_plane.as_ref().unwrap();
    let channel = control_plane::channel(
        &cp.grpc_addr.to_string(),
        cp.identity.clone(),
        store.clone(),
    )
    .unwrap();
    let answer = IdentityClient::new(channel)
        .certify(CertifyRequest {
            token,
            csr: store.csr().unwrap(),
        })
        .await;
    match answer {
        Ok(issued) => {
            let info = weft_certs::inspect(&issued.into_inner().leaf.into()).unwrap();
            Ok(info.identity.unwrap().to_string())
        }
        Err(status) => Err((
            status.code(),
            status
                .metadata()
                .get("weft-refusal")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default(),
            status.message().to_owned(),
        )),
    }
}

fn assert_refused(
    answer: Result<String, (tonic::Code, String, String)>,
    code: tonic::Code,
    reason: &str,
    message: &str,
) {
    let (got_code, got_reason, got_message) = answer.expect_err("the request must be refused");
    assert_eq!(
        (got_code, got_reason.as_str()),
        (code, reason),
        "{got_message}"
    );
    assert!(
        got_message.contains(message),
        "{got_message:?} lacks {message:?}"
    );
}

fn certify_count(mesh: &Mesh, result: &str) -> f64 {
    let metrics = mesh.control_plane.as_ref().unwrap().metrics.render();
    weft_cli::prometheus_text::sum(
        &metrics,
        "weft_certify_requests_total",
        &[("result", result)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_validation_fetches_the_issuer_keys_and_refreshes_on_an_unknown_kid() {
    let api = FakeApiServer::start().await;
    let first = Issuer::new("2026-key-1");
    api.set_service_account_issuer(
        ISSUER,
        serde_json::from_str(&Issuer::jwks(&[&first])).unwrap(),
    );
    let mesh = mesh_on(&api, ServiceAccountValidation::Offline).await;
    let fetches = || {
        api.requests()
            .iter()
            .filter(|r| r.as_str() == "GET /openid/v1/jwks")
            .count()
    };
    assert_eq!(fetches(), 1, "keys are fetched at start");

    // A proxy with a projected token becomes ready with its service account's identity.
    let mut args = mesh.proxy_args("web", &ProxyOptions::default());
    args.token = Some(first.token("demo", "web", "weft", 3600));
    let proxy = weft_proxy::start(ProxyConfig::from_args(args).unwrap(), None)
        .await
        .unwrap();
    wait_ready(&proxy).await;
    assert_eq!(
        proxy.store.identity().to_string(),
        "spiffe://cluster.local/ns/demo/sa/web"
    );
    assert_eq!(fetches(), 1, "a known key costs no API request");

    // The cluster rotates its signing key: the first token with the new kid triggers a fetch.
    let second = Issuer::new("2026-key-2");
    api.set_service_account_issuer(
        ISSUER,
        serde_json::from_str(&Issuer::jwks(&[&first, &second])).unwrap(),
    );
    let answer = certify(&mesh, "web", second.token("demo", "web", "weft", 3600)).await;
    assert_eq!(answer.unwrap(), "spiffe://cluster.local/ns/demo/sa/web");
    assert_eq!(fetches(), 2);

    // Refusals, each with its reason; a foreign kid right after a fetch costs no API request.
    let stranger = Issuer::new("foreign");
    let cases = [
        (
            second.token("demo", "web", "https://kubernetes.default.svc", 3600),
            tonic::Code::Unauthenticated,
            "wrong_token_audience",
            "audience",
        ),
        (
            second.token("demo", "web", "weft", -600),
            tonic::Code::Unauthenticated,
            "expired_token",
            "expired",
        ),
        (
            second.token("demo", "db", "weft", 3600),
            tonic::Code::PermissionDenied,
            "identity_mismatch",
            "authenticated as spiffe://cluster.local/ns/demo/sa/db",
        ),
        (
            stranger.token("demo", "web", "weft", 3600),
            tonic::Code::Unauthenticated,
            "unknown_token_key",
            "no issuer key has kid \"foreign\"",
        ),
        (
            stranger.token("demo", "web", "weft", 3600),
            tonic::Code::Unauthenticated,
            "unknown_token_key",
            "no issuer key has kid \"foreign\"",
        ),
    ];
    for (token, code, reason, message) in cases {
        assert_refused(certify(&mesh, "web", token).await, code, reason, message);
    }
    assert_eq!(fetches(), 2, "unknown kids fetch at most once per 5 s");
    assert_eq!(certify_count(&mesh, "unknown_token_key"), 2.0);

    // The API server goes away: known keys keep working, a new kid cannot be checked.
    api.set_down(true);
    let answer = certify(&mesh, "web", first.token("demo", "web", "weft", 3600)).await;
    assert_eq!(answer.unwrap(), "spiffe://cluster.local/ns/demo/sa/web");
    // Past the 5 s between two fetches (the control plane and kube's client run on the real
    // clock, so this waits in real time; it is not waiting for readiness).
    tokio::time::sleep(Duration::from_millis(5_200)).await;
    let third = Issuer::new("2026-key-3");
    assert_refused(
        certify(&mesh, "web", third.token("demo", "web", "weft", 3600)).await,
        tonic::Code::Unavailable,
        "kubernetes_unreachable",
        "the Kubernetes API server is unreachable",
    );
    assert_eq!(certify_count(&mesh, "kubernetes_unreachable"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_review_decides_and_its_refusals_have_reasons() {
    let api = FakeApiServer::start().await;
    let mesh = mesh_on(&api, ServiceAccountValidation::TokenReview).await;
    let issuer = Issuer::new("key-1");
    let good = issuer.token("demo", "web", "weft", 3600);
    let reviewed = |ns: &str, sa: &str, audience: &str| ReviewedToken {
        namespace: ns.to_owned(),
        service_account: sa.to_owned(),
        audiences: vec![audience.to_owned()],
    };
    api.accept_token(&good, reviewed("demo", "web", "weft"));

    let mut args = mesh.proxy_args("web", &ProxyOptions::default());
    args.token = Some(good.clone());
    let proxy = weft_proxy::start(ProxyConfig::from_args(args).unwrap(), None)
        .await
        .unwrap();
    wait_ready(&proxy).await;
    assert_eq!(
        proxy.store.identity().to_string(),
        "spiffe://cluster.local/ns/demo/sa/web"
    );
    let reviews = api
        .requests()
        .iter()
        .filter(|r| r.starts_with("POST /apis/authentication.k8s.io/v1/tokenreviews"))
        .count();
    assert!(reviews >= 1);

    // The API server's word is final: a token it does not know (a deleted pod's, say), one
    // for another audience, one of another service account.
    let dead = issuer.token("demo", "web", "weft", 3600);
    let other_audience = issuer.token("demo", "web", "vault", 3600);
    api.accept_token(&other_audience, reviewed("demo", "web", "vault"));
    let db = issuer.token("demo", "db", "weft", 3600);
    api.accept_token(&db, reviewed("demo", "db", "weft"));
    let cases = [
        (
            dead,
            tonic::Code::Unauthenticated,
            "token_review_refused",
            "refused by the API server's TokenReview: [invalid bearer token",
        ),
        (
            other_audience,
            tonic::Code::Unauthenticated,
            "token_review_refused",
            "is invalid for the target audiences [\"weft\"]",
        ),
        (
            db,
            tonic::Code::PermissionDenied,
            "identity_mismatch",
            "authenticated as spiffe://cluster.local/ns/demo/sa/db",
        ),
    ];
    for (token, code, reason, message) in cases {
        assert_refused(certify(&mesh, "web", token).await, code, reason, message);
    }

    api.set_down(true);
    assert_refused(
        certify(&mesh, "web", good).await,
        tonic::Code::Unavailable,
        "kubernetes_unreachable",
        "the Kubernetes API server is unreachable",
    );
    assert_eq!(certify_count(&mesh, "kubernetes_unreachable"), 1.0);
    assert_eq!(certify_count(&mesh, "token_review_refused"), 2.0);
}

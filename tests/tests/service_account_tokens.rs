//! Proxies authenticating with Kubernetes service-account tokens, validated offline by the
//! control plane against the issuer's keys (`--service-account-jwks`): a real control plane and
//! real proxies on loopback, tokens signed in the test with the claim shape of projected tokens
//! (`weft_tests::sa_token`).

#![allow(clippy::unwrap_used)] // a failed step fails the test, with its message

use std::time::Duration;

use weft_cli::prometheus_text::sum;
use weft_proxy::ProxyConfig;
use weft_tests::mesh::{Mesh, ProxyOptions, wait_ready};
use weft_tests::sa_token::Issuer;
use weft_tests::wait;

const HOUR: Duration = Duration::from_secs(3600);

/// The mesh's control plane restarted with `issuers`' keys as the service-account JWK Set.
async fn mesh_trusting(issuers: &[&Issuer]) -> Mesh {
    let mut mesh = Mesh::start(HOUR).await;
    let jwks = mesh.dir.path().join("jwks.json");
    std::fs::write(&jwks, Issuer::jwks(issuers)).unwrap();
    mesh.stop_control_plane().await;
    let mut config = mesh.control_plane_config();
    config.service_account_jwks = Some(jwks);
    mesh.control_plane = Some(weft_control_plane::start(config).await.unwrap());
    mesh
}

/// A proxy for `demo/<account>` presenting `token` instead of its bootstrap token.
async fn proxy_with_token(mesh: &Mesh, account: &str, token: String) -> weft_proxy::RunningProxy {
    let mut args = mesh.proxy_args(account, &ProxyOptions::default());
    args.token = Some(token);
    weft_proxy::start(ProxyConfig::from_args(args).unwrap(), None)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projected_token_gets_its_service_accounts_certificate() {
    let issuer = Issuer::new("key-1");
    let mesh = mesh_trusting(&[&issuer]).await;
    let proxy = proxy_with_token(&mesh, "web", issuer.token("demo", "web", "weft", 3600)).await;
    wait_ready(&proxy).await;
    assert_eq!(
        proxy.store.identity().to_string(),
        "spiffe://cluster.local/ns/demo/sa/web"
    );
    let metrics = mesh.control_plane.as_ref().unwrap().metrics.render();
    assert_eq!(
        sum(
            &metrics,
            "weft_certify_requests_total",
            &[("result", "issued")]
        ),
        1.0
    );
    // Bootstrap tokens keep working beside them.
    let other = mesh.proxy("hello", ProxyOptions::default()).await;
    wait_ready(&other).await;
}

/// Each bad token is refused with its own reason, and the proxy never becomes ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_token_is_refused_for_its_reason() {
    let issuer = Issuer::new("key-1");
    let stranger = Issuer::new("key-9");
    let mesh = mesh_trusting(&[&issuer]).await;
    let cases = [
        (
            "wrong_token_audience",
            "web",
            issuer.token("demo", "web", "https://kubernetes.default.svc", 3600),
        ),
        (
            "expired_token",
            "web",
            issuer.token("demo", "web", "weft", -600),
        ),
        (
            "unknown_token_key",
            "web",
            stranger.token("demo", "web", "weft", 3600),
        ),
        // A valid token of another service account: the CSR asks for web's identity.
        (
            "identity_mismatch",
            "web",
            issuer.token("demo", "db", "weft", 3600),
        ),
    ];
    for (reason, account, token) in cases {
        let proxy = proxy_with_token(&mesh, account, token).await;
        let control_plane = mesh.control_plane.as_ref().unwrap();
        wait::until(Duration::from_secs(10), reason, || async {
            let metrics = control_plane.metrics.render();
            (sum(
                &metrics,
                "weft_certify_requests_total",
                &[("result", reason)],
            ) >= 1.0)
                .then_some(())
        })
        .await;
        assert!(
            proxy.store.readiness(std::time::SystemTime::now()).is_err(),
            "{reason}: the proxy got a certificate"
        );
        proxy.kill().await;
    }
    let metrics = mesh.control_plane.as_ref().unwrap().metrics.render();
    assert_eq!(
        sum(
            &metrics,
            "weft_certify_requests_total",
            &[("result", "issued")]
        ),
        0.0
    );
}

/// The cluster rotates its signing key: once the new JWK Set is in the file, tokens of the new
/// key are accepted without a restart; a broken file keeps the keys in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_issuer_key_is_picked_up_from_the_file() {
    let old = Issuer::new("old");
    let new = Issuer::new("new");
    let mesh = mesh_trusting(&[&old]).await;
    let jwks = mesh.dir.path().join("jwks.json");
    weft_tests::mesh::write_atomically(&jwks, "{\"keys\": [");
    let control_plane = mesh.control_plane.as_ref().unwrap();
    wait::until(
        Duration::from_secs(10),
        "the broken file to be refused",
        || async {
            let metrics = control_plane.metrics.render();
            (sum(
                &metrics,
                "weft_config_reloads_total",
                &[("result", "error")],
            ) >= 1.0)
                .then_some(())
        },
    )
    .await;
    let before = proxy_with_token(&mesh, "web", old.token("demo", "web", "weft", 3600)).await;
    wait_ready(&before).await;
    weft_tests::mesh::write_atomically(&jwks, &Issuer::jwks(&[&old, &new]));
    wait::until(
        Duration::from_secs(10),
        "the new keys to be loaded",
        || async {
            let metrics = control_plane.metrics.render();
            (sum(&metrics, "weft_config_reloads_total", &[("result", "ok")]) >= 1.0).then_some(())
        },
    )
    .await;
    let after = proxy_with_token(&mesh, "hello", new.token("demo", "hello", "weft", 3600)).await;
    wait_ready(&after).await;
    assert_eq!(
        after.store.identity().to_string(),
        "spiffe://cluster.local/ns/demo/sa/hello"
    );
}

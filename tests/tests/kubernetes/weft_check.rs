//! `weft check` against the fake API server (real kube client, real TLS): every category passes
//! on a healthy cluster, and each broken thing (expired CA, a webhook certificate for the wrong
//! name, a missing CRD, a control plane that is not ready, no permission to install, an old
//! Kubernetes) fails with its own line and exit status 1.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::json;
use tokio::net::TcpListener;
use weft_tests::kubernetes::fake_apiserver::{FakeApiServer, fixture};
use weft_tests::mesh::{Mesh, ProxyOptions, wait_ready};

const SERVICE_NAME: &str = "weft-control-plane.weft-system.svc";
const GATEWAY_API_CRDS: [&str; 3] = [
    "httproutes.gateway.networking.k8s.io",
    "grpcroutes.gateway.networking.k8s.io",
    "referencegrants.gateway.networking.k8s.io",
];

/// A CA, valid from `not_before` to `not_after` days from now.
fn ca(not_before_days: i64, not_after_days: i64) -> (Issuer<'static, KeyPair>, String) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "weft root CA cluster.local");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::days(not_before_days);
    params.not_after = now + time::Duration::days(not_after_days);
    let cert = params.self_signed(&key).unwrap();
    (Issuer::new(params, key), cert.pem())
}

/// A webhook: TLS on loopback with a certificate for `dns_name` from `issuer`.
async fn webhook(issuer: &Issuer<'static, KeyPair>, dns_name: &str) -> SocketAddr {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = CertificateParams::new(vec![dns_name.to_owned()])
        .unwrap()
        .signed_by(&key, issuer)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(tcp).await;
            });
        }
    });
    addr
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A cluster where weft is installed and healthy; the webhook's CA and address.
async fn healthy() -> (FakeApiServer, Issuer<'static, KeyPair>, SocketAddr) {
    let api = FakeApiServer::start().await;
    let (issuer, ca_pem) = ca(-1, 365);
    // The CRDs of manifests/crds, as the install creates them.
    for crd in weft_control_plane::policy::custom_resources::crds() {
        api.put(serde_json::to_value(crd).unwrap());
    }
    // The Gateway API's, from its v1.6.1 release (standard channel).
    for crd in GATEWAY_API_CRDS {
        api.put(fixture(&format!("crd-{crd}")));
    }
    for suffix in ["k2x7q", "p9z4w"] {
        let mut pod = fixture("pod-weft-control-plane");
        pod["metadata"]["name"] = json!(format!("weft-control-plane-6d9c7b8f5d-{suffix}"));
        api.put(pod);
    }
    api.put(json!({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "weft-ca", "namespace": "weft-system"},
        "data": {"ca.pem": b64(&ca_pem), "trust-bundle.pem": b64(&ca_pem), "ca-key.pem": b64("not read")},
    }));
    let addr = webhook(&issuer, SERVICE_NAME).await;
    api.put(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "weft-sidecar-injector"},
        "webhooks": [{"name": "inject.weft.dev", "admissionReviewVersions": ["v1"],
            "sideEffects": "None", "failurePolicy": "Ignore",
            "clientConfig": {"service": {"name": "weft-control-plane", "namespace": "weft-system",
                                         "path": "/inject", "port": 8443},
                             "caBundle": b64(&ca_pem)},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                       "resources": ["pods"], "scope": "Namespaced"}]}],
    }));
    api.put(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "weft-control-plane-x7k2p", "namespace": "weft-system",
                     "labels": {"kubernetes.io/service-name": "weft-control-plane",
                                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [addr.ip().to_string()], "conditions": {"ready": true, "serving": true, "terminating": false}}],
        "ports": [{"name": "webhook", "port": addr.port(), "protocol": "TCP"}],
    }));
    (api, issuer, addr)
}

/// `weft check ARGS` against `api`: exit success and the output.
fn weft_check(api: &FakeApiServer, args: &[&str]) -> (bool, String) {
    let out = Command::new(weft_tests::process::bins::path("weft"))
        .arg("check")
        .arg("--kubeconfig")
        .arg(api.kubeconfig())
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn assert_line(text: &str, mark: &str, words: &str) {
    assert!(
        text.lines()
            .any(|l| l.contains(&format!("[{mark}]")) && l.contains(words)),
        "no [{mark}] line with {words:?} in:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_cluster_passes_every_category() {
    let (api, _, _) = healthy().await;
    let (ok, text) = tokio::task::spawn_blocking(move || {
        let result = weft_check(&api, &[]);
        drop(api);
        result
    })
    .await
    .unwrap();
    assert!(ok, "{text}");
    for category in [
        "kubernetes-api",
        "crds",
        "gateway-api",
        "control-plane",
        "ca",
        "webhook",
    ] {
        assert!(
            text.lines().any(|l| l == category),
            "no {category} in:\n{text}"
        );
    }
    assert_line(&text, "ok  ", "Kubernetes v1.33.1 is supported");
    assert_line(
        &text,
        "ok  ",
        "servicepolicies.weft.dev is installed and serves v1alpha1",
    );
    assert_line(&text, "ok  ", "meshservices.weft.dev is installed");
    assert_line(
        &text,
        "ok  ",
        "httproutes.gateway.networking.k8s.io is installed (Gateway API v1.6.1, channel standard, serves v1, v1beta1)",
    );
    assert_line(
        &text,
        "ok  ",
        "referencegrants.gateway.networking.k8s.io is installed (Gateway API v1.6.1, channel standard",
    );
    assert_line(&text, "ok  ", "2 of 2 weft-control-plane pods are ready");
    assert_line(
        &text,
        "ok  ",
        "ca.pem: CN=weft root CA cluster.local is valid for 364 more days",
    );
    assert_line(
        &text,
        "ok  ",
        &format!("presents a certificate for {SERVICE_NAME} that the caBundle verifies"),
    );
    assert!(text.ends_with("all checks passed\n"), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_gateway_api_crds_are_a_warning() {
    let (api, _, _) = healthy().await;
    for crd in GATEWAY_API_CRDS {
        api.delete(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            None,
            crd,
        );
    }
    let (ok, text) = tokio::task::spawn_blocking(move || weft_check(&api, &[]))
        .await
        .unwrap();
    assert!(ok, "a warning does not fail the check:\n{text}");
    for crd in GATEWAY_API_CRDS {
        assert_line(
            &text,
            "warn",
            &format!(
                "{crd} is not installed: routing needs the Gateway API CRDs: kubectl apply -f https://github.com/kubernetes-sigs/gateway-api/releases/download/"
            ),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_broken_part_fails_with_its_own_line() {
    // An expired CA, a missing CRD, a control-plane pod that is not ready.
    let (api, _, _) = healthy().await;
    let (_, expired) = ca(-400, -1);
    api.put(json!({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "weft-ca", "namespace": "weft-system"},
        "data": {"ca.pem": b64(&expired)},
    }));
    api.delete(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        None,
        "meshservices.weft.dev",
    );
    let mut pod = fixture("pod-weft-control-plane");
    pod["metadata"]["name"] = json!("weft-control-plane-6d9c7b8f5d-p9z4w");
    pod["status"]["conditions"][2]["status"] = json!("False");
    api.put(pod);
    let (ok, text) = tokio::task::spawn_blocking(move || (weft_check(&api, &[]), api))
        .await
        .map(|(result, _api)| result)
        .unwrap();
    assert!(!ok, "{text}");
    assert_line(
        &text,
        "FAIL",
        "meshservices.weft.dev is not installed: kubectl apply -k manifests/",
    );
    assert_line(&text, "ok  ", "servicepolicies.weft.dev is installed");
    assert_line(
        &text,
        "warn",
        "1 of 2 weft-control-plane pods are ready (not ready: weft-control-plane-6d9c7b8f5d-p9z4w)",
    );
    assert_line(
        &text,
        "FAIL",
        "ca.pem: CN=weft root CA cluster.local expired at",
    );
    assert!(text.contains("2 check(s) failed, 1 warning(s)"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_certificate_for_the_wrong_name_or_ca_fails() {
    let (api, issuer, _) = healthy().await;
    let wrong_name = webhook(&issuer, "weft-webhook.default.svc").await;
    let (stranger, _) = ca(-1, 365);
    let wrong_ca = webhook(&stranger, SERVICE_NAME).await;
    let (ok, text, ok2, text2) = tokio::task::spawn_blocking(move || {
        let (ok, text) = weft_check(&api, &["--webhook-addr", &wrong_name.to_string()]);
        let (ok2, text2) = weft_check(&api, &["--webhook-addr", &wrong_ca.to_string()]);
        (ok, text, ok2, text2)
    })
    .await
    .unwrap();
    assert!(!ok && !ok2, "{text}\n{text2}");
    assert_line(
        &text,
        "FAIL",
        &format!("the webhook at {wrong_name} as {SERVICE_NAME}: TLS handshake failed"),
    );
    assert_line(
        &text,
        "FAIL",
        &format!("the certificate is not valid for {SERVICE_NAME}"),
    );
    assert_line(
        &text2,
        "FAIL",
        "the certificate is not issued by a CA of the caBundle",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_install_reports_permissions_and_the_kubernetes_version() {
    let api = FakeApiServer::start().await;
    api.deny(
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
    );
    api.set_version(28);
    let (ok, text) = tokio::task::spawn_blocking(move || weft_check(&api, &["--pre"]))
        .await
        .unwrap();
    assert!(!ok, "{text}");
    assert_line(
        &text,
        "FAIL",
        "Kubernetes v1.28.4 is older than 1.29: native sidecars are missing",
    );
    assert_line(
        &text,
        "ok  ",
        "can create customresourcedefinitions.apiextensions.k8s.io",
    );
    assert_line(
        &text,
        "FAIL",
        "cannot create mutatingwebhookconfigurations.admissionregistration.k8s.io: ask a cluster admin",
    );
    assert_line(&text, "ok  ", "namespace weft-system does not exist yet");
    assert!(text.contains("2 check(s) failed"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_reports_each_sidecars_version_and_certificate() {
    let (api, _, _) = healthy().await;
    let mesh = Mesh::start(Duration::from_secs(3600)).await;
    let proxy = mesh.proxy("web", ProxyOptions::default()).await;
    wait_ready(&proxy).await;
    let mut pod = fixture("pod-weft-control-plane");
    pod["metadata"] =
        json!({"name": "web-5c9f8d7b6-abcde", "namespace": "prod", "labels": {"app": "web"}});
    pod["spec"]["initContainers"] = json!([{"name": "weft-proxy", "image": "ghcr.io/weft-mesh/weft:0.1.0", "restartPolicy": "Always"}]);
    api.put(pod.clone());
    api.proxy_pod_port("prod", "web-5c9f8d7b6-abcde", 15000, proxy.admin_addr);
    // A second sidecar whose admin port does not answer.
    pod["metadata"]["name"] = json!("web-5c9f8d7b6-fghij");
    api.put(pod);
    let (ok, text) =
        tokio::task::spawn_blocking(move || weft_check(&api, &["--proxy", "--namespace", "prod"]))
            .await
            .unwrap();
    assert!(!ok, "{text}");
    // A 1 h certificate, a minute or two old by now (the binaries may have been rebuilt).
    let line = text
        .lines()
        .find(|l| l.contains("prod/web-5c9f8d7b6-abcde"))
        .unwrap_or_else(|| panic!("no line for the sidecar in:\n{text}"));
    let expected = format!(
        "[ok  ] prod/web-5c9f8d7b6-abcde: weft-proxy {}, certificate valid for ",
        env!("CARGO_PKG_VERSION")
    );
    let minutes: u64 = line
        .trim()
        .strip_prefix(&expected)
        .and_then(|rest| rest.strip_suffix(" more minutes"))
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("{line:?} is not {expected:?}<minutes> more minutes"));
    assert!((50..60).contains(&minutes), "{line}");
    assert_line(
        &text,
        "FAIL",
        "prod/web-5c9f8d7b6-fghij: cannot read the sidecar's metrics",
    );
}

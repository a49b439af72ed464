//! Sidecar injection checked against programs nobody here wrote: AdmissionReview requests in the
//! shape the API server sends (tests/fixtures/kubernetes/admission/) are posted with curl over
//! real HTTPS to the control plane's webhook (its certificate checked by curl against the weft
//! CA for the Service name); the patch is decoded and applied with python `jsonpatch`; the pod
//! must pass `kubernetes-validate --strict` for 1.29 and 1.33, and a second review of it must
//! change nothing. `weft inject` / `weft uninject` run on examples from the Kubernetes
//! documentation. The caBundle and trust-anchor ConfigMap upkeep run against the fake API server.
//!
//! Needs curl, python3 with jsonpatch and kubernetes-validate (pip); without them each test says
//! what is missing and is skipped (with `WEFT_REQUIRE_PEERS=1` it fails).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use weft_control_plane::config::{ServiceAccountValidation, WebhookListen};
use weft_control_plane::{ControlPlaneConfig, RunningControlPlane};
use weft_tests::kubernetes::fake_apiserver::FakeApiServer;
use weft_tests::process::programs;

const SERVICE_NAME: &str = "weft-control-plane.weft-system.svc";
const VERSIONS: [&str; 2] = ["1.29.0", "1.33.0"];

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/kubernetes")
}

fn python_jsonpatch() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import jsonpatch"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok || programs::skip(
        "python3 jsonpatch is not installed (pip install jsonpatch); .ci/run installs it",
    )
}

fn validator() -> bool {
    programs::installed("kubernetes-validate")
        || programs::skip("kubernetes-validate is not installed (pip install kubernetes-validate)")
}

fn available() -> bool {
    programs::available("curl", "curl") && python_jsonpatch() && validator()
}

/// A control plane with its webhook on loopback.
async fn control_plane(dir: &Path, api: Option<&FakeApiServer>) -> RunningControlPlane {
    let mut config = ControlPlaneConfig::local(dir.to_owned());
    config.webhook_listen = WebhookListen::At(SocketAddr::from(([127, 0, 0, 1], 0)));
    if let Some(api) = api {
        config.kubernetes = true;
        config.kubeconfig = Some(api.kubeconfig().to_owned());
        config.service_account_validation = ServiceAccountValidation::TokenReview;
    }
    weft_control_plane::start(config).await.unwrap()
}

/// What curl gets for `body` posted to the webhook at `path`: status and body.
async fn post(cp: &RunningControlPlane, path: &str, body: Vec<u8>) -> (u16, String) {
    let port = cp.webhook_addr.unwrap().port();
    let bundle = cp.trust_bundle_path.clone();
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), body).unwrap();
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "-w",
                "\n%{http_code}",
                "--cacert",
            ])
            .arg(&bundle)
            .args(["--resolve", &format!("{SERVICE_NAME}:{port}:127.0.0.1")])
            .args(["-H", "Content-Type: application/json", "--data-binary"])
            .arg(format!("@{}", file.path().display()))
            .arg(format!("https://{SERVICE_NAME}:{port}{path}"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "curl failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (body, status) = text.rsplit_once('\n').unwrap();
        (status.parse().unwrap(), body.to_owned())
    })
    .await
    .unwrap()
}

/// Applies `patch` (RFC 6902 JSON) to `pod` with python's jsonpatch.
fn jsonpatch_apply(pod: &Value, patch: &[u8]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pod.json"),
        serde_json::to_vec(pod).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join("patch.json"), patch).unwrap();
    let script = "import json, sys, jsonpatch\npod = json.load(open(sys.argv[1]))\npatch = jsonpatch.JsonPatch(json.load(open(sys.argv[2])))\nprint(json.dumps(patch.apply(pod)))";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(dir.path().join("pod.json"))
        .arg(dir.path().join("patch.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "jsonpatch: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `kubernetes-validate --strict` for each supported version, on a YAML or JSON file's text.
fn validate(text: &str, what: &str) {
    let file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(file.path(), text).unwrap();
    for version in VERSIONS {
        let (out, said) = programs::run(
            "kubernetes-validate",
            &["--strict", "-k", version, file.path().to_str().unwrap()],
        );
        assert!(
            out.status.success(),
            "kubernetes-validate --strict -k {version} on {what}:\n{said}\n{text}"
        );
    }
}

fn review_of(pod: &Value, uid: &str, namespace: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace, "operation": "CREATE", "object": pod}
    }))
    .unwrap()
}

/// Posts a fixture; returns the response and the pod it makes (the fixture's pod if no patch).
async fn admit(cp: &RunningControlPlane, fixture: &str, path: &str) -> (Value, Value) {
    let text = std::fs::read(fixtures().join("admission").join(fixture)).unwrap();
    let review: Value = serde_json::from_slice(&text).unwrap();
    let (status, body) = post(cp, path, text).await;
    assert_eq!(status, 200, "{fixture}: {body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1", "{body}");
    assert_eq!(answer["kind"], "AdmissionReview", "{body}");
    let response = answer["response"].clone();
    assert_eq!(
        response["uid"], review["request"]["uid"],
        "{fixture}: the uid is echoed"
    );
    assert_eq!(response["allowed"], true, "{fixture}: {body}");
    let pod = review["request"]["object"].clone();
    let Some(patch) = response["patch"].as_str() else {
        assert!(response.get("patchType").is_none(), "{body}");
        return (response, pod);
    };
    assert_eq!(response["patchType"], "JSONPatch", "{body}");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(patch)
        .unwrap_or_else(|e| panic!("{fixture}: the patch is not standard base64: {e}"));
    let patched = tokio::task::spawn_blocking(move || jsonpatch_apply(&pod, &patch))
        .await
        .unwrap();
    (response, patched)
}

fn names(pod: &Value, list: &str) -> Vec<String> {
    pod["spec"][list]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|c| c["name"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_reviews_get_patches_that_make_valid_pods_and_a_second_review_changes_nothing() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cp = control_plane(dir.path(), None).await;
    let enabled = "/inject?namespace=enabled";

    // A Deployment's pod in a labelled namespace: probes, two containers, an init container.
    let (response, pod) = admit(&cp, "deployment-pod-probes.json", enabled).await;
    assert_eq!(
        names(&pod, "initContainers"),
        ["weft-init", "weft-proxy", "migrate"]
    );
    assert_eq!(names(&pod, "containers"), ["web", "log-shipper"]);
    assert_eq!(
        names(&pod, "volumes"),
        ["kube-api-access-9xk2p", "weft-token", "weft-trust-anchors"]
    );
    let init = &pod["spec"]["initContainers"][0];
    assert_eq!(
        init["args"],
        json!(["init", "--skip-inbound-ports=8081,24224"])
    );
    assert_eq!(
        init["securityContext"]["capabilities"],
        json!({"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]})
    );
    let proxy = &pod["spec"]["initContainers"][1];
    assert_eq!(proxy["restartPolicy"], "Always");
    assert_eq!(proxy["securityContext"]["runAsUser"], 1337);
    assert_eq!(proxy["securityContext"]["runAsNonRoot"], true);
    assert_eq!(proxy["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(proxy["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(
        proxy["securityContext"]["capabilities"],
        json!({"drop": ["ALL"]})
    );
    assert_eq!(
        proxy["startupProbe"]["httpGet"],
        json!({"path": "/ready", "port": 15000})
    );
    assert_eq!(
        proxy["livenessProbe"]["httpGet"],
        json!({"path": "/live", "port": 15000})
    );
    assert_eq!(
        pod["spec"]["volumes"][1]["projected"]["sources"][0]["serviceAccountToken"]["audience"],
        "weft"
    );
    // The probe on 24224 is also a declared port: the author is told it bypasses the proxy.
    let warnings = response["warnings"].to_string();
    assert!(warnings.contains("port 24224 is probed"), "{warnings}");
    assert!(pod["metadata"]["annotations"]["weft.dev/injected"].is_string());

    // Opted in by annotation in an unlabelled namespace: resources and skip ports from it.
    let (_, grpc) = admit(&cp, "annotated-pod-grpc-probe.json", "/inject").await;
    let init = &grpc["spec"]["initContainers"][0];
    assert_eq!(
        init["args"],
        json!([
            "init",
            "--skip-inbound-ports=50052",
            "--skip-outbound-ports=5432"
        ])
    );
    let proxy = &grpc["spec"]["initContainers"][1];
    assert_eq!(proxy["resources"]["requests"]["cpu"], "100m");
    assert_eq!(proxy["resources"]["limits"]["memory"], "128Mi");

    // Through the entry for unlabelled namespaces, the Deployment's pod (no annotation) is left
    // alone.
    let (response, _) = admit(&cp, "deployment-pod-probes.json", "/inject").await;
    assert!(response.get("patch").is_none(), "{response}");

    for (pod, what) in [
        (&pod, "deployment-pod-probes"),
        (&grpc, "annotated-pod-grpc-probe"),
    ] {
        // The Pod as stored: the API server names it from generateName after admission
        // (kubernetes-validate needs a name).
        let mut stored = pod.clone();
        let generated = format!("{}x7k2p", pod["metadata"]["generateName"].as_str().unwrap());
        stored["metadata"]["name"] = json!(generated);
        let text = serde_json::to_string_pretty(&stored).unwrap();
        tokio::task::spawn_blocking({
            let what = what.to_owned();
            move || validate(&text, &what)
        })
        .await
        .unwrap();
        // The injected pod reviewed again: an empty patch.
        let (status, body) = post(
            &cp,
            enabled,
            review_of(pod, "b1c2d3e4-0000-4000-8000-000000000001", "shop"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let again: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(again["response"]["allowed"], true, "{body}");
        assert!(
            again["response"].get("patch").is_none(),
            "{what} re-injected: {body}"
        );
    }

    // Opted out, hostNetwork, kube-system, and an injected pod recorded: allowed, no patch.
    for fixture in [
        "opted-out-pod.json",
        "host-network-pod.json",
        "kube-system-pod.json",
        "injected-pod.json",
    ] {
        let (response, _) = admit(&cp, fixture, enabled).await;
        assert!(response.get("patch").is_none(), "{fixture}: {response}");
    }
    let metrics = weft_tests::observe::metrics::metric_in(
        &cp.metrics.render(),
        "weft_injections_total{result=\"injected\"}",
    );
    assert!(metrics >= 2.0, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_answers_garbage_unknown_kinds_and_oversized_bodies_with_clear_errors() {
    if !programs::available("curl", "curl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cp = control_plane(dir.path(), None).await;

    let (status, body) = post(&cp, "/inject", b"\x16\x03garbage{".to_vec()).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.starts_with("the body is not an AdmissionReview"),
        "{body}"
    );

    let old = br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}"#;
    let (status, body) = post(&cp, "/inject", old.to_vec()).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("unsupported apiVersion \"admission.k8s.io/v1beta1\""),
        "{body}"
    );

    let (status, body) = post(
        &cp,
        "/inject",
        br#"{"apiVersion":"v1","kind":"Pod"}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("unsupported apiVersion \"v1\""), "{body}");

    // A review of another kind is allowed unchanged, with a warning.
    let deployment = serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "d-1", "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "operation": "CREATE", "object": {"kind": "Deployment"}}
    }))
    .unwrap();
    let (status, body) = post(&cp, "/inject", deployment).await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["response"]["uid"], "d-1");
    assert_eq!(answer["response"]["allowed"], true);
    assert!(
        answer["response"]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("Pods only"),
        "{body}"
    );

    let huge = vec![b' '; 5 * 1024 * 1024];
    let (status, body) = post(&cp, "/inject", huge).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("larger than 4194304 bytes"), "{body}");

    let (status, body) = post(&cp, "/mutate", b"{}".to_vec()).await;
    assert_eq!(status, 404, "{body}");

    // Still serving after all that.
    let fixture =
        std::fs::read(fixtures().join("admission/annotated-pod-grpc-probe.json")).unwrap();
    let (status, body) = post(&cp, "/inject", fixture).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"patchType\":\"JSONPatch\""), "{body}");
    let text = cp.metrics.render();
    assert_eq!(
        weft_tests::observe::metrics::metric_in(
            &text,
            "weft_injections_total{result=\"bad_request\"}"
        ),
        3.0,
        "{text}"
    );
    assert_eq!(
        weft_tests::observe::metrics::metric_in(
            &text,
            "weft_injections_total{result=\"too_large\"}"
        ),
        1.0,
        "{text}"
    );
}

fn weft(args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut child = Command::new(weft_tests::process::bins::path("weft"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "weft {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn weft_inject_round_trips_the_kubernetes_documentation_examples() {
    if !validator() {
        return;
    }
    let dir = fixtures().join("inject");
    for example in [
        "nginx-deployment.yaml",
        "web-statefulset.yaml",
        "hello-cronjob.yaml",
    ] {
        let path = dir.join(example);
        let original = std::fs::read_to_string(&path).unwrap();
        let injected = weft(&["inject", path.to_str().unwrap()], None);
        assert!(
            injected.contains("name: weft-proxy"),
            "{example}: {injected}"
        );
        assert!(
            injected.contains("weft.dev/injected"),
            "{example}: {injected}"
        );
        validate(&injected, example);
        // From stdin, the same; and injecting twice changes nothing.
        assert_eq!(weft(&["inject"], Some(&original)), injected, "{example}");
        assert_eq!(
            weft(&["inject", "-"], Some(&injected)),
            injected,
            "{example}"
        );
        let restored = weft(&["uninject", "-"], Some(&injected));
        assert_eq!(
            restored, original,
            "{example}: uninject did not give the original bytes"
        );
    }
    // The StatefulSet example's Service (not a pod template) is copied byte for byte.
    let web = weft(
        &["inject", dir.join("web-statefulset.yaml").to_str().unwrap()],
        None,
    );
    let service = "apiVersion: v1\nkind: Service\nmetadata:\n  name: nginx\n  labels:\n    app: nginx\nspec:\n  ports:\n  - port: 80\n    name: web\n  clusterIP: None\n  selector:\n    app: nginx\n---\n";
    assert!(web.starts_with(service), "{web}");
    // A directory: every file, in name order, as one stream.
    let all = weft(
        &["inject", dir.to_str().unwrap(), "--sidecar-mode", "classic"],
        None,
    );
    assert_eq!(all.matches("name: weft-proxy").count(), 3, "{all}");
    validate(&all, "the directory, classic mode");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_kubernetes_the_control_plane_writes_the_ca_bundle_and_the_trust_anchors() {
    if !programs::available("curl", "curl") {
        return;
    }
    let api = FakeApiServer::start().await;
    let entry = |name: &str, path: &str| {
        json!({
            "name": name, "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "failurePolicy": "Fail",
            "clientConfig": {"service": {"name": "weft-control-plane", "namespace": "weft-system", "port": 8443, "path": path}},
        })
    };
    api.put(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "weft-sidecar-injector"},
        "webhooks": [entry("namespace.inject.weft.dev", "/inject?namespace=enabled"), entry("object.inject.weft.dev", "/inject")],
    }));
    let dir = tempfile::tempdir().unwrap();
    let cp = control_plane(dir.path(), Some(&api)).await;
    let bundle = base64::engine::general_purpose::STANDARD.encode(cp.trust_bundle.to_pem());
    let (api, bundle) = (&api, &bundle);
    let configuration = weft_tests::wait::until(
        Duration::from_secs(10),
        "the caBundle in both webhooks",
        move || async move {
            let stored = api.get(
                "admissionregistration.k8s.io/v1",
                "MutatingWebhookConfiguration",
                None,
                "weft-sidecar-injector",
            )?;
            let current = stored["webhooks"]
                .as_array()?
                .iter()
                .all(|w| w["clientConfig"]["caBundle"] == bundle.as_str());
            current.then_some(stored)
        },
    )
    .await;
    // Nothing else of the entries changed.
    assert_eq!(
        configuration["webhooks"][1]["clientConfig"]["service"]["path"],
        "/inject"
    );
    assert_eq!(configuration["webhooks"][0]["failurePolicy"], "Fail");

    // Injecting a pod in a namespace writes the trust anchors there.
    let fixture =
        std::fs::read(fixtures().join("admission/annotated-pod-grpc-probe.json")).unwrap();
    let (status, body) = post(&cp, "/inject", fixture).await;
    assert_eq!(status, 200, "{body}");
    let pem = cp.trust_bundle.to_pem();
    let pem = &pem;
    weft_tests::wait::until(
        Duration::from_secs(10),
        "the trust anchors ConfigMap",
        move || async move {
            let map = api.get("v1", "ConfigMap", Some("payments"), "weft-trust-anchors")?;
            (map["data"]["ca.pem"] == pem.as_str()).then_some(())
        },
    )
    .await;
}

//! The injected pod runs: the pod spec the webhook's code produces for a sample app is run in the
//! pods harness (network namespaces), its `weft-init` container and its `weft-proxy` container
//! started with their command, args and environment as written in the spec, translated exactly as
//! `weft_tests::pods::pod_spec` documents (downward API facts, `$(VAR)` expansion, mount paths to
//! directories holding what the volumes would hold). Another meshed pod then reaches the app
//! through both sidecars, and each side sees the other's identity.
//!
//! What the volumes hold here: the trust-anchor ConfigMap's `ca.pem` is the control plane's trust
//! bundle, as the control plane writes it; the projected token file holds a bootstrap token for
//! the pod's identity, because no Kubernetes API server issues service-account tokens here (the
//! control plane accepts either, by the same `--token-file` path; service-account tokens are
//! tested in kubernetes_tokens.rs).
//!
//! Needs root, iproute2, iptables and curl (skipped otherwise; `WEFT_REQUIRE_PEERS=1` fails).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use weft_control_plane::inject::InjectSettings;
use weft_control_plane::inject::admission::review;
use weft_control_plane::inject::patch::{PatchOp, apply};
use weft_tests::pods;
use weft_tests::pods::pod_mesh::PodMesh;
use weft_tests::pods::pod_spec::{PodFacts, expand, translate};
use weft_tests::process::programs;

const WEB: &str = "spiffe://cluster.local/ns/demo/sa/web";
const HELLO: &str = "spiffe://cluster.local/ns/demo/sa/hello";

/// The sample app's pod as the API server would send it for review.
fn sample_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "hello-0", "namespace": "demo", "labels": {"app": "hello"}},
        "spec": {
            "serviceAccountName": "hello",
            "containers": [{"name": "hello", "image": "python:3",
                "command": ["python3", "peers.py", "http-server", "8080", "server"],
                "ports": [{"containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 9901}}}],
        },
    })
}

/// The webhook's answer for `pod`, applied: the pod spec a cluster would run.
fn injected(pod: &Value, settings: &InjectSettings) -> Value {
    let body = serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "namespace": "demo", "operation": "CREATE", "object": pod}
    }))
    .unwrap();
    let answer = review(&body, settings, true).unwrap();
    let patch = answer.review.response.patch.expect("a patch");
    let ops: Vec<PatchOp> = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(patch)
            .unwrap(),
    )
    .unwrap();
    let mut pod = pod.clone();
    apply(&mut pod, &ops).unwrap();
    pod
}

fn container<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()
}

#[test]
fn the_translation_does_what_the_kubelet_does_and_nothing_else() {
    assert_eq!(
        expand("a/$(X)/$(Y)/$$(X)/$", &[("X".into(), "1".into())]),
        "a/1/$(Y)/$(X)/$"
    );
    let pod = injected(&sample_pod(), &InjectSettings::default());
    let facts = PodFacts {
        name: "hello-0".into(),
        namespace: "demo".into(),
        ip: "10.0.0.9".into(),
        service_account: "hello".into(),
    };
    let binaries = BTreeMap::from([("weft-proxy".to_owned(), PathBuf::from("/bin/weft-proxy"))]);
    let volumes = BTreeMap::from([
        ("weft-token".to_owned(), PathBuf::from("/tmp/t")),
        ("weft-trust-anchors".to_owned(), PathBuf::from("/tmp/a")),
    ]);
    let proxy = translate(container(&pod, "weft-proxy"), &facts, &binaries, &volumes).unwrap();
    let env: BTreeMap<_, _> = proxy.env.iter().cloned().collect();
    assert_eq!(env["WEFT_IDENTITY"], HELLO);
    assert_eq!(env["WEFT_POD_IP"], "10.0.0.9");
    assert_eq!(env["WEFT_TOKEN_FILE"], "/tmp/t/token");
    assert_eq!(env["WEFT_TRUST_ANCHORS"], "/tmp/a/ca.pem");
    assert_eq!(
        env["WEFT_CONTROL_PLANE_ADDR"],
        "weft-control-plane.weft-system.svc:15010"
    );
    assert_eq!((proxy.uid, proxy.gid), (1337, 1337));
    assert_eq!(proxy.program, PathBuf::from("/bin/weft-proxy"));
    assert!(proxy.args.is_empty());
    let init = translate(container(&pod, "weft-init"), &facts, &binaries, &volumes).unwrap();
    assert_eq!(init.args, ["init", "--skip-inbound-ports=9901"]);
    assert_eq!(init.uid, 0);
}

fn readable_dir(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn readable_file(path: &Path, contents: &[u8]) {
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

#[test]
fn an_injected_pod_runs_and_is_reached_through_the_mesh_with_its_identity() {
    if !(pods::available("pods_injection")
        && programs::available("iptables", "iptables")
        && programs::available("curl", "curl"))
    {
        return;
    }
    let mesh = PodMesh::start(&["client", "server"], |pods| {
        format!(
            "apiVersion: weft.dev/v1alpha1\nkind: MeshService\nmetadata:\n  name: hello\n  namespace: demo\nspec:\n  ports:\n    - port: 8080\n  endpoints:\n    - address: {}\n      serviceAccount: hello\n",
            pods.pod("server").ip()
        )
    });
    let server = mesh.pod("server");
    // The control plane's address is a webhook setting (--injected-control-plane-addr): here it
    // is the bridge, where the harness runs the control plane.
    let settings = InjectSettings {
        control_plane_addr: format!("{}:15010", mesh.pods.bridge_ip()),
        ..InjectSettings::default()
    };
    let pod = injected(&sample_pod(), &settings);

    // What the volumes would hold, where the test can put it.
    let root = mesh.pods.log_dir().join("injected-pod");
    let (token_dir, anchors_dir, bin_dir) = (
        root.join("weft-token"),
        root.join("weft-trust-anchors"),
        root.join("bin"),
    );
    for dir in [&root, &token_dir, &anchors_dir, &bin_dir] {
        readable_dir(dir);
    }
    readable_file(
        &token_dir.join("token"),
        weft_tests::mesh::token("hello").as_bytes(),
    );
    let bundle = std::fs::read(mesh.pods.log_dir().join("mesh/cp/trust-bundle.pem")).unwrap();
    readable_file(&anchors_dir.join("ca.pem"), &bundle);
    let proxy_bin = bin_dir.join("weft-proxy");
    std::fs::copy(weft_tests::process::bins::path("weft-proxy"), &proxy_bin).unwrap();
    std::fs::set_permissions(&proxy_bin, std::fs::Permissions::from_mode(0o755)).unwrap();

    let facts = PodFacts {
        name: "hello-0".into(),
        namespace: "demo".into(),
        ip: server.ip().to_string(),
        service_account: "hello".into(),
    };
    let binaries = BTreeMap::from([("weft-proxy".to_owned(), proxy_bin)]);
    let volumes = BTreeMap::from([
        ("weft-token".to_owned(), token_dir),
        ("weft-trust-anchors".to_owned(), anchors_dir),
    ]);

    // weft-init, then weft-proxy (native sidecar order), then the app.
    let init = translate(container(&pod, "weft-init"), &facts, &binaries, &volumes).unwrap();
    let mut command = server.command_as(init.uid, init.gid, init.program.to_str().unwrap());
    let out = command
        .args(&init.args)
        .envs(init.env.iter().cloned())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "weft-init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let proxy = translate(container(&pod, "weft-proxy"), &facts, &binaries, &volumes).unwrap();
    let _proxy = mesh.pods.spawn(
        server
            .command_as(proxy.uid, proxy.gid, proxy.program.to_str().unwrap())
            .args(&proxy.args)
            .env_clear()
            .envs(proxy.env.iter().cloned())
            .env("WEFT_LOG", "info,weft_proxy=debug"),
    );
    // The startup probe as the kubelet runs it: GET /ready on the admin port.
    let ready = format!("http://{}:15000/ready", server.ip());
    weft_tests::wait::until_blocking(
        Duration::from_secs(30),
        "the injected proxy's /ready",
        || {
            mesh.pods
                .bridge()
                .run(
                    "curl",
                    &["-sf", "--max-time", "2", &ready],
                    Duration::from_secs(5),
                )
                .success()
                .then_some(())
        },
    );
    let _app = mesh.peer("server", &["http-server", "8080", "server"]);
    let _client = mesh.sidecar("client", "web", &[]);

    let url = format!("http://{}:8080/injected", server.ip());
    let ran = mesh.run_in(
        "client",
        "curl",
        &["-s", "--max-time", "10", "-D", "-", &url],
    );
    ran.expect_success();
    let reply = ran.stdout_text();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("hello from server"), "{reply}");
    assert!(
        reply.contains(&format!("client-identity: {WEB}")),
        "{reply}"
    );
    assert!(
        reply
            .to_ascii_lowercase()
            .contains(&format!("weft-server-identity: {HELLO}")),
        "{reply}"
    );
    let identity = mesh.admin("server", "/identity");
    assert!(identity.contains(HELLO), "{identity}");
}

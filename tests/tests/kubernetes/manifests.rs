//! The Kubernetes manifests as a cluster would take them: each kustomization builds with
//! `kubectl kustomize` (kubectl's own kustomize, Debian package `kubectl`), and the output passes
//! `kubernetes-validate --strict` (PyPI) against the Kubernetes versions we support. No API
//! server runs here, so this is the check that the YAML is what Kubernetes accepts.
//!
//! Skipped unless both programs are installed; under `WEFT_REQUIRE_PEERS=1` (CI) a missing one
//! fails instead.

use std::path::PathBuf;

use weft_tests::process::programs;

/// The oldest Kubernetes we support (native sidecars) and a recent one.
const VERSIONS: [&str; 2] = ["1.29.0", "1.33.0"];

fn manifests() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests")
}

/// `kubectl kustomize DIR`, then each document through `kubernetes-validate --strict`.
fn build_and_validate(kustomization: &str) -> String {
    let dir = manifests().join(kustomization);
    let (out, text) = programs::run("kubectl", &["kustomize", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "kubectl kustomize {kustomization}: {text}"
    );
    let built = String::from_utf8(out.stdout).unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &built).unwrap();
    for version in VERSIONS {
        let (out, said) = programs::run(
            "kubernetes-validate",
            &["--strict", "-k", version, file.path().to_str().unwrap()],
        );
        assert!(
            out.status.success(),
            "kubernetes-validate --strict -k {version} on {kustomization}:\n{said}\n{built}"
        );
    }
    built
}

#[test]
fn the_jaeger_manifests_build_and_validate() {
    if !programs::available("kubectl", "kubectl")
        || !(programs::installed("kubernetes-validate")
            || programs::skip(
                "kubernetes-validate is not installed (pip install kubernetes-validate); .ci/run installs it",
            ))
    {
        return;
    }
    let built = build_and_validate("jaeger");
    // What docs/kubernetes.md tells the sidecars to use.
    for expected in [
        "name: jaeger-collector",
        "namespace: observability",
        "port: 4317",
        "--set=receivers.otlp.protocols.grpc.endpoint=0.0.0.0:4317",
        "weft.dev/inject: disabled",
    ] {
        assert!(
            built.contains(expected),
            "{expected} missing from:\n{built}"
        );
    }
}

/// The document of `kind` named `name` in a kustomize build.
fn document<'a>(built: &'a str, kind: &str, name: &str) -> &'a str {
    built
        .split("\n---\n")
        .find(|doc| {
            doc.contains(&format!("kind: {kind}\n")) && doc.contains(&format!("\n  name: {name}\n"))
        })
        .unwrap_or_else(|| panic!("no {kind} {name} in:\n{built}"))
}

fn skip_without_tools() -> bool {
    !programs::available("kubectl", "kubectl")
        || !(programs::installed("kubernetes-validate")
            || programs::skip(
                "kubernetes-validate is not installed (pip install kubernetes-validate); .ci/run installs it",
            ))
}

#[test]
fn the_install_builds_validates_and_grants_least_privilege() {
    if skip_without_tools() {
        return;
    }
    let built = build_and_validate(".");
    let deployment = document(&built, "Deployment", "weft-control-plane");
    for expected in [
        "replicas: 2",
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "allowPrivilegeEscalation: false",
        "- ALL",
        "path: /ready",
        "path: /live",
        "port: admin",
        "--kubernetes",
        "secretName: weft-ca",
        "defaultMode: 256",
        "podAntiAffinity",
        "memory: 64Mi",
    ] {
        assert!(
            deployment.contains(expected),
            "{expected} missing:\n{deployment}"
        );
    }
    let service = document(&built, "Service", "weft-control-plane");
    for port in ["port: 15010", "port: 8443", "port: 15014"] {
        assert!(service.contains(port), "{port} missing:\n{service}");
    }
    document(&built, "PodDisruptionBudget", "weft-control-plane");
    let webhook = document(
        &built,
        "MutatingWebhookConfiguration",
        "weft-sidecar-injector",
    );
    for expected in [
        "path: /inject?namespace=enabled",
        "path: /inject\n",
        "operator: DoesNotExist",
        "port: 8443",
        "- kube-system",
        "- weft-system",
        "sideEffects: None",
        "failurePolicy: Fail",
    ] {
        assert!(webhook.contains(expected), "{expected} missing:\n{webhook}");
    }
    // Least privilege: no wildcard, no secrets, and writes only where the control plane writes.
    let role = document(&built, "ClusterRole", "weft-control-plane");
    assert!(!role.contains('*'), "a wildcard in:\n{role}");
    assert!(
        !role.contains("secrets"),
        "the CA comes from a mounted Secret:\n{role}"
    );
    // The Gateway API routes, grants and the routes' status.
    for resource in [
        "- httproutes\n",
        "- grpcroutes\n",
        "- referencegrants\n",
        "- httproutes/status\n",
        "- grpcroutes/status\n",
    ] {
        assert!(role.contains(resource), "{resource} missing:\n{role}");
    }
    for verb in [
        "update",
        "delete",
        "deletecollection",
        "escalate",
        "bind",
        "impersonate",
    ] {
        assert!(
            !role.contains(&format!("- {verb}\n")),
            "{verb} granted:\n{role}"
        );
    }
}

#[test]
fn the_overlays_build_and_validate() {
    if skip_without_tools() {
        return;
    }
    let ha = build_and_validate("overlays/ha");
    assert!(document(&ha, "Deployment", "weft-control-plane").contains("replicas: 3"));
    assert!(
        document(&ha, "Deployment", "weft-control-plane")
            .contains("requiredDuringSchedulingIgnoredDuringExecution")
    );
    assert!(document(&ha, "PodDisruptionBudget", "weft-control-plane").contains("minAvailable: 2"));
    let with_jaeger = build_and_validate("overlays/jaeger");
    document(&with_jaeger, "Deployment", "weft-control-plane");
    document(&with_jaeger, "Service", "jaeger-collector");
}

/// The dashboards as ConfigMaps Grafana's sidecar loads (each holding its file unchanged) and
/// the PrometheusRule, alone and with weft. kubernetes-validate knows no schema for the
/// PrometheusRule (the operator's CRD); `telemetry`'s `monitoring` suite checks its rules.
#[test]
fn the_monitoring_manifests_build_and_validate() {
    if skip_without_tools() {
        return;
    }
    let built = build_and_validate("monitoring");
    for (config_map, file) in [
        ("weft-dashboard-golden-signals", "weft-golden-signals.json"),
        ("weft-dashboard-resilience", "weft-resilience.json"),
        ("weft-dashboard-control-plane", "weft-control-plane.json"),
    ] {
        let doc = document(&built, "ConfigMap", config_map);
        for expected in ["grafana_dashboard: \"1\"", "namespace: weft-system", file] {
            assert!(doc.contains(expected), "{expected} missing:\n{doc}");
        }
        let on_disk =
            std::fs::read_to_string(manifests().join("monitoring/dashboards").join(file)).unwrap();
        let uid = on_disk
            .lines()
            .find(|l| l.contains("\"uid\": \"weft-"))
            .unwrap();
        assert!(
            doc.contains(uid.trim()),
            "{file}'s uid missing from:\n{doc}"
        );
    }
    let rule = document(&built, "PrometheusRule", "weft");
    for expected in [
        "namespace: weft-system",
        "alert: WeftErrorBudgetBurnFast",
        "severity: critical",
    ] {
        assert!(rule.contains(expected), "{expected} missing:\n{rule}");
    }
    let with_weft = build_and_validate("overlays/monitoring");
    document(&with_weft, "Deployment", "weft-control-plane");
    document(&with_weft, "PrometheusRule", "weft");
}

/// The image cannot be built here (no container engine), so check what can be: the binaries its
/// build script (`scripts/release-build`) builds and copies exist, its Rust is at least the
/// workspace's `rust-version`, and `--locked` has a lock.
#[test]
fn the_containerfile_builds_the_three_binaries() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let containerfile = std::fs::read_to_string(root.join("Containerfile")).unwrap();
    assert!(
        containerfile.contains("RUN scripts/release-build /out"),
        "the image is built by scripts/release-build"
    );
    let build = std::fs::read_to_string(root.join("scripts/release-build")).unwrap();
    let control_plane = std::fs::read_to_string(root.join("control-plane/Cargo.toml")).unwrap();
    let cli = std::fs::read_to_string(root.join("cli/Cargo.toml")).unwrap();
    let proxy = std::fs::read_to_string(root.join("proxy/Cargo.toml")).unwrap();
    for (bin, manifest) in [
        ("weft-control-plane", &control_plane),
        ("weft", &cli),
        ("weft-proxy", &proxy),
    ] {
        assert!(build.contains(&format!("--bin {bin}")), "{bin} not built");
        assert!(
            build.contains(&format!("release/{bin} "))
                || build.contains(&format!("release/{bin}\" ")),
            "{bin} not copied"
        );
        assert!(
            manifest.contains(&format!("name = \"{bin}\"")),
            "no binary {bin} in the crates"
        );
    }
    let workspace = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let minor = |text: &str, after: &str| -> u32 {
        let rest = &text[text.find(after).unwrap() + after.len()..];
        rest.split(['.', '"', '-']).nth(1).unwrap().parse().unwrap()
    };
    let image_rust = minor(&containerfile, "rust:");
    let required = minor(&workspace, "rust-version = \"");
    assert!(
        image_rust >= required,
        "the image's Rust 1.{image_rust} is older than rust-version 1.{required}"
    );
    assert!(root.join("Cargo.lock").exists());
    assert!(
        containerfile.contains("iptables"),
        "weft-proxy init needs iptables"
    );
}

/// `manifests/crds/` is what `weft crds` prints: regenerate with
/// `cargo run -p weft-cli -- crds` (the files are split at `---`).
#[test]
fn the_crd_files_are_what_the_code_generates() {
    let generated = weft_control_plane::policy::custom_resources::crd_files().unwrap();
    assert_eq!(generated.len(), 2);
    for (name, text) in &generated {
        let path = manifests().join("crds").join(name);
        let on_disk = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; run `weft crds` to create it", path.display()));
        assert!(
            on_disk == *text,
            "{} differs from what `weft crds` generates; regenerate it",
            path.display()
        );
    }
    // The binary prints the same, joined by `---`.
    let out = std::process::Command::new(weft_tests::process::bins::path("weft"))
        .arg("crds")
        .output()
        .unwrap();
    assert!(out.status.success());
    let texts: Vec<&str> = generated.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), texts.join("---\n"));
}

#[test]
fn the_crds_build_and_validate() {
    if skip_without_tools() {
        return;
    }
    let built = build_and_validate("crds");
    // The install carries them too.
    let install = build_and_validate(".");
    document(
        &install,
        "CustomResourceDefinition",
        "servicepolicies.weft.dev",
    );
    document(
        &install,
        "CustomResourceDefinition",
        "meshservices.weft.dev",
    );
    for expected in [
        "name: servicepolicies.weft.dev",
        "name: meshservices.weft.dev",
        "scope: Namespaced",
        "name: v1alpha1",
        "status: {}",
    ] {
        assert!(
            built.contains(expected),
            "{expected} missing from:\n{built}"
        );
    }
}

//! The Kubernetes manifests as a cluster would take them: each kustomization builds with
//! `kubectl kustomize` (kubectl's own kustomize, Debian package `kubectl`), and the output passes
//! `kubernetes-validate --strict` (PyPI) against the Kubernetes versions we support. No API
//! server runs here, so this is the check that the YAML is what Kubernetes accepts.
//!
//! Skipped unless both programs are installed; under `WEFT_REQUIRE_PEERS=1` (CI) a missing one
//! fails instead.

#![allow(clippy::unwrap_used)] // a failed step fails the test, with its message

use std::path::PathBuf;

use weft_tests::programs;

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
    // What the README tells the sidecars to use.
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

/// `manifests/crds/` is what `weft crds` prints: regenerate with
/// `cargo run -p weft-control-plane --bin weft -- crds` (the files are split at `---`).
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
    let out = std::process::Command::new(weft_tests::bins::path("weft"))
        .arg("crds")
        .output()
        .unwrap();
    assert!(out.status.success());
    let texts: Vec<&str> = generated.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), texts.join("---\n"));
}

#[test]
fn the_crds_build_and_validate() {
    if !programs::available("kubectl", "kubectl")
        || !(programs::installed("kubernetes-validate")
            || programs::skip(
                "kubernetes-validate is not installed (pip install kubernetes-validate); .ci/run installs it",
            ))
    {
        return;
    }
    let built = build_and_validate("crds");
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

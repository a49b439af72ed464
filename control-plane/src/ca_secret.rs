//! The material of the `weft-ca` Kubernetes Secret, shared by every control-plane replica.
//!
//! Replicas behind one Service must sign with one CA, or a proxy renewed by one replica would be a
//! stranger to peers renewed by another. `weft ca create` makes that CA the way a production mesh
//! wants it: a root whose key stays offline, and an intermediate that signs workload certificates.
//! Proxies trust only the root (the trust bundle), so the intermediate can be replaced at any time,
//! and a new root can be brought in with overlap (docs/kubernetes.md, "Root rotation"):
//! `--also-trust` writes a trust bundle holding the old roots next to the new one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use weft_certs::{CertificateAuthority, TrustBundle};

use crate::ca_store::{self, CA_CERT_FILE, CA_KEY_FILE, TRUST_BUNDLE_FILE};

/// The root certificate (also inside the trust bundle and at the end of `ca.pem`).
pub const ROOT_CERT_FILE: &str = "root.pem";
/// The root's key: keep it offline, never in the Secret; it signs the next intermediate.
pub const ROOT_KEY_FILE: &str = "root-key.pem";

/// What [`create`] wrote.
#[derive(Debug)]
pub struct SecretMaterial {
    /// `ca.pem`: the intermediate, then the root (`--ca-cert`).
    pub ca_cert: PathBuf,
    /// `ca-key.pem`: the intermediate's key (`--ca-key`), mode 0600.
    pub ca_key: PathBuf,
    /// `trust-bundle.pem`: the new root and any `--also-trust` roots (`--trust-bundle`, and
    /// the proxies' `--trust-anchors`).
    pub trust_bundle: PathBuf,
    pub root_cert: PathBuf,
    /// `root-key.pem`, mode 0600.
    pub root_key: PathBuf,
    pub root_subject: String,
    pub intermediate_subject: String,
}

/// Creates a root and an intermediate under it in `dir` (made if missing). Refuses to overwrite
/// an existing CA key, so a second run cannot silently replace a mesh's CA.
pub fn create(
    dir: &Path,
    trust_domain: &str,
    root_lifetime: Duration,
    intermediate_lifetime: Duration,
    also_trust: Option<&Path>,
) -> anyhow::Result<SecretMaterial> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = |name: &str| dir.join(name);
    for name in [CA_KEY_FILE, ROOT_KEY_FILE] {
        if path(name).exists() {
            anyhow::bail!(
                "{} exists: refusing to replace a CA (choose another --out directory)",
                path(name).display()
            );
        }
    }
    let extra = match also_trust {
        Some(file) => Some(
            TrustBundle::from_pem(
                &std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?,
                &file.display().to_string(),
            )
            .with_context(|| format!("--also-trust {}", file.display()))?,
        ),
        None => None,
    };
    let root = CertificateAuthority::generate(trust_domain, root_lifetime)?;
    let intermediate = root.generate_intermediate(trust_domain, intermediate_lifetime)?;
    let bundle = match extra {
        Some(extra) => root.trust_bundle().merged(&extra),
        None => root.trust_bundle().clone(),
    };
    ca_store::write_private(&path(ROOT_KEY_FILE), root.key_pem().as_bytes())?;
    ca_store::write_atomic(&path(ROOT_CERT_FILE), root.chain_pem().as_bytes(), 0o644)?;
    ca_store::write_private(&path(CA_KEY_FILE), intermediate.key_pem().as_bytes())?;
    ca_store::write_atomic(
        &path(CA_CERT_FILE),
        intermediate.chain_pem().as_bytes(),
        0o644,
    )?;
    ca_store::write_atomic(&path(TRUST_BUNDLE_FILE), bundle.to_pem().as_bytes(), 0o644)?;
    Ok(SecretMaterial {
        ca_cert: path(CA_CERT_FILE),
        ca_key: path(CA_KEY_FILE),
        trust_bundle: path(TRUST_BUNDLE_FILE),
        root_cert: path(ROOT_CERT_FILE),
        root_key: path(ROOT_KEY_FILE),
        root_subject: root.subject().to_owned(),
        intermediate_subject: intermediate.subject().to_owned(),
    })
}

impl SecretMaterial {
    /// The command that stores the Secret every replica mounts (the root key is not in it).
    pub fn kubectl_command(&self, namespace: &str) -> String {
        format!(
            "kubectl --namespace {namespace} create secret generic weft-ca \\\n  --from-file={CA_CERT_FILE}={} \\\n  --from-file={CA_KEY_FILE}={} \\\n  --from-file={TRUST_BUNDLE_FILE}={}",
            self.ca_cert.display(),
            self.ca_key.display(),
            self.trust_bundle.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::config::ControlPlaneConfig;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[test]
    fn creates_a_root_and_an_intermediate_a_control_plane_loads() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("ca");
        let made = create(&out, "cluster.local", 365 * DAY, 90 * DAY, None).unwrap();
        for key in [&made.ca_key, &made.root_key] {
            let mode = std::fs::metadata(key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", key.display());
        }
        let mut config = ControlPlaneConfig::local(dir.path().join("data"));
        config.ca_cert = Some(made.ca_cert.clone());
        config.ca_key = Some(made.ca_key.clone());
        config.trust_bundle = Some(made.trust_bundle.clone());
        let ca = ca_store::load_or_create(&config).unwrap();
        assert_eq!(ca.subject(), made.intermediate_subject);
        assert_eq!(ca.intermediates().len(), 1);
        let root = TrustBundle::from_pem(&std::fs::read(&made.root_cert).unwrap(), "root").unwrap();
        assert_eq!(ca.trust_bundle(), &root);
        let command = made.kubectl_command("weft-system");
        assert!(
            command.contains("create secret generic weft-ca"),
            "{command}"
        );
        assert!(
            !command.contains(ROOT_KEY_FILE),
            "the root key stays out: {command}"
        );

        let again = create(&out, "cluster.local", 365 * DAY, 90 * DAY, None).unwrap_err();
        assert!(
            format!("{again:#}").contains("refusing to replace a CA"),
            "{again:#}"
        );
    }

    #[test]
    fn also_trust_keeps_the_old_roots_in_the_new_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let old = create(&dir.path().join("old"), "cluster.local", DAY, DAY, None).unwrap();
        let new = create(
            &dir.path().join("new"),
            "cluster.local",
            DAY,
            DAY,
            Some(&old.trust_bundle),
        )
        .unwrap();
        let bundle =
            TrustBundle::from_pem(&std::fs::read(&new.trust_bundle).unwrap(), "bundle").unwrap();
        assert_eq!(bundle.roots().len(), 2);
        let old_root =
            TrustBundle::from_pem(&std::fs::read(&old.root_cert).unwrap(), "old").unwrap();
        assert!(bundle.contains(&old_root.roots()[0]));
    }
}

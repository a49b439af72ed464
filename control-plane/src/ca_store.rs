//! Where the CA comes from: the operator's PEM files, or the data directory.
//!
//! The embedded default keeps a local mesh zero-config: the first start creates a root CA in the
//! data directory (key readable by the owner only) and every later start reuses it, so proxies
//! holding certificates from before a restart stay valid. `trust-bundle.pem` is written next to it
//! for proxies to use as their trust anchors ([`write_trust_bundle`]), once the control plane
//! serves.
//!
//! A CA key readable by anyone but its owner is refused at load: whoever can read it can mint
//! any identity in the mesh. Kubernetes mounts Secret files 0644 unless the volume says
//! `defaultMode: 0400`, so the refusal names the file and both fixes.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use weft_certs::{CertificateAuthority, TrustBundle};

use crate::config::ControlPlaneConfig;

pub const CA_CERT_FILE: &str = "ca.pem";
pub const CA_KEY_FILE: &str = "ca-key.pem";
pub const TRUST_BUNDLE_FILE: &str = "trust-bundle.pem";

/// Loads the configured CA, or the one in the data directory, or creates and persists a new one.
pub fn load_or_create(config: &ControlPlaneConfig) -> anyhow::Result<CertificateAuthority> {
    fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let extra_roots = match &config.trust_bundle {
        Some(path) => Some(
            TrustBundle::from_pem(&read(path)?, &path.display().to_string())
                .with_context(|| format!("invalid trust bundle {}", path.display()))?,
        ),
        None => None,
    };
    let ca = match (&config.ca_cert, &config.ca_key) {
        (Some(cert), Some(key)) => load(cert, key, extra_roots)?,
        _ => {
            let cert = config.data_dir.join(CA_CERT_FILE);
            let key = config.data_dir.join(CA_KEY_FILE);
            if cert.exists() || key.exists() {
                load(&cert, &key, extra_roots)?
            } else {
                let ca = CertificateAuthority::generate(&config.trust_domain, config.ca_lifetime)?;
                write_private(&key, ca.key_pem().as_bytes())?;
                write_atomic(&cert, ca.chain_pem().as_bytes(), 0o644)?;
                tracing::info!(cert = %cert.display(), "created a new root CA");
                match extra_roots {
                    Some(extra) => CertificateAuthority::from_pem(
                        ca.chain_pem().as_bytes(),
                        ca.key_pem(),
                        Some(extra),
                    )?,
                    None => ca,
                }
            }
        }
    };
    Ok(ca)
}

/// (Re)writes `<data-dir>/trust-bundle.pem`. The control plane does this once its ports are
/// bound, so the file's appearance means it is serving (see [`crate::server::start`]).
pub fn write_trust_bundle(data_dir: &Path, ca: &CertificateAuthority) -> anyhow::Result<()> {
    write_atomic(
        &trust_bundle_path(data_dir),
        ca.trust_bundle().to_pem().as_bytes(),
        0o644,
    )
}

pub fn trust_bundle_path(data_dir: &Path) -> PathBuf {
    data_dir.join(TRUST_BUNDLE_FILE)
}

fn load(
    cert: &Path,
    key: &Path,
    extra_roots: Option<TrustBundle>,
) -> anyhow::Result<CertificateAuthority> {
    let chain = read(cert)?;
    check_private(key)?;
    let key_pem = String::from_utf8(read(key)?)
        .with_context(|| format!("{} is not a PEM text file", key.display()))?;
    let ca = CertificateAuthority::from_pem(&chain, &key_pem, extra_roots).with_context(|| {
        format!(
            "cannot use CA certificate {} with key {}",
            cert.display(),
            key.display()
        )
    })?;
    tracing::info!(cert = %cert.display(), subject = ca.subject(), "loaded CA");
    Ok(ca)
}

/// Refuses a key file whose mode lets others read it, or the group change it.
///
/// Group read is allowed: Kubernetes mounts a Secret's files for a non-root container with the
/// pod's `fsGroup` and mode 0440 (a read-only volume gets group read added to `defaultMode`),
/// and no other user is in that group. Others (the world) never are.
pub fn check_private(key: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // `metadata` follows symbolic links, as the files of a mounted Secret are.
    let mode = fs::metadata(key)
        .with_context(|| format!("cannot read {}", key.display()))?
        .permissions()
        .mode();
    if mode & 0o037 != 0 {
        anyhow::bail!(
            "the CA key {} has mode {:04o}, so users other than its owner (and group) can read or change it: refusing to use it. Fix: chmod 600 {} (in Kubernetes, mount the Secret with defaultMode: 0400)",
            key.display(),
            mode & 0o7777,
            key.display()
        );
    }
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    write_atomic(path, contents, 0o600)
}

/// Writes a sibling temporary file and renames it into place, so readers never see half a file.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_a_ca_once_and_reuses_it() {
        let dir = tempfile::tempdir().unwrap();
        let config = ControlPlaneConfig::local(dir.path().to_owned());
        let first = load_or_create(&config).unwrap();
        let second = load_or_create(&config).unwrap();
        assert_eq!(first.trust_bundle(), second.trust_bundle());
        let key_mode = fs::metadata(dir.path().join(CA_KEY_FILE)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(key_mode.permissions().mode() & 0o777, 0o600);
        assert!(
            !trust_bundle_path(dir.path()).exists(),
            "written once serving"
        );
        write_trust_bundle(dir.path(), &first).unwrap();
        let bundle = fs::read(trust_bundle_path(dir.path())).unwrap();
        assert_eq!(
            &TrustBundle::from_pem(&bundle, "bundle").unwrap(),
            first.trust_bundle()
        );
    }

    #[test]
    fn a_key_readable_by_others_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let config = ControlPlaneConfig::local(dir.path().to_owned());
        load_or_create(&config).unwrap();
        let key = dir.path().join(CA_KEY_FILE);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let err = format!("{:#}", load_or_create(&config).unwrap_err());
        assert!(err.contains(&key.display().to_string()), "{err}");
        assert!(err.contains("mode 0644"), "{err}");
        assert!(err.contains("chmod 600"), "{err}");
        assert!(err.contains("defaultMode: 0400"), "{err}");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o400)).unwrap();
        load_or_create(&config).unwrap();
    }

    #[test]
    fn a_corrupt_ca_file_is_an_error_not_a_silent_new_ca() {
        let dir = tempfile::tempdir().unwrap();
        let config = ControlPlaneConfig::local(dir.path().to_owned());
        load_or_create(&config).unwrap();
        fs::write(dir.path().join(CA_CERT_FILE), "garbage").unwrap();
        let err = format!("{:#}", load_or_create(&config).unwrap_err());
        assert!(err.contains("ca.pem"), "{err}");
        assert!(err.contains("no CERTIFICATE block"), "{err}");
    }
}

//! The CA the control plane signs with, as the `weft-ca` Secret holds it: every certificate in
//! it (signing certificate, intermediates, roots of the trust bundle) and when it expires.

use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use weft_certs::{format_time, inspect_pem};

use super::report::Report;

/// A CA certificate expiring sooner than this is a warning: rotate it.
pub const WARN_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

pub async fn check(client: &kube::Client, namespace: &str, secret: &str, report: &mut Report) {
    report.category("ca");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let found = match secrets.get_opt(secret).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            report.fail(format!(
                "no Secret {namespace}/{secret}: create it before installing (docs/kubernetes.md, \"Creating the CA Secret\")"
            ));
            return;
        }
        Err(e) => {
            report.fail(format!("cannot read Secret {namespace}/{secret}: {e}"));
            return;
        }
    };
    let now = SystemTime::now();
    let mut seen = 0;
    for (key, value) in found.data.unwrap_or_default() {
        if key.contains("key") {
            continue;
        }
        let certs = match inspect_pem(&value.0, &format!("{secret}/{key}")) {
            Ok(certs) => certs,
            Err(e) => {
                report.fail(format!("{namespace}/{secret} {key}: {e}"));
                continue;
            }
        };
        for cert in certs.iter().filter(|c| c.is_ca) {
            seen += 1;
            let what = format!("{key}: {}", cert.subject);
            let until = format_time(cert.not_after);
            match cert.not_after.duration_since(now) {
                Err(_) => report.fail(format!(
                    "{what} expired at {until}: every certificate it signs is refused; rotate it (docs/kubernetes.md, \"Root rotation\")"
                )),
                Ok(left) if left < WARN_BEFORE => report.warn(format!(
                    "{what} expires in {} days ({until}): rotate it soon",
                    left.as_secs() / 86400
                )),
                Ok(left) => report.pass(format!(
                    "{what} is valid for {} more days (until {until})",
                    left.as_secs() / 86400
                )),
            }
        }
    }
    if seen == 0 {
        report.fail(format!(
            "Secret {namespace}/{secret} holds no CA certificate"
        ));
    }
}

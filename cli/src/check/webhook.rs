//! The injection webhook as the API server sees it: the MutatingWebhookConfiguration, its
//! `caBundle`, and a TLS handshake with the webhook that verifies its certificate against that
//! `caBundle` for the Service's DNS name, exactly as the API server will.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use weft_certs::{certificates_from_pem, format_time, inspect};

use super::report::Report;

pub const CONFIGURATION: &str = "weft-sidecar-injector";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pod addresses are often unreachable from a workstation.
const OUTSIDE_HINT: &str = " (from outside the cluster: kubectl -n weft-system port-forward svc/weft-control-plane 8443, then weft check --webhook-addr 127.0.0.1:8443)";

pub async fn check(client: &kube::Client, address: Option<&str>, report: &mut Report) {
    report.category("webhook");
    let configurations: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let configuration = match configurations.get_opt(CONFIGURATION).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            report.fail(format!(
                "no MutatingWebhookConfiguration {CONFIGURATION}: kubectl apply -k manifests/"
            ));
            return;
        }
        Err(e) => {
            report.fail(format!(
                "cannot read MutatingWebhookConfiguration {CONFIGURATION}: {e}"
            ));
            return;
        }
    };
    let Some(webhook) = configuration
        .webhooks
        .unwrap_or_default()
        .into_iter()
        .next()
    else {
        report.fail(format!(
            "MutatingWebhookConfiguration {CONFIGURATION} has no webhook"
        ));
        return;
    };
    let Some(service) = webhook.client_config.service else {
        report.fail(format!("{CONFIGURATION} does not call a Service"));
        return;
    };
    let name = format!("{}.{}.svc", service.name, service.namespace);
    let ca_bundle = webhook
        .client_config
        .ca_bundle
        .map(|b| b.0)
        .unwrap_or_default();
    let roots = match certificates_from_pem(&ca_bundle, "caBundle") {
        Ok(roots) if !roots.is_empty() => roots,
        _ => {
            report.fail(format!(
                "{CONFIGURATION} has no caBundle: the control plane writes it when it runs with --kubernetes; the API server cannot call the webhook until then"
            ));
            return;
        }
    };
    report.pass(format!(
        "{CONFIGURATION} calls {name}:{} with a caBundle of {} certificate(s)",
        service.port.unwrap_or(443),
        roots.len()
    ));

    let target = match address {
        Some(a) => a.to_owned(),
        None => match endpoint(client, &service.namespace, &service.name).await {
            Some(a) => a,
            None => {
                report.fail(format!(
                    "no ready endpoint of Service {}/{} serves the webhook port",
                    service.namespace, service.name
                ));
                return;
            }
        },
    };
    match handshake(&target, &name, roots).await {
        Ok(not_after) => {
            let left = not_after
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            report.pass(format!(
                "the webhook at {target} presents a certificate for {name} that the caBundle verifies (valid until {}, {} h left)",
                format_time(not_after),
                left.as_secs() / 3600
            ));
        }
        Err(e) => report.fail(format!("the webhook at {target} as {name}: {e}")),
    }
}

/// The first ready endpoint of the Service's port named `webhook`, as `ip:port`.
async fn endpoint(client: &kube::Client, namespace: &str, service: &str) -> Option<String> {
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
    let list = slices
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={service}")))
        .await
        .ok()?;
    list.items.iter().find_map(|slice| {
        let port = slice
            .ports
            .as_ref()?
            .iter()
            .find(|p| p.name.as_deref() == Some("webhook"))?
            .port?;
        let ready = slice
            .endpoints
            .iter()
            .find(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))?;
        let ip = ready.addresses.first()?;
        Some(if ip.contains(':') {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        })
    })
}

/// What a failed handshake means for the API server calling the webhook.
fn explain(e: &std::io::Error, name: &str) -> String {
    let text = e.to_string();
    if text.contains("UnknownIssuer") || text.contains("BadSignature") {
        format!(
            "TLS handshake failed: the certificate is not issued by a CA of the caBundle (a stale caBundle? the control plane rewrites it at start): {text}"
        )
    } else if text.contains("NotValidForName") || text.contains("not valid for name") {
        format!("TLS handshake failed: the certificate is not valid for {name}: {text}")
    } else {
        format!("TLS handshake failed: {text}")
    }
}

/// A TLS handshake verifying the server for `name` against `roots`; the leaf's expiry.
async fn handshake(
    target: &str,
    name: &str,
    roots: Vec<rustls::pki_types::CertificateDer<'static>>,
) -> Result<SystemTime, String> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store
            .add(root)
            .map_err(|e| format!("the caBundle holds a bad certificate: {e}"))?;
    }
    let provider = Arc::new(weft_certs::tls_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(store)
        .with_no_client_auth();
    let server_name = ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target))
        .await
        .map_err(|_| format!("no answer within 5 s{OUTSIDE_HINT}"))?
        .map_err(|e| format!("cannot connect: {e}{OUTSIDE_HINT}"))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map_err(|e| explain(&e, name))?;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .ok_or("the webhook presented no certificate")?;
    inspect(leaf)
        .map(|info| info.not_after)
        .map_err(|e| e.to_string())
}

//! The connection to the Kubernetes API server, shared by every Kubernetes source (service-account
//! tokens, discovery, policy custom resources).
//!
//! `--kubernetes` turns the sources on. The client configuration is the one `kubectl` would use:
//! `--kubeconfig` (or `KUBECONFIG`), else the in-cluster service account (the token and CA that
//! Kubernetes mounts into the pod). The client is lazy: nothing is sent until a source asks, so a
//! control plane starts (and serves bootstrap-token workloads) while the API server is away.

use std::path::Path;

use anyhow::Context;

/// A client for the cluster named by `kubeconfig`, or by kube's usual inference
/// (`KUBECONFIG`, `~/.kube/config`, then the in-cluster service account).
pub async fn connect(kubeconfig: Option<&Path>) -> anyhow::Result<kube::Client> {
    let config = config(kubeconfig).await?;
    let server = config.cluster_url.clone();
    let client = kube::Client::try_from(config)
        .with_context(|| format!("cannot build a Kubernetes client for {server}"))?;
    tracing::info!(%server, "Kubernetes sources enabled");
    Ok(client)
}

/// The client configuration [`connect`] uses. kube builds its TLS config without naming a
/// crypto provider, so weft's is made the process default first.
pub async fn config(kubeconfig: Option<&Path>) -> anyhow::Result<kube::Config> {
    weft_certs::install_tls_provider();
    Ok(match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read the kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("invalid kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer().await.context(
            "--kubernetes: no kubeconfig (--kubeconfig, KUBECONFIG, ~/.kube/config) and not running in a pod",
        )?,
    })
}

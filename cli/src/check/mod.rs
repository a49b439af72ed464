//! `weft check`: is weft healthy in this cluster? One line per check, in categories
//! (`kubernetes-api`, `crds`, `gateway-api`, `control-plane`, `ca`, `webhook`, and `data-plane`
//! with `--proxy`; `pre-install` with `--pre`), a hint on every failure, exit status 1 if
//! anything failed.
//!
//! It reads the cluster with the user's own kubeconfig, like kubectl; nothing is written.

mod ca;
mod cluster;
mod gateway_api;
mod pre;
pub(crate) mod proxies;
mod report;
mod webhook;

use std::path::PathBuf;
use std::process::ExitCode;

use report::Report;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The kubeconfig (default: KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Check before installing: permissions to install, Kubernetes version.
    #[arg(long)]
    pre: bool,
    /// Also check every meshed pod's sidecar (version, certificate expiry).
    #[arg(long)]
    proxy: bool,
    /// With --proxy: only pods in this namespace.
    #[arg(long, requires = "proxy")]
    namespace: Option<String>,
    /// The namespace weft is installed in.
    #[arg(long, default_value = "weft-system")]
    weft_namespace: String,
    /// The Secret holding the CA.
    #[arg(long, default_value = "weft-ca")]
    ca_secret: String,
    /// Reach the webhook at this address (host:port) instead of its Service's first ready
    /// endpoint (e.g. through `kubectl port-forward`).
    #[arg(long)]
    webhook_addr: Option<String>,
}

pub fn run(args: CheckArgs) -> ExitCode {
    let Some(runtime) = crate::runtime() else {
        return ExitCode::FAILURE;
    };
    let report = runtime.block_on(check(&args));
    let failed = report.failed();
    print!("{}", report.finish());
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn check(args: &CheckArgs) -> Report {
    let mut report = Report::default();
    let connected = match weft_control_plane::kubernetes::config(args.kubeconfig.as_deref()).await {
        Ok(config) => {
            let server = config.cluster_url.to_string();
            kube::Client::try_from(config)
                .map(|client| (client, server))
                .map_err(anyhow::Error::from)
        }
        Err(e) => Err(e),
    };
    let (client, server) = match connected {
        Ok(connected) => connected,
        Err(e) => {
            report.category("kubernetes-api");
            report.fail(format!("{e:#}"));
            return report;
        }
    };
    if !cluster::api(&client, &server, &mut report).await {
        return report;
    }
    if args.pre {
        pre::check(&client, &args.weft_namespace, &mut report).await;
        return report;
    }
    cluster::crds(&client, &mut report).await;
    gateway_api::crds(&client, &mut report).await;
    cluster::control_plane(&client, &args.weft_namespace, &mut report).await;
    ca::check(&client, &args.weft_namespace, &args.ca_secret, &mut report).await;
    webhook::check(&client, args.webhook_addr.as_deref(), &mut report).await;
    if args.proxy {
        proxies::check(&client, args.namespace.as_deref(), &mut report).await;
    }
    report
}

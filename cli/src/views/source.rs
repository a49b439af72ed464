//! Where the numbers come from, chosen by the flags every view shares ([`SourceArgs`]): a
//! Prometheus server, sidecars' admin addresses, or every meshed pod through the Kubernetes API
//! server. A [`Reader`] turns the source into [`MeshSnapshot`]s: once for a CLI view (two reads
//! of the sidecars a window apart), or every refresh for the dashboard (which keeps the reads of
//! the last window, so each refresh costs one read per sidecar).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use weft_api::duration::parse as parse_duration;

use super::sidecars::{self, Read, Sidecar};
use super::snapshot::MeshSnapshot;
use super::{prometheus, window::Window};

/// The window when none is given: Prometheus keeps history, so a minute as Linkerd's views use;
/// sidecars are read at both ends of the window, so a view waits for it.
const PROMETHEUS_WINDOW: Duration = Duration::from_secs(60);
const SIDECARS_WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, clap::Args)]
pub struct SourceArgs {
    /// Read a Prometheus server that scrapes the sidecars (http://HOST:PORT) instead of the
    /// sidecars themselves.
    #[arg(long, value_name = "URL", conflicts_with = "kubernetes")]
    pub prometheus: Option<String>,
    /// Read every meshed pod's sidecar through the Kubernetes API server's pod proxy.
    #[arg(long)]
    pub kubernetes: bool,
    /// With --kubernetes: only pods in this namespace.
    #[arg(long, requires = "kubernetes")]
    pub namespace: Option<String>,
    /// With --kubernetes: the kubeconfig (default: KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long, env = "KUBECONFIG", requires = "kubernetes")]
    pub kubeconfig: Option<PathBuf>,
    /// The window rates, success and latencies cover (default 1m with --prometheus, 10s when
    /// reading sidecars, which are read at its start and its end).
    #[arg(long, value_parser = parse_duration)]
    pub window: Option<Duration>,
}

/// The source, resolved.
pub enum Source {
    Prometheus(String),
    Sidecars(Vec<Sidecar>),
    Kubernetes {
        client: kube::Client,
        namespace: Option<String>,
    },
}

impl Source {
    /// The source the flags and the sidecar addresses (`host:port`) name.
    pub async fn from_args(args: &SourceArgs, addresses: &[String]) -> Result<Self, String> {
        let chosen = usize::from(args.prometheus.is_some())
            + usize::from(args.kubernetes)
            + usize::from(!addresses.is_empty());
        if chosen != 1 {
            return Err(
                "name one source: --prometheus URL, --kubernetes, or sidecars' admin \
                        addresses (HOST:PORT ...)"
                    .to_owned(),
            );
        }
        if let Some(url) = &args.prometheus {
            super::http_get::split_url(url)?;
            return Ok(Source::Prometheus(url.clone()));
        }
        if args.kubernetes {
            let config = weft_control_plane::kubernetes::config(args.kubeconfig.as_deref())
                .await
                .map_err(|e| format!("{e:#}"))?;
            let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
            return Ok(Source::Kubernetes {
                client,
                namespace: args.namespace.clone(),
            });
        }
        for address in addresses {
            if !address.contains(':') {
                return Err(format!(
                    "{address:?}: expected a sidecar's admin address, HOST:PORT"
                ));
            }
        }
        Ok(Source::Sidecars(
            addresses.iter().cloned().map(Sidecar::Addr).collect(),
        ))
    }

    fn name(&self) -> &'static str {
        match self {
            Source::Prometheus(_) => "prometheus",
            _ => "sidecars",
        }
    }

    async fn sidecars(&self) -> Result<Vec<Sidecar>, String> {
        match self {
            Source::Prometheus(_) => Ok(Vec::new()),
            Source::Sidecars(all) => Ok(all.clone()),
            Source::Kubernetes { client, namespace } => {
                let pods: Api<Pod> = match namespace {
                    Some(ns) => Api::namespaced(client.clone(), ns),
                    None => Api::all(client.clone()),
                };
                let list = pods
                    .list(&ListParams::default())
                    .await
                    .map_err(|e| format!("cannot list pods: {e}"))?;
                Ok(list
                    .items
                    .iter()
                    .filter(|p| crate::check::proxies::has_sidecar(p))
                    .map(|p| Sidecar::Pod {
                        client: client.clone(),
                        namespace: p.metadata.namespace.clone().unwrap_or_default(),
                        name: p.metadata.name.clone().unwrap_or_default(),
                    })
                    .collect())
            }
        }
    }
}

/// Snapshots of one source over a window.
pub struct Reader {
    source: Source,
    window: Duration,
    /// The dashboard's reads of the last window, oldest first, each with when it was made.
    reads: VecDeque<(Instant, Vec<Read>)>,
}

impl Reader {
    pub fn new(source: Source, window: Option<Duration>) -> Self {
        let default = match source {
            Source::Prometheus(_) => PROMETHEUS_WINDOW,
            _ => SIDECARS_WINDOW,
        };
        Self {
            source,
            window: window.unwrap_or(default),
            reads: VecDeque::new(),
        }
    }

    /// One snapshot over a window ending now; reading sidecars, this waits for the window.
    pub async fn once(&mut self) -> Result<MeshSnapshot, String> {
        if let Source::Prometheus(url) = &self.source {
            let window = prometheus::window(url, self.window).await?;
            return Ok(MeshSnapshot::build(self.source.name(), &window));
        }
        let sidecars = self.source.sidecars().await?;
        if sidecars.is_empty() {
            return Err("no meshed pod found (no pod has a weft-proxy container)".to_owned());
        }
        let (before, _) = sidecars::read_all(&sidecars, &[]).await;
        tokio::time::sleep(self.window).await;
        let (after, errors) = sidecars::read_all(&sidecars, &before).await;
        if after.is_empty() {
            return Err(format!("no sidecar could be read: {}", errors.join("; ")));
        }
        let window = sidecars::window(&before, &after, errors);
        Ok(MeshSnapshot::build(self.source.name(), &window))
    }

    /// A snapshot from one more read, over the reads of the last window (the dashboard's
    /// refresh). Never fails: what could not be read is in the snapshot's `errors`.
    pub async fn refresh(&mut self) -> MeshSnapshot {
        let window = match self.read_window().await {
            Ok(window) => window,
            Err(e) => Window {
                errors: vec![e],
                ..Window::default()
            },
        };
        MeshSnapshot::build(self.source.name(), &window)
    }

    async fn read_window(&mut self) -> Result<Window, String> {
        if let Source::Prometheus(url) = &self.source {
            return prometheus::window(url, self.window).await;
        }
        let sidecars = self.source.sidecars().await?;
        let previous = self
            .reads
            .back()
            .map_or(&[][..], |(_, reads)| reads.as_slice());
        let (now, errors) = sidecars::read_all(&sidecars, previous).await;
        let at = Instant::now();
        self.reads.push_back((at, now));
        // The start is the newest read at least a window old (or the oldest there is).
        while self.reads.len() > 2 && at.duration_since(self.reads[1].0) >= self.window {
            self.reads.pop_front();
        }
        let (oldest, newest) = match (self.reads.front(), self.reads.back()) {
            (Some((_, oldest)), Some((_, newest))) => (oldest, newest),
            _ => return Ok(Window::default()),
        };
        Ok(sidecars::window(oldest, newest, errors))
    }
}

//! The `weft` command line: `weft demo` runs a whole mesh locally; `weft cert inspect` reads
//! certificates the way weft does; `weft policy check` checks ServicePolicy documents; `weft
//! check` checks an installation in a cluster; `weft crds` prints the CRDs; `weft ca create`
//! makes the CA of the `weft-ca` Secret; `weft inject` / `weft uninject` add and remove the
//! sidecar in YAML files; `weft tap` streams the requests sidecars serve; `weft stat`, `weft
//! edges`, `weft routes` and `weft dashboard` show what the mesh is doing, from Prometheus or
//! the sidecars.
//!
//! The commands build on the control plane's library (policy checking, injection, CRDs, the CA
//! Secret), so each one reads and writes exactly what the control plane does.

mod ca;
mod cert;
mod check;
mod crds;
mod dashboard;
mod demo;
mod inject;
pub mod policy;
pub mod prometheus_text;
mod tap;
mod views;

use std::process::ExitCode;

/// weft: a service mesh for Kubernetes.
#[derive(Debug, clap::Parser)]
#[command(name = "weft", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Run a local mesh on loopback: a control plane, a service with two endpoints and a
    /// ServicePolicy, three sidecars, apps and a client; send traffic across live certificate
    /// rotations while one app fails, dies and comes back; report retries, breaker and timeouts.
    Demo(demo::DemoArgs),
    /// Certificates.
    #[command(subcommand)]
    Cert(cert::CertCommand),
    /// ServicePolicy documents.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Check weft in a cluster: API server, CRDs, control plane, CA, webhook (and, with --proxy,
    /// every sidecar; with --pre, whether it can be installed). Exit status 1 if a check fails.
    Check(check::CheckArgs),
    /// Print the CustomResourceDefinitions of ServicePolicy and MeshService (the YAML of
    /// manifests/crds/), for `weft crds | kubectl apply -f -`.
    Crds,
    /// The control plane's certificate authority (the `weft-ca` Secret).
    #[command(subcommand)]
    Ca(ca::CaCommand),
    /// Add the weft sidecar to every pod template in YAML files (offline, as the webhook does).
    Inject(inject::InjectArgs),
    /// Remove exactly what `weft inject` added.
    Uninject(inject::UninjectArgs),
    /// Golden signals per workload (`deploy`, the default) or service (`svc`): meshed pods,
    /// success, requests per second, p50/p95/p99 latency, TCP connections.
    Stat(views::StatArgs),
    /// Who calls whom: source and destination workloads, their identities, mutual TLS, rate and
    /// success.
    Edges(views::EdgesArgs),
    /// Per route of a service: effective success and rate (what callers got) beside actual
    /// (what servers answered), retries and retries the budget refused.
    Routes(views::RoutesArgs),
    /// Serve a web page with the live service graph, golden-signal charts, endpoints and their
    /// breakers, routes, versions in force and tap.
    Dashboard(dashboard::DashboardArgs),
    /// Stream the requests sidecars serve, live, from their admin ports (filters by source,
    /// destination, path, method, status; -o json for one object a line).
    Tap(tap::TapArgs),
}

impl Cli {
    pub fn run(self) -> ExitCode {
        match self.command {
            Command::Demo(args) => demo::run(args),
            Command::Cert(command) => command.run(),
            Command::Policy(command) => command.run(),
            Command::Check(args) => check::run(args),
            Command::Crds => crds::run(),
            Command::Ca(command) => command.run(),
            Command::Inject(args) => inject::run_inject(args),
            Command::Uninject(args) => inject::run_uninject(args),
            Command::Stat(args) => views::run_stat(args),
            Command::Edges(args) => views::run_edges(args),
            Command::Routes(args) => views::run_routes(args),
            Command::Dashboard(args) => dashboard::run(args),
            Command::Tap(args) => tap::run(args),
        }
    }
}

/// The single-threaded runtime a command's network work runs on; `None`, said on stderr, when
/// it cannot start.
fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .inspect_err(|e| eprintln!("error: cannot start a runtime: {e}"))
        .ok()
}

//! What the mesh is doing, for a person: `weft stat` (golden signals per workload or service),
//! `weft edges` (who calls whom, with which identities, over mutual TLS or not) and `weft routes`
//! (per route, what callers got beside what servers answered: what retries hid).
//!
//! Every view reads one [`MeshSnapshot`] built by a [`source::Reader`] from a Prometheus server
//! or from the sidecars directly; the dashboard (`crate::dashboard`) draws the same snapshot.

mod edges;
mod golden;
mod http_get;
mod prometheus;
mod routes;
pub mod sidecars;
mod snapshot;
mod source;
mod stat;
mod table;
mod window;

use std::process::ExitCode;

pub use snapshot::MeshSnapshot;
pub use source::{Reader, Source, SourceArgs};

/// `-o`: how a view prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// More columns.
    Wide,
    /// One JSON document (shapes in docs/visibility.md).
    Json,
}

#[derive(Debug, clap::Args)]
pub struct StatArgs {
    /// `deploy` (workloads, the default) or `svc` (services), then the sidecars' admin
    /// addresses (HOST:PORT) unless --prometheus or --kubernetes names the source.
    #[arg(value_name = "deploy|svc] [ADMIN_ADDR")]
    targets: Vec<String>,
    /// Only requests from this workload (`namespace/name`, `name` or its SPIFFE identity).
    #[arg(long)]
    from: Option<String>,
    /// Only requests to this workload or service (`name.namespace`).
    #[arg(long)]
    to: Option<String>,
    #[arg(short, long)]
    output: Option<Output>,
    #[command(flatten)]
    source: SourceArgs,
}

#[derive(Debug, clap::Args)]
pub struct EdgesArgs {
    /// The sidecars' admin addresses (HOST:PORT), unless --prometheus or --kubernetes.
    #[arg(value_name = "ADMIN_ADDR")]
    sidecars: Vec<String>,
    #[arg(short, long)]
    output: Option<Output>,
    #[command(flatten)]
    source: SourceArgs,
}

#[derive(Debug, clap::Args)]
pub struct RoutesArgs {
    /// The service (`name.namespace`, or `name`).
    service: String,
    /// The sidecars' admin addresses (HOST:PORT), unless --prometheus or --kubernetes.
    #[arg(value_name = "ADMIN_ADDR")]
    sidecars: Vec<String>,
    #[arg(short, long)]
    output: Option<Output>,
    #[command(flatten)]
    source: SourceArgs,
}

pub fn run_stat(args: StatArgs) -> ExitCode {
    let (kind, sidecars) = match args.targets.split_first() {
        Some((first, rest)) => match stat::Kind::parse(first) {
            Some(kind) => (kind, rest.to_vec()),
            None => (stat::Kind::Workloads, args.targets.clone()),
        },
        None => (stat::Kind::Workloads, Vec::new()),
    };
    run(&args.source, &sidecars, |snapshot| {
        stat::print(
            snapshot,
            kind,
            args.from.as_deref(),
            args.to.as_deref(),
            args.output,
        )
    })
}

pub fn run_edges(args: EdgesArgs) -> ExitCode {
    run(&args.source, &args.sidecars, |snapshot| {
        edges::print(snapshot, args.output)
    })
}

pub fn run_routes(args: RoutesArgs) -> ExitCode {
    run(&args.source, &args.sidecars, |snapshot| {
        routes::print(snapshot, &args.service, args.output)
    })
}

/// Reads one snapshot and prints it with `print`; what could not be read goes to stderr.
fn run(
    source: &SourceArgs,
    sidecars: &[String],
    print: impl FnOnce(&MeshSnapshot) -> Result<String, String>,
) -> ExitCode {
    let Some(runtime) = crate::runtime() else {
        return ExitCode::FAILURE;
    };
    let snapshot = runtime.block_on(async {
        let resolved = Source::from_args(source, sidecars).await?;
        Reader::new(resolved, source.window).once().await
    });
    let printed = snapshot.and_then(|snapshot| {
        for error in &snapshot.errors {
            eprintln!("warning: {error}");
        }
        print(&snapshot)
    });
    match printed {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

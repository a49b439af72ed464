//! `weft dashboard`: one web page showing the mesh live: the service graph (edges labelled with
//! rate, success and p99, coloured by health, a lock where mutual TLS, badges where a breaker is
//! open or a fault drill is active), golden-signal charts per service, endpoints with breaker
//! states and EWMA latencies, routes with retries and budget, the versions in force, and a tap
//! panel.
//!
//! The page, its script and its style are compiled into the binary (no CDN, no build step). A
//! background task refreshes a [`MeshSnapshot`] every `--interval` from the views' own
//! [`Reader`] (one concurrent read per sidecar, or eight Prometheus queries) and keeps a ring of
//! per-service points for the charts, so a page opened late still shows the last minutes and
//! any number of open pages costs the sidecars nothing more.

mod assets;
mod history;
mod response;
mod server;
mod tap;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use weft_api::duration::parse as parse_duration;

use crate::views::{Reader, Source, SourceArgs};

pub use server::{Dashboard, serve};

#[derive(Debug, clap::Args)]
pub struct DashboardArgs {
    /// The sidecars' admin addresses (HOST:PORT), unless --prometheus or --kubernetes.
    #[arg(value_name = "ADMIN_ADDR")]
    sidecars: Vec<String>,
    /// Where the page is served; keep it on loopback (it shows the mesh and relays tap).
    #[arg(long, default_value = "127.0.0.1:8084")]
    listen: SocketAddr,
    /// How often the snapshot is refreshed.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    interval: Duration,
    #[command(flatten)]
    source: SourceArgs,
}

pub fn run(args: DashboardArgs) -> ExitCode {
    let Some(runtime) = crate::runtime() else {
        return ExitCode::FAILURE;
    };
    let result: Result<(), String> = runtime.block_on(async {
        let source = Source::from_args(&args.source, &args.sidecars).await?;
        let tap_sidecars = match &source {
            Source::Sidecars(_) => args.sidecars.clone(),
            _ => Vec::new(),
        };
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let dashboard = Dashboard::start(
            Reader::new(source, args.source.window),
            args.interval,
            tap_sidecars,
        );
        println!(
            "weft dashboard: http://{}/  (Ctrl-C to stop)",
            listener.local_addr().map_err(|e| e.to_string())?
        );
        tokio::select! {
            () = serve(listener, dashboard) => Ok(()),
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

//! `weft-control-plane`: parse flags, start, serve until SIGINT/SIGTERM, shut down cleanly.

use std::process::ExitCode;

use clap::Parser;
use weft_control_plane::{ControlPlaneConfig, logging};

/// weft control plane: certificate authority and workload identity service.
#[derive(Parser)]
#[command(name = "weft-control-plane", version)]
struct Cli {
    #[command(flatten)]
    config: ControlPlaneConfig,

    /// Log level or tracing filter (error, warn, info, debug, trace).
    #[arg(long, env = "WEFT_LOG", default_value = "info")]
    log: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(&cli.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let control_plane = match weft_control_plane::start(cli.config).await {
            Ok(cp) => cp,
            Err(e) => {
                tracing::error!("cannot start: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        wait_for_signal().await;
        tracing::info!("shutting down");
        control_plane.shutdown().await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

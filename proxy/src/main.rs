//! `weft-proxy`: flags → config → runtime → start → serve until SIGTERM → stop.

use std::process::ExitCode;

use clap::Parser;
use weft_proxy::{ProxyArgs, ProxyConfig, logging};

/// mimalloc: faster than glibc's malloc for the many small, short-lived allocations of proxying,
/// and it returns freed memory to the system instead of growing per-thread arenas.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// weft sidecar proxy: mutual TLS between workloads, identity from the control plane.
#[derive(Parser)]
#[command(name = "weft-proxy", version)]
struct Cli {
    #[command(flatten)]
    args: ProxyArgs,

    /// Worker threads for the proxy's runtime. One is plenty for a typical sidecar.
    #[arg(long, env = "WEFT_THREADS", default_value_t = 1)]
    threads: usize,

    /// Log level or tracing filter (error, warn, info, debug, trace); changeable at run time
    /// with PUT /log-level on the admin port.
    #[arg(long, env = "WEFT_LOG", default_value = "info")]
    log: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match ProxyConfig::from_args(cli.args) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("weft-proxy: invalid configuration:");
            for error in errors {
                eprintln!("  - {error}");
            }
            return ExitCode::from(2);
        }
    };
    let set_log_level = logging::init(&cli.log);
    let runtime = if cli.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("weft-proxy: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let proxy = match weft_proxy::start(config, Some((set_log_level, cli.log))).await {
            Ok(proxy) => proxy,
            Err(e) => {
                tracing::error!("cannot start: {e}");
                return ExitCode::FAILURE;
            }
        };
        wait_for_signal().await;
        tracing::info!("shutting down");
        proxy.shutdown().await;
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

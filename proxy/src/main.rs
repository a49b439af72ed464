//! `weft-proxy`: flags → config → runtime → start → serve until SIGTERM → drain → exit 0.
//! `weft-proxy init`: write the pod's iptables rules and exit (see `weft_proxy::init`).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use weft_proxy::init::InitArgs;
use weft_proxy::telemetry::logging;
use weft_proxy::{ProxyArgs, ProxyConfig};

/// mimalloc: faster than glibc's malloc for the many small, short-lived allocations of proxying,
/// and it returns freed memory to the system instead of growing per-thread arenas.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// weft sidecar proxy: mutual TLS between workloads, identity from the control plane.
///
/// Without a command, runs the proxy with the flags below.
#[derive(Parser)]
#[command(name = "weft-proxy", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

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

#[derive(Subcommand)]
enum Command {
    /// Redirect this pod's TCP traffic to the proxy with iptables (once per pod, before it starts).
    ///
    /// Runs in the pod's network namespace as root or with CAP_NET_ADMIN: in Kubernetes, as an
    /// init container. Connections arriving at the pod go to the inbound port, connections its
    /// processes open go to the outbound port, except the proxy's own (by UID), loopback and the
    /// skip lists.
    /// Safe to run again; --uninstall removes the rules; --dry-run shows them.
    Init(InitArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Init(args)) = &cli.command {
        return weft_proxy::init::run(args);
    }
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
    let code = runtime.block_on(async {
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
    });
    // The drain is over; what is left (idle pooled connections, a name lookup) is dropped.
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_TIMEOUT);
    code
}

/// The longest wait for blocking work (file reads, name lookups) once the proxy has stopped.
const RUNTIME_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(1);

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

//! Log setup shared by the control plane's binaries: `WEFT_LOG` takes a level or a
//! tracing filter (`info`, `weft_control_plane=debug`), logs go to stderr.

/// Installs the global subscriber. Call once, from `main`.
pub fn init(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

//! Logging to stderr with a filter that the admin server can change at run time.
//!
//! The filter is a level (`info`) or comma-separated `target=level` directives
//! (`info,weft_proxy::http::client::h2_pool=debug`): tracing-subscriber's `Targets`, not its
//! `EnvFilter`, whose span and field filters the proxy has no use for and whose
//! regular-expression engine and Unicode tables would add to every sidecar's code (resident, so
//! paid in each pod's memory).

use std::sync::Arc;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;
use tracing_subscriber::reload;

use crate::admin::LogLevelSetter;

/// Installs the global subscriber with `filter` (a level such as `info`, or `target=level`
/// directives) and returns the setter `/log-level` uses. A filter that does not parse is
/// reported on stderr and `info` is used.
pub fn init(filter: &str) -> LogLevelSetter {
    let initial = parse(filter).unwrap_or_else(|e| {
        eprintln!("weft-proxy: --log {filter:?} is not a level or target=level list ({e}); logging at info");
        Targets::new().with_default(tracing::Level::INFO)
    });
    let (filter_layer, handle) = reload::Layer::new(initial);
    tracing_subscriber::registry()
        .with(filter_layer)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_target(false),
        )
        .init();
    Arc::new(move |level: &str| {
        let filter = parse(level)?;
        handle.reload(filter).map_err(|e| e.to_string())
    })
}

fn parse(filter: &str) -> Result<Targets, String> {
    filter.trim().parse::<Targets>().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;
    use tracing_subscriber::filter::LevelFilter;

    #[test]
    fn a_bare_level_is_the_default_and_directives_refine_it() {
        let filter = parse("warn,weft_proxy::http::client::h2_pool=debug").expect("parses");
        assert_eq!(filter.default_level(), Some(LevelFilter::WARN));
        assert!(filter.would_enable("weft_proxy::http::client::h2_pool", &Level::DEBUG));
        assert!(!filter.would_enable("weft_proxy::inbound", &Level::INFO));
        assert!(filter.would_enable("h2", &Level::WARN));
    }

    #[test]
    fn garbage_is_an_error_that_names_it() {
        let error = parse("weft_proxy=loud").expect_err("not a level");
        assert!(error.contains("level"), "{error}");
    }
}

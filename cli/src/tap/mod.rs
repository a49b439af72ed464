//! `weft tap`: a live stream of the requests one or more sidecars serve, read from their admin
//! ports (`GET /tap`, see docs/visibility.md) and merged into one stream: a table for people,
//! or one JSON object a line (`-o json`) for programs.
//!
//! The sidecars filter and bound the stream themselves; the command only asks, merges, prints
//! and stops after `--max-events` or `--duration`. A sidecar's admin port serves tap only to
//! loopback callers, so a sidecar in a cluster is reached through `kubectl port-forward`.

mod source;
mod table;

use std::process::ExitCode;
use std::time::Duration;

use tokio::sync::mpsc;

use source::Message;

#[derive(Debug, clap::Args)]
pub struct TapArgs {
    /// Sidecar admin addresses (`127.0.0.1:15000`), one stream each, merged.
    #[arg(required = true, value_name = "SIDECAR")]
    sidecars: Vec<String>,
    /// Only requests from this source identity (a prefix when it ends in *).
    #[arg(long)]
    from: Option<String>,
    /// Only requests to this destination identity (a prefix when it ends in *) or service
    /// (name.namespace).
    #[arg(long)]
    to: Option<String>,
    /// Only paths starting with this prefix.
    #[arg(long)]
    path: Option<String>,
    /// Only this method.
    #[arg(long)]
    method: Option<String>,
    /// Only this status code, or class (5xx).
    #[arg(long)]
    status: Option<String>,
    /// Only inbound or outbound requests.
    #[arg(long, value_parser = ["inbound", "outbound"])]
    direction: Option<String>,
    /// Events per second each sidecar sends at most (default and cap: the sidecar's, 100 and
    /// 1000).
    #[arg(long)]
    rate: Option<u32>,
    /// Stop after this many events.
    #[arg(long, value_name = "N")]
    max_events: Option<u64>,
    /// Stop after this long (`30s`, `5m`).
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Output: a table, or json (one object a line, each with the `sidecar` it came from).
    #[arg(short, long, value_parser = ["table", "json"], default_value = "table")]
    output: String,
}

impl TapArgs {
    /// The sidecar's query string: each filter given, percent-encoded.
    fn query(&self) -> String {
        let rate = self.rate.map(|r| r.to_string());
        [
            ("direction", self.direction.as_deref()),
            ("from", self.from.as_deref()),
            ("to", self.to.as_deref()),
            ("path", self.path.as_deref()),
            ("method", self.method.as_deref()),
            ("status", self.status.as_deref()),
            ("rate", rate.as_deref()),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some(format!("{name}={}", encode(value?))))
        .collect::<Vec<_>>()
        .join("&")
    }
}

pub fn run(args: TapArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(tap(args))
}

async fn tap(args: TapArgs) -> ExitCode {
    let query = args.query();
    let (tx, mut rx) = mpsc::channel(1024);
    for sidecar in &args.sidecars {
        tokio::spawn(source::follow(sidecar.clone(), query.clone(), tx.clone()));
    }
    drop(tx);
    let json = args.output == "json";
    let mut printer = table::Printer::new(std::io::stdout().lock());
    let deadline = args.duration.map(|d| tokio::time::Instant::now() + d);
    let mut events = 0u64;
    let mut failed = false;
    let mut open = args.sidecars.len();
    while open > 0 && args.max_events.is_none_or(|max| events < max) {
        let next = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(next) => next,
                Err(_) => break,
            },
            None => rx.recv().await,
        };
        let Some(message) = next else { break };
        match message {
            Message::Line { sidecar, line } => {
                let mut value: serde_json::Value = match serde_json::from_str(&line) {
                    Ok(value) => value,
                    Err(e) => {
                        eprintln!("weft tap: {sidecar}: not a tap event ({e}): {line}");
                        continue;
                    }
                };
                let is_event = value.get("dropped").is_none();
                value["sidecar"] = sidecar.into();
                let written = if json {
                    printer.json(&value)
                } else {
                    printer.row(&value)
                };
                if written.is_err() {
                    // Standard output is closed (`weft tap | head`): done.
                    return ExitCode::SUCCESS;
                }
                events += u64::from(is_event);
            }
            Message::Ended { sidecar, result } => {
                open -= 1;
                match result {
                    Ok(()) => eprintln!("weft tap: {sidecar}: the sidecar ended the stream"),
                    Err(e) => {
                        eprintln!("error: tap {sidecar}: {e}");
                        failed = true;
                    }
                }
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Percent-encodes all but RFC 3986's unreserved characters (and `*`, which filters use).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~*".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        tap: TapArgs,
    }

    fn query(args: &[&str]) -> String {
        let mut argv = vec!["weft-tap"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().tap.query()
    }

    #[test]
    fn filters_become_the_query() {
        assert_eq!(query(&["127.0.0.1:15000"]), "");
        assert_eq!(
            query(&[
                "127.0.0.1:15000",
                "--from",
                "spiffe://cluster.local/ns/demo/*",
                "--path",
                "/a b",
                "--status",
                "5xx",
                "--direction",
                "outbound",
                "--rate",
                "5",
            ]),
            "direction=outbound&from=spiffe%3A%2F%2Fcluster.local%2Fns%2Fdemo%2F*&path=%2Fa%20b\
             &status=5xx&rate=5"
        );
    }
}

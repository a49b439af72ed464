//! `weft`: the command line for operators; its commands are in the `weft_cli` library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    weft_cli::Cli::parse().run()
}

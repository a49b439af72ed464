//! `weft`: the command line for operators (`weft demo`, `weft cert inspect`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    weft_control_plane::cli::Cli::parse().run()
}

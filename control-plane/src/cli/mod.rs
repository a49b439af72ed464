//! The `weft` command line: `weft demo` runs a whole mesh locally; `weft cert inspect` reads
//! certificates the way weft does.

mod cert;
mod demo;

use std::process::ExitCode;

/// weft: a service mesh for Kubernetes.
#[derive(Debug, clap::Parser)]
#[command(name = "weft", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Run a local mesh on 127.0.0.1: a control plane, two sidecars with their own identities,
    /// an app and a client; send traffic across live certificate rotations and report.
    Demo(demo::DemoArgs),
    /// Certificates.
    #[command(subcommand)]
    Cert(cert::CertCommand),
}

impl Cli {
    pub fn run(self) -> ExitCode {
        match self.command {
            Command::Demo(args) => demo::run(args),
            Command::Cert(command) => command.run(),
        }
    }
}

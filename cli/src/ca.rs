//! `weft ca create`: the CA material of the `weft-ca` Secret (see
//! [`weft_control_plane::ca_secret`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use weft_api::duration::parse as parse_duration;
use weft_certs::DEFAULT_TRUST_DOMAIN;
use weft_control_plane::ca_secret;

#[derive(Debug, clap::Subcommand)]
pub enum CaCommand {
    /// Create a root CA and an intermediate under it, for the control plane's `weft-ca` Secret,
    /// and print the kubectl command that stores it. The root key stays in --out: keep it
    /// offline, it signs the next intermediate.
    Create {
        /// Directory to write root.pem, root-key.pem, ca.pem, ca-key.pem, trust-bundle.pem.
        #[arg(long)]
        out: PathBuf,
        /// The SPIFFE trust domain, named in the CA certificates.
        #[arg(long, default_value = DEFAULT_TRUST_DOMAIN)]
        trust_domain: String,
        /// Lifetime of the root.
        #[arg(long, default_value = "3650d", value_parser = parse_duration)]
        root_lifetime: Duration,
        /// Lifetime of the intermediate (never past the root).
        #[arg(long, default_value = "365d", value_parser = parse_duration)]
        intermediate_lifetime: Duration,
        /// A trust bundle whose roots stay trusted next to the new root (a root rotation).
        #[arg(long)]
        also_trust: Option<PathBuf>,
        /// Namespace of the control plane, for the printed command.
        #[arg(long, default_value = "weft-system")]
        namespace: String,
    },
}

impl CaCommand {
    pub fn run(self) -> ExitCode {
        let CaCommand::Create {
            out,
            trust_domain,
            root_lifetime,
            intermediate_lifetime,
            also_trust,
            namespace,
        } = self;
        match ca_secret::create(
            &out,
            &trust_domain,
            root_lifetime,
            intermediate_lifetime,
            also_trust.as_deref(),
        ) {
            Ok(made) => {
                println!(
                    "root:         {} ({})",
                    made.root_cert.display(),
                    made.root_subject
                );
                println!(
                    "intermediate: {} ({})",
                    made.ca_cert.display(),
                    made.intermediate_subject
                );
                println!("trust bundle: {}", made.trust_bundle.display());
                println!(
                    "root key:     {} (keep it offline; it is not part of the Secret)",
                    made.root_key.display()
                );
                println!("\n{}", made.kubectl_command(&namespace));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    }
}

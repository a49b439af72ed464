//! `weft cert inspect`: what a PEM file's certificates say, as weft reads them.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use weft_certs::{CertificateInfo, format_time, inspect_pem};

#[derive(Debug, clap::Subcommand)]
pub enum CertCommand {
    /// Print identity, validity, issuer and fingerprint of each certificate in a PEM file.
    Inspect {
        /// PEM file, or - for standard input.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

impl CertCommand {
    pub fn run(self) -> ExitCode {
        let CertCommand::Inspect { file, json } = self;
        let (text, name) = if file.as_os_str() == "-" {
            let mut text = Vec::new();
            if let Err(e) = std::io::stdin().read_to_end(&mut text) {
                eprintln!("error: cannot read standard input: {e}");
                return ExitCode::FAILURE;
            }
            (text, "standard input".to_owned())
        } else {
            match std::fs::read(&file) {
                Ok(text) => (text, file.display().to_string()),
                Err(e) => {
                    eprintln!("error: cannot read {}: {e}", file.display());
                    return ExitCode::FAILURE;
                }
            }
        };
        let certs = match inspect_pem(&text, &name) {
            Ok(certs) => certs,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let now = SystemTime::now();
        if json {
            let list: Vec<_> = certs.iter().map(|c| to_json(c, now)).collect();
            println!("{:#}", serde_json::Value::Array(list));
        } else {
            for (i, cert) in certs.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                print!("{}", to_text(cert, now));
            }
        }
        ExitCode::SUCCESS
    }
}

fn status(cert: &CertificateInfo, now: SystemTime) -> String {
    if now < cert.not_before {
        "not yet valid".to_owned()
    } else if let Ok(left) = cert.not_after.duration_since(now) {
        format!(
            "valid, expires in {}",
            humantime::format_duration(std::time::Duration::from_secs(left.as_secs()))
        )
    } else {
        "EXPIRED".to_owned()
    }
}

fn to_text(cert: &CertificateInfo, now: SystemTime) -> String {
    let identity = match &cert.identity {
        Some(id) => id.to_string(),
        None if cert.is_ca => "(none: a CA certificate)".to_owned(),
        None => "(none: not a weft workload certificate)".to_owned(),
    };
    let mut out = format!(
        "identity     {identity}\nstatus       {}\nnot before   {}\nnot after    {}\nsubject      {}\nissuer       {}\nserial       {}\nCA           {}\nsha256       {}\n",
        status(cert, now),
        format_time(cert.not_before),
        format_time(cert.not_after),
        if cert.subject.is_empty() {
            "(empty)"
        } else {
            &cert.subject
        },
        cert.issuer,
        cert.serial,
        if cert.is_ca {
            if cert.self_signed {
                "yes (self-signed root)"
            } else {
                "yes (intermediate)"
            }
        } else {
            "no"
        },
        cert.sha256_fingerprint,
    );
    for uri in &cert.uri_sans {
        out.push_str(&format!("SAN URI      {uri}\n"));
    }
    for dns in &cert.dns_sans {
        out.push_str(&format!("SAN DNS      {dns}\n"));
    }
    out
}

fn to_json(cert: &CertificateInfo, now: SystemTime) -> serde_json::Value {
    serde_json::json!({
        "identity": cert.identity.as_ref().map(ToString::to_string),
        "status": status(cert, now),
        "not_before": format_time(cert.not_before),
        "not_after": format_time(cert.not_after),
        "subject": cert.subject,
        "issuer": cert.issuer,
        "serial": cert.serial,
        "is_ca": cert.is_ca,
        "self_signed": cert.self_signed,
        "uri_sans": cert.uri_sans,
        "dns_sans": cert.dns_sans,
        "sha256": cert.sha256_fingerprint,
    })
}

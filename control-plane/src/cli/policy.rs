//! `weft policy check FILE|DIR|- [--explain]`: the control plane's own checks, without a
//! control plane. Every problem is printed to stderr as `file:line:column: field.path: what`
//! and the exit code is 1; a good set prints one `ok:` line (and, with `--explain`, the
//! effective client policy of every document) and exits 0.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::policy::{explain, load};

/// The name standard input has in messages.
pub const STDIN_NAME: &str = "<stdin>";

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Check ServicePolicy documents: a file, a directory of *.yaml / *.yml, or - for stdin.
    Check {
        /// File, directory, or - for standard input.
        path: PathBuf,
        /// Print the effective client policy of each document and route, with where each value
        /// came from (override, defaults, built-in) and the worst cases.
        #[arg(long)]
        explain: bool,
    },
}

impl PolicyCommand {
    pub fn run(self) -> ExitCode {
        match self {
            PolicyCommand::Check { path, explain } => check(&path, explain),
        }
    }
}

fn check(path: &std::path::Path, explain: bool) -> ExitCode {
    let files = if path.as_os_str() == "-" {
        let mut text = Vec::new();
        if let Err(e) = std::io::stdin().read_to_end(&mut text) {
            eprintln!("{STDIN_NAME}: cannot read: {e}");
            return ExitCode::FAILURE;
        }
        vec![(STDIN_NAME.to_owned(), text)]
    } else {
        match load::read(path) {
            Ok(files) => files,
            Err(e) => {
                eprintln!("{e:#}");
                return ExitCode::FAILURE;
            }
        }
    };
    match load::check(&files) {
        Ok(loaded) => {
            if explain {
                for doc in &loaded {
                    println!("{}", explain::explain(doc));
                }
            }
            println!("{}", ok_line(&loaded, files.len()));
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for problem in &problems {
                eprintln!("{problem}");
            }
            let s = if problems.len() == 1 { "" } else { "s" };
            eprintln!("{} problem{s} found", problems.len());
            ExitCode::FAILURE
        }
    }
}

/// `ok: 2 ServicePolicy documents in 1 file (payments.prod, web.demo)`
pub fn ok_line(loaded: &[load::Loaded], files: usize) -> String {
    let names: Vec<String> = loaded.iter().map(|l| l.policy.key()).collect();
    let docs = if loaded.len() == 1 {
        "document"
    } else {
        "documents"
    };
    let files_word = if files == 1 { "file" } else { "files" };
    let list = if names.is_empty() {
        String::new()
    } else {
        format!(" ({})", names.join(", "))
    };
    format!(
        "ok: {} ServicePolicy {docs} in {files} {files_word}{list}",
        loaded.len()
    )
}

//! `weft policy check FILE|DIR|- [--explain] [-v] [--services PATH]`: the control plane's own
//! checks, without a control plane. Every problem is printed to stderr as
//! `file:line:column: field.path: what` and the exit code is 1; a good set prints one `ok:`
//! line (and, with `--explain`, the effective policy of every document) and exits 0.
//!
//! ServicePolicies are checked as `--policies` reads them, Gateway API HTTPRoutes as `--routes`
//! reads them ([`weft_control_plane::routes`]). A directory may be a GitOps folder: other
//! documents are skipped by the rule the control plane applies
//! ([`weft_control_plane::policy::documents`]), so a folder this accepts is one the control
//! plane accepts. `-v` says what was skipped and why.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use weft_control_plane::policy::{explain, gateway_rules, known_services, load};
use weft_control_plane::routes::{self, HttpRoute};

/// The name standard input has in messages.
pub const STDIN_NAME: &str = "<stdin>";

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Check ServicePolicy and Gateway API route documents: a file, a directory of *.yaml /
    /// *.yml (other documents, such as a GitOps folder's Deployments, are skipped), or - for
    /// stdin.
    Check {
        /// File, directory, or - for standard input.
        path: PathBuf,
        /// Print the effective policy of each document (client half per route, with where each
        /// value came from, and the worst cases; server half), then the ok line.
        #[arg(long)]
        explain: bool,
        /// Also list every document and file that was skipped, and why.
        #[arg(short, long)]
        verbose: bool,
        /// A file or directory of Service or MeshService documents: warn about each policy that
        /// names none of them (it would govern nothing).
        #[arg(long, value_name = "PATH")]
        services: Option<PathBuf>,
    },
}

impl PolicyCommand {
    pub fn run(self) -> ExitCode {
        match self {
            PolicyCommand::Check {
                path,
                explain,
                verbose,
                services,
            } => check(&path, explain, verbose, services.as_deref()),
        }
    }
}

fn check(path: &Path, explain: bool, verbose: bool, services: Option<&Path>) -> ExitCode {
    let Some(files) = read(path) else {
        return ExitCode::FAILURE;
    };
    let known = match services {
        None => None,
        Some(services) => {
            let Some(files) = read(services) else {
                return ExitCode::FAILURE;
            };
            match known_services::read(&files) {
                Ok(known) => Some(known),
                Err(problems) => {
                    for problem in &problems {
                        eprintln!("{problem}");
                    }
                    eprintln!("--services {}: cannot be read", services.display());
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let mut examined = load::examine(&files);
    let checked = match routes::examine_all(&files) {
        Ok(checked) => checked,
        Err(problems) => {
            // A file that does not parse (or is empty) was already reported.
            for problem in problems {
                if !examined.problems.contains(&problem) {
                    examined.problems.push(problem);
                }
            }
            routes::Checked::default()
        }
    };
    let routes = checked.routes.clone();
    // Overrides naming rules are checked when the files hold routes to check them against.
    if !routes.is_empty() {
        let unknown = gateway_rules::unknown(&examined.loaded, &routes);
        examined.problems.extend(unknown);
    }
    // Checked as routes, not skipped.
    examined.skipped.retain(|(_, s)| !s.route);
    if verbose {
        if path.as_os_str() != "-" {
            for (name, why) in load::not_read(path) {
                println!("{name}: skipped: {why}");
            }
        }
        for (file, skipped) in &examined.skipped {
            println!(
                "{file}:{}: skipped {}: {}",
                skipped.at, skipped.what, skipped.why
            );
        }
    }
    if !examined.problems.is_empty() {
        for problem in &examined.problems {
            eprintln!("{problem}");
        }
        let count = examined.problems.len();
        let s = if count == 1 { "" } else { "s" };
        eprintln!("{count} problem{s} found");
        return ExitCode::FAILURE;
    }
    if let Some(known) = &known {
        for loaded in &examined.loaded {
            if let Some(warning) = known_services::unknown(&loaded.policy, known) {
                eprintln!("{}:{warning}", loaded.file);
            }
        }
    }
    if explain {
        for doc in &examined.loaded {
            println!("{}", explain::explain(doc));
        }
        if !routes.is_empty() {
            println!(
                "{}",
                routes::explain::explain(&routes::Routes::with_grants(
                    routes.clone(),
                    &checked.grants
                ))
            );
        }
    }
    println!(
        "{}",
        ok_line(
            &examined.loaded,
            &routes,
            files.len(),
            examined.skipped.len(),
            verbose
        )
    );
    ExitCode::SUCCESS
}

/// The files of `path` (`-`: standard input), or `None` after saying why not.
fn read(path: &Path) -> Option<Vec<load::File>> {
    if path.as_os_str() == "-" {
        let mut text = Vec::new();
        if let Err(e) = std::io::stdin().read_to_end(&mut text) {
            eprintln!("{STDIN_NAME}: cannot read: {e}");
            return None;
        }
        return Some(vec![(STDIN_NAME.to_owned(), text)]);
    }
    match load::read(path) {
        Ok(files) => Some(files),
        Err(e) => {
            eprintln!("{e:#}");
            None
        }
    }
}

/// `ok: 2 ServicePolicy documents in 1 file (payments.prod, web.demo)`, the HTTPRoutes if there
/// are any, and how many other documents were skipped (and, unless they were `listed`, how to
/// list them).
pub fn ok_line(
    loaded: &[load::Loaded],
    routes: &[HttpRoute],
    files: usize,
    skipped: usize,
    listed: bool,
) -> String {
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
    let others = match (skipped, listed) {
        (0, _) => String::new(),
        (1, true) => "; 1 other document skipped".to_owned(),
        (1, false) => "; 1 other document skipped (-v lists it)".to_owned(),
        (n, true) => format!("; {n} other documents skipped"),
        (n, false) => format!("; {n} other documents skipped (-v lists them)"),
    };
    let routes = match routes.len() {
        0 => String::new(),
        n => {
            let names: Vec<String> = routes.iter().map(HttpRoute::key).collect();
            let word = if n == 1 {
                "Gateway API route"
            } else {
                "Gateway API routes"
            };
            format!("; {n} {word} ({})", names.join(", "))
        }
    };
    format!(
        "ok: {} ServicePolicy {docs} in {files} {files_word}{list}{routes}{others}",
        loaded.len()
    )
}

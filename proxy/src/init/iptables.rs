//! Running the iptables tools: choosing the backend, reading the `nat` table, applying a script,
//! and turning iptables' stderr into errors a person can act on.
//!
//! Two kernels' worth of iptables exist side by side: `legacy` (the old `ip_tables` modules) and
//! `nft` (the same commands on top of nftables). Rules written with one are invisible to the other,
//! and if the node's own tools (kube-proxy, the CNI plugin) use legacy while we write nft, packets
//! meet both rule sets in an order neither side expects. So, like Istio, `auto` looks at which
//! backend already holds rules: legacy if only legacy does, otherwise whatever `iptables` is on
//! this image (normally nft). `--iptables-backend` overrides the guess.

use std::fmt;
use std::io::{ErrorKind, Write as _};
use std::process::{Command, Output, Stdio};

use super::rules::Family;

/// `--iptables-backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice {
    Auto,
    Nft,
    Legacy,
}

/// Which set of binaries runs: `iptables-*`, `iptables-nft-*` or `iptables-legacy-*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Whatever `iptables` is on this system (a Debian alternative, a symlink, ...).
    Default,
    Nft,
    Legacy,
}

impl Backend {
    /// The binary for `family`, e.g. `ip6tables-legacy-restore`; `tool` is `""`, `"-save"` or
    /// `"-restore"`.
    pub fn program(self, family: Family, tool: &str) -> String {
        let base = match family {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        };
        let variant = match self {
            Backend::Default => "",
            Backend::Nft => "-nft",
            Backend::Legacy => "-legacy",
        };
        format!("{base}{variant}{tool}")
    }
}

/// The backend chosen and why, for the log.
#[derive(Debug, Clone)]
pub struct Chosen {
    pub backend: Backend,
    pub why: String,
}

impl fmt::Display for Chosen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.backend {
            Backend::Default => "default iptables",
            Backend::Nft => "nft",
            Backend::Legacy => "legacy",
        };
        write!(f, "{name} ({})", self.why)
    }
}

/// Picks the backend. Never fails: tools that are missing or refuse to run count as holding no
/// rules, and the real error (if any) comes from the first real command.
pub fn choose_backend(choice: BackendChoice) -> Chosen {
    match choice {
        BackendChoice::Nft => Chosen {
            backend: Backend::Nft,
            why: "--iptables-backend nft".to_owned(),
        },
        BackendChoice::Legacy => Chosen {
            backend: Backend::Legacy,
            why: "--iptables-backend legacy".to_owned(),
        },
        BackendChoice::Auto => {
            let legacy = rule_count("iptables-legacy-save");
            let nft = rule_count("iptables-nft-save");
            if legacy > 0 && nft == 0 {
                Chosen {
                    backend: Backend::Legacy,
                    why: format!(
                        "auto: iptables-legacy-save shows {legacy} rule(s), iptables-nft-save none"
                    ),
                }
            } else {
                let version = run("iptables", &["--version"], None)
                    .ok()
                    .filter(|out| out.status.success())
                    .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
                    .unwrap_or_else(|| "not installed".to_owned());
                let why = if legacy > 0 {
                    format!("auto: both legacy and nft tables hold rules; `iptables` is {version}")
                } else {
                    format!("auto: no legacy rules; `iptables` is {version}")
                };
                Chosen {
                    backend: Backend::Default,
                    why,
                }
            }
        }
    }
}

/// How many rules `program` (an `*-save`) shows in all tables; 0 if it cannot run.
fn rule_count(program: &str) -> usize {
    match run(program, &[], None) {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("-A "))
            .count(),
        _ => 0,
    }
}

/// One family's tools on the chosen backend.
#[derive(Debug, Clone, Copy)]
pub struct Iptables {
    pub backend: Backend,
    pub family: Family,
}

impl Iptables {
    pub fn restore_program(&self) -> String {
        self.backend.program(self.family, "-restore")
    }

    /// The `nat` table as `iptables-save -t nat` prints it.
    pub fn save_nat(&self) -> Result<String, IptablesError> {
        let program = self.backend.program(self.family, "-save");
        let out = run(&program, &["-t", "nat"], None).map_err(|e| spawn_error(&program, e))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(failure(&program, &out, None))
        }
    }

    /// Applies `script` in one transaction with `iptables-restore --noflush` (other tables and
    /// chains are left as they are).
    pub fn restore(&self, script: &str) -> Result<(), IptablesError> {
        let program = self.restore_program();
        let out =
            run(&program, &["--noflush"], Some(script)).map_err(|e| spawn_error(&program, e))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(failure(&program, &out, Some(script)))
        }
    }
}

/// Runs `program` with a fixed locale (so messages are the English ones we recognise), feeding
/// it `input` if given.
fn run(program: &str, args: &[&str], input: Option<&str>) -> std::io::Result<Output> {
    let mut child = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // A tool that exits early closes its stdin; its exit status and stderr say why, so a
        // broken pipe here is not the error to report.
        let _ = stdin.write_all(input.as_bytes());
    }
    child.wait_with_output()
}

/// What went wrong running iptables.
#[derive(Debug, thiserror::Error)]
pub enum IptablesError {
    #[error("{program} not found in PATH: install iptables (nft or legacy backend)")]
    NotFound { program: String },

    #[error(
        "permission denied changing iptables rules: run it as root or with CAP_NET_ADMIN \
         (in Kubernetes: an init container with securityContext.capabilities.add: \
         [NET_ADMIN, NET_RAW])\n  {stderr}"
    )]
    PermissionDenied { program: String, stderr: String },

    #[error("{program} failed ({status}):\n{stderr}{failing_line}")]
    Failed {
        program: String,
        status: String,
        /// iptables' stderr, indented.
        stderr: String,
        /// `\nfailing line N: ...` when iptables-restore named the line, else empty.
        failing_line: String,
    },

    #[error("cannot run {program}: {error}")]
    Spawn {
        program: String,
        error: std::io::Error,
    },
}

impl IptablesError {
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, IptablesError::PermissionDenied { .. })
    }

    /// One line, for notices ("IPv6: skipped: ...").
    pub fn brief(&self) -> String {
        match self {
            IptablesError::NotFound { program } => format!("{program} not found in PATH"),
            IptablesError::PermissionDenied { program, .. } => {
                format!("{program}: permission denied")
            }
            IptablesError::Failed {
                program, stderr, ..
            } => {
                let first = stderr.lines().next().unwrap_or_default().trim();
                format!("{program} failed: {first}")
            }
            IptablesError::Spawn { program, error } => format!("cannot run {program}: {error}"),
        }
    }
}

fn spawn_error(program: &str, error: std::io::Error) -> IptablesError {
    if error.kind() == ErrorKind::NotFound {
        IptablesError::NotFound {
            program: program.to_owned(),
        }
    } else {
        IptablesError::Spawn {
            program: program.to_owned(),
            error,
        }
    }
}

/// Classifies a failed run from its stderr; `input` is what it was fed, to quote the bad line.
fn failure(program: &str, out: &Output, input: Option<&str>) -> IptablesError {
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    classify(program, &out.status.to_string(), &stderr, input)
}

fn classify(program: &str, status: &str, stderr: &str, input: Option<&str>) -> IptablesError {
    let permission = [
        "Permission denied",
        "you must be root",
        "Operation not permitted",
    ]
    .iter()
    .any(|needle| stderr.contains(needle));
    if permission {
        return IptablesError::PermissionDenied {
            program: program.to_owned(),
            stderr: stderr.lines().next().unwrap_or_default().to_owned(),
        };
    }
    let failing_line = match (failing_line_number(stderr), input) {
        (Some(n), Some(input)) => match input.lines().nth(n.saturating_sub(1)) {
            Some(line) => format!("\nfailing line {n}: {line}"),
            None => String::new(),
        },
        _ => String::new(),
    };
    let stderr = if stderr.is_empty() {
        "  (no message)".to_owned()
    } else {
        stderr
            .lines()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    IptablesError::Failed {
        program: program.to_owned(),
        status: status.to_owned(),
        stderr,
        failing_line,
    }
}

/// The line number in `iptables-restore: line 4 failed` (legacy, and nft for rule errors) or
/// `Error occurred at line: 3` (parse errors).
fn failing_line_number(stderr: &str) -> Option<usize> {
    stderr.match_indices("line").find_map(|(at, word)| {
        let rest = stderr[at + word.len()..].trim_start_matches([':', ' ']);
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_names() {
        assert_eq!(
            Backend::Default.program(Family::V4, "-save"),
            "iptables-save"
        );
        assert_eq!(
            Backend::Legacy.program(Family::V6, "-restore"),
            "ip6tables-legacy-restore"
        );
        assert_eq!(Backend::Nft.program(Family::V4, ""), "iptables-nft");
    }

    #[test]
    fn permission_messages_of_both_backends() {
        for stderr in [
            "iptables-restore v1.8.9 (nf_tables): Could not fetch rule set generation id: \
             Permission denied (you must be root)",
            "Fatal: can't open lock file /run/xtables.lock: Permission denied",
            "iptables-restore v1.8.9 (legacy): can't initialize iptables table `nat': \
             Permission denied (you must be root)",
        ] {
            let e = classify("iptables-restore", "exit status: 4", stderr, None);
            assert!(e.is_permission_denied(), "{stderr}");
            let message = e.to_string();
            assert!(
                message.starts_with(
                    "permission denied changing iptables rules: run it as root or with \
                     CAP_NET_ADMIN (in Kubernetes: an init container with \
                     securityContext.capabilities.add: [NET_ADMIN, NET_RAW])"
                ),
                "{message}"
            );
            assert!(message.contains(stderr), "{message}");
        }
    }

    #[test]
    fn restore_failures_quote_the_failing_line() {
        let input =
            "*nat\n:WEFT_INBOUND - [0:0]\n-A WEFT_INBOUND -p tcp --dport 99999 -j RETURN\nCOMMIT\n";
        let stderr = "iptables-restore v1.8.9 (nf_tables): invalid port/service `99999' specified\n\
                      Error occurred at line: 3\n\
                      Try `iptables-restore -h' or 'iptables-restore --help' for more information.";
        let e = classify("iptables-restore", "exit status: 2", stderr, Some(input));
        assert_eq!(
            e.to_string(),
            "iptables-restore failed (exit status: 2):\n  \
             iptables-restore v1.8.9 (nf_tables): invalid port/service `99999' specified\n  \
             Error occurred at line: 3\n  \
             Try `iptables-restore -h' or 'iptables-restore --help' for more information.\n\
             failing line 3: -A WEFT_INBOUND -p tcp --dport 99999 -j RETURN"
        );
        assert_eq!(
            failing_line_number(
                "iptables-restore: line 4 failed: Bad rule (does a matching rule exist in that chain?)."
            ),
            Some(4)
        );
        assert_eq!(failing_line_number("Another app is holding the lock"), None);
    }

    #[test]
    fn missing_binary() {
        let e = spawn_error("iptables-save", std::io::Error::from(ErrorKind::NotFound));
        assert_eq!(
            e.to_string(),
            "iptables-save not found in PATH: install iptables (nft or legacy backend)"
        );
    }
}

//! `weft-proxy init`: send the pod's TCP traffic through its sidecar, with iptables.
//!
//! A sidecar only sees what the kernel hands it. Rather than asking every app to use a proxy, the
//! pod's network namespace gets `nat` rules that `REDIRECT` every inbound TCP connection to the
//! proxy's inbound port and every outbound one to its outbound port; apps keep connecting to the
//! addresses they always used. Setting the rules needs `CAP_NET_ADMIN`, which the proxy itself
//! should not hold, so this runs once, before the app and the proxy start: in Kubernetes as an
//! init container (like Istio's `istio-iptables` and Linkerd's `proxy-init`). The rules belong
//! to the namespace, so they outlive the container that wrote them.
//!
//! Running it is safe to repeat (a restarted init container must not stack a second copy of the
//! rules), every change is one atomic `iptables-restore` transaction, and `--uninstall` takes it
//! all back. [`flags`] checks the settings, [`rules`] turns them into `iptables-restore` input,
//! [`iptables`] runs the tools; this file puts the steps in order.

pub mod flags;
pub mod iptables;
pub mod net;
pub mod rules;

use std::path::Path;
use std::process::ExitCode;

pub use flags::{Action, InitArgs, InitConfig, Ipv6Mode};
use iptables::{Iptables, IptablesError};
use rules::{Family, Installed};

/// Runs `weft-proxy init`: exit code 2 for bad flags, 1 if iptables could not be changed.
pub fn run(args: &InitArgs) -> ExitCode {
    let config = match InitConfig::from_args(args) {
        Ok(config) => config,
        Err(problems) => {
            eprintln!("weft-proxy init: invalid flags:");
            for problem in problems {
                eprintln!("  - {problem}");
            }
            return ExitCode::from(2);
        }
    };
    match apply(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weft-proxy init: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A notice on stderr (stdout is kept for the dry run's rules).
fn say(message: &str) {
    eprintln!("weft-proxy init: {message}");
}

/// One family's planned change.
struct Plan {
    tables: Iptables,
    /// What the table held, if it could be read.
    found: Option<Installed>,
    /// `None`: nothing to do.
    script: Option<String>,
}

/// Reads every family's table first and only then changes anything, so a missing tool or
/// permission is reported before any family is touched.
fn apply(config: &InitConfig) -> Result<(), IptablesError> {
    let chosen = iptables::choose_backend(config.backend);
    say(&format!("iptables backend: {chosen}"));
    if config.dry_run {
        say("dry run: printing the iptables-restore input instead of applying it");
    }

    let mut plans = Vec::new();
    for family in families(config.ipv6) {
        let tables = Iptables {
            backend: chosen.backend,
            family,
        };
        let found = match tables.save_nat() {
            Ok(text) => Some(Installed::from_save(&text)),
            Err(e)
                if family == Family::V6
                    && config.ipv6 == Ipv6Mode::Auto
                    && !e.is_permission_denied() =>
            {
                say(&format!(
                    "IPv6: skipped ({}); use --ipv6 on to insist",
                    e.brief()
                ));
                continue;
            }
            Err(e) if config.dry_run => {
                let assumed = match config.action {
                    Action::Install => "without weft rules",
                    Action::Uninstall => "with the rules weft installs",
                };
                say(&format!(
                    "{}: cannot read the current rules ({}); showing the input for a \
                     namespace {assumed}",
                    family.name(),
                    e.brief()
                ));
                None
            }
            Err(e) => return Err(e),
        };
        let script = match config.action {
            Action::Install => Some(rules::install_script(
                &config.interception,
                family,
                found.as_ref().unwrap_or(&Installed::default()),
            )),
            Action::Uninstall => {
                rules::uninstall_script(found.as_ref().unwrap_or(&Installed::as_installed_by_us()))
            }
        };
        plans.push(Plan {
            tables,
            found,
            script,
        });
    }

    for plan in plans {
        let name = plan.tables.family.name();
        let Some(script) = plan.script else {
            say(&format!(
                "{name}: nothing to remove: no weft rules are installed"
            ));
            continue;
        };
        if config.dry_run {
            println!("# {} --noflush", plan.tables.restore_program());
            print!("{script}");
            continue;
        }
        plan.tables.restore(&script)?;
        say(&format!(
            "{name}: {} with {}",
            outcome(config, plan.found.as_ref()),
            plan.tables.restore_program()
        ));
    }
    Ok(())
}

/// IPv4 always; IPv6 unless off, or (in auto mode) disabled in the kernel.
fn families(ipv6: Ipv6Mode) -> Vec<Family> {
    match ipv6 {
        Ipv6Mode::Off => vec![Family::V4],
        Ipv6Mode::On => vec![Family::V4, Family::V6],
        Ipv6Mode::Auto if Path::new("/proc/net/if_inet6").exists() => {
            vec![Family::V4, Family::V6]
        }
        Ipv6Mode::Auto => {
            say("IPv6: skipped (IPv6 is disabled in this kernel)");
            vec![Family::V4]
        }
    }
}

fn outcome(config: &InitConfig, found: Option<&Installed>) -> String {
    let replaced = found.is_some_and(|f| !f.is_empty());
    match config.action {
        Action::Install => {
            let i = &config.interception;
            format!(
                "{} TCP redirection: inbound to port {}, outbound to port {} (except UID {})",
                if replaced { "reinstalled" } else { "installed" },
                i.inbound_port,
                i.outbound_port,
                i.proxy_uid
            )
        }
        Action::Uninstall => {
            let jumps = found.map_or(0, |f| f.jumps.len());
            format!("removed weft's chains and {jumps} jump(s) to them")
        }
    }
}

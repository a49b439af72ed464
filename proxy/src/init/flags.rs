//! `weft-proxy init` flags and `WEFT_*` variables in, checked [`InitConfig`] out.
//!
//! As with the proxy's own flags, values are taken as text and checked here rather than by clap,
//! so an init container with several typos reports all of them in its one log, instead of one per
//! crash-looping restart.

use clap::builder::BoolishValueParser;

use super::iptables::BackendChoice;
use super::net::{Cidr, PortRange, port};
use super::rules::Interception;

/// `weft-proxy init` flags as typed; see [`InitConfig::from_args`].
#[derive(Debug, Clone, clap::Args)]
pub struct InitArgs {
    /// UID the proxy runs as; its own connections are never redirected (or they would loop
    /// back into the proxy).
    #[arg(long, env = "WEFT_PROXY_UID", default_value = "1337")]
    pub proxy_uid: String,

    /// The proxy's inbound port (the port of its --inbound-listen): connections arriving at the
    /// pod are redirected here.
    #[arg(long, env = "WEFT_INBOUND_PORT", default_value = "15006")]
    pub inbound_port: String,

    /// The proxy's outbound port: connections the pod's processes open are redirected here.
    #[arg(long, env = "WEFT_OUTBOUND_PORT", default_value = "15001")]
    pub outbound_port: String,

    /// The proxy's admin port (the port of its --admin-listen): reached directly, never
    /// redirected, so probes and metric scrapes work.
    #[arg(long, env = "WEFT_ADMIN_PORT", default_value = "15000")]
    pub admin_port: String,

    /// Inbound ports that reach the app directly, comma-separated; ranges as 9000:9100.
    #[arg(
        long,
        env = "WEFT_SKIP_INBOUND_PORTS",
        default_value = "",
        hide_default_value = true
    )]
    pub skip_inbound_ports: String,

    /// Source networks whose connections reach the app directly, comma-separated CIDRs
    /// (IPv4 and IPv6, e.g. 10.0.0.0/8,fd00::/8).
    #[arg(
        long,
        env = "WEFT_SKIP_INBOUND_CIDRS",
        default_value = "",
        hide_default_value = true
    )]
    pub skip_inbound_cidrs: String,

    /// Destination ports the pod reaches without the proxy, comma-separated; ranges as 9000:9100.
    #[arg(
        long,
        env = "WEFT_SKIP_OUTBOUND_PORTS",
        default_value = "",
        hide_default_value = true
    )]
    pub skip_outbound_ports: String,

    /// Destination networks the pod reaches without the proxy, comma-separated CIDRs
    /// (e.g. 169.254.169.254/32 for a cloud metadata server).
    #[arg(
        long,
        env = "WEFT_SKIP_OUTBOUND_CIDRS",
        default_value = "",
        hide_default_value = true
    )]
    pub skip_outbound_cidrs: String,

    /// auto, nft or legacy. auto uses iptables-legacy if only the legacy tables hold rules (the
    /// host's tools use legacy), else the default `iptables`; the choice is printed.
    #[arg(long, env = "WEFT_IPTABLES_BACKEND", default_value = "auto")]
    pub iptables_backend: String,

    /// auto, on or off: also write the rules with ip6tables. auto skips IPv6, with a notice,
    /// when the kernel has it disabled or ip6tables is missing or does not work.
    #[arg(long, env = "WEFT_IPV6", default_value = "auto")]
    pub ipv6: String,

    /// Remove weft's chains and jumps instead of installing them (succeeds if there are none).
    #[arg(long, env = "WEFT_INIT_UNINSTALL", value_parser = BoolishValueParser::new())]
    pub uninstall: bool,

    /// Print the iptables-restore input that would be applied, change nothing. Needs neither
    /// root nor iptables (without them it shows the rules for a pod without weft rules).
    #[arg(long, env = "WEFT_INIT_DRY_RUN", value_parser = BoolishValueParser::new())]
    pub dry_run: bool,
}

impl Default for InitArgs {
    /// The same values as the flags' defaults.
    fn default() -> Self {
        Self {
            proxy_uid: "1337".into(),
            inbound_port: "15006".into(),
            outbound_port: "15001".into(),
            admin_port: "15000".into(),
            skip_inbound_ports: String::new(),
            skip_inbound_cidrs: String::new(),
            skip_outbound_ports: String::new(),
            skip_outbound_cidrs: String::new(),
            iptables_backend: "auto".into(),
            ipv6: "auto".into(),
            uninstall: false,
            dry_run: false,
        }
    }
}

/// Whether to write IPv6 rules too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv6Mode {
    /// If the kernel and ip6tables support it; otherwise skip with a notice.
    Auto,
    /// Always; failing is an error.
    On,
    Off,
}

/// Install or remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Install,
    Uninstall,
}

/// Checked `init` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitConfig {
    pub interception: Interception,
    pub backend: BackendChoice,
    pub ipv6: Ipv6Mode,
    pub action: Action,
    pub dry_run: bool,
}

impl InitConfig {
    /// Checks every flag; on failure returns one message per bad value, each naming its flag.
    pub fn from_args(args: &InitArgs) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let proxy_uid = args.proxy_uid.trim().parse::<u32>().unwrap_or_else(|_| {
            problems.push(format!(
                "--proxy-uid: {:?} is not a UID (expected a number, e.g. 1337)",
                args.proxy_uid
            ));
            0
        });
        let inbound_port = checked(&mut problems, "inbound-port", port(&args.inbound_port));
        let outbound_port = checked(&mut problems, "outbound-port", port(&args.outbound_port));
        let admin_port = checked(&mut problems, "admin-port", port(&args.admin_port));
        let skip_inbound_ports = list(
            &mut problems,
            "skip-inbound-ports",
            PortRange::parse_list(&args.skip_inbound_ports),
        );
        let skip_inbound_cidrs = list(
            &mut problems,
            "skip-inbound-cidrs",
            Cidr::parse_list(&args.skip_inbound_cidrs),
        );
        let skip_outbound_ports = list(
            &mut problems,
            "skip-outbound-ports",
            PortRange::parse_list(&args.skip_outbound_ports),
        );
        let skip_outbound_cidrs = list(
            &mut problems,
            "skip-outbound-cidrs",
            Cidr::parse_list(&args.skip_outbound_cidrs),
        );

        if inbound_port.is_some() && inbound_port == outbound_port {
            problems.push(format!(
                "--inbound-port and --outbound-port are both {}: the proxy cannot tell \
                 inbound from outbound connections on one port",
                args.inbound_port.trim()
            ));
        }

        let backend = match args.iptables_backend.trim() {
            "auto" => BackendChoice::Auto,
            "nft" => BackendChoice::Nft,
            "legacy" => BackendChoice::Legacy,
            other => {
                problems.push(format!(
                    "--iptables-backend: {other:?} is not one of auto, nft, legacy"
                ));
                BackendChoice::Auto
            }
        };
        let ipv6 = match args.ipv6.trim() {
            "auto" => Ipv6Mode::Auto,
            "on" => Ipv6Mode::On,
            "off" => Ipv6Mode::Off,
            other => {
                problems.push(format!("--ipv6: {other:?} is not one of auto, on, off"));
                Ipv6Mode::Auto
            }
        };

        let (Some(inbound_port), Some(outbound_port), Some(admin_port)) =
            (inbound_port, outbound_port, admin_port)
        else {
            return Err(problems);
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            interception: Interception {
                proxy_uid,
                inbound_port,
                outbound_port,
                admin_port,
                skip_inbound_ports,
                skip_inbound_cidrs,
                skip_outbound_ports,
                skip_outbound_cidrs,
            },
            backend,
            ipv6,
            action: if args.uninstall {
                Action::Uninstall
            } else {
                Action::Install
            },
            dry_run: args.dry_run,
        })
    }
}

/// The value, or `None` after noting the problem against its flag.
fn checked<T>(problems: &mut Vec<String>, flag: &str, result: Result<T, String>) -> Option<T> {
    result
        .map_err(|e| problems.push(format!("--{flag}: {e}")))
        .ok()
}

/// The good entries of a list, after noting each bad one against its flag.
fn list<T>(problems: &mut Vec<String>, flag: &str, parsed: (Vec<T>, Vec<String>)) -> Vec<T> {
    let (values, bad) = parsed;
    problems.extend(bad.into_iter().map(|e| format!("--{flag}: {e}")));
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_weft_contract() {
        let config = InitConfig::from_args(&InitArgs::default()).unwrap();
        assert_eq!(config.interception, Interception::default());
        assert_eq!(config.backend, BackendChoice::Auto);
        assert_eq!(config.ipv6, Ipv6Mode::Auto);
        assert_eq!(config.action, Action::Install);
        assert!(!config.dry_run);
    }

    #[test]
    fn reports_every_bad_value_at_once() {
        let args = InitArgs {
            proxy_uid: "proxy".into(),
            inbound_port: "15006x".into(),
            outbound_port: "0".into(),
            admin_port: "15000".into(),
            skip_inbound_ports: "22,ssh,9100:9000".into(),
            skip_inbound_cidrs: "10.0.0.0/8,10.0.0.0/40".into(),
            skip_outbound_ports: "70000".into(),
            skip_outbound_cidrs: "metadata".into(),
            iptables_backend: "xtables".into(),
            ipv6: "yes".into(),
            ..InitArgs::default()
        };
        let problems = InitConfig::from_args(&args).unwrap_err();
        assert_eq!(
            problems,
            [
                "--proxy-uid: \"proxy\" is not a UID (expected a number, e.g. 1337)",
                "--inbound-port: \"15006x\" is not a port number (expected 1-65535)",
                "--outbound-port: \"0\" is not a port number (expected 1-65535)",
                "--skip-inbound-ports: \"ssh\" is not a port number (expected 1-65535)",
                "--skip-inbound-ports: range \"9100:9000\" ends before it starts",
                "--skip-inbound-cidrs: \"10.0.0.0/40\" is not a CIDR: the prefix length must be 0-32",
                "--skip-outbound-ports: \"70000\" is not a port number (expected 1-65535)",
                "--skip-outbound-cidrs: \"metadata\" is not a CIDR (expected e.g. 10.0.0.0/8 or fd00::/8)",
                "--iptables-backend: \"xtables\" is not one of auto, nft, legacy",
                "--ipv6: \"yes\" is not one of auto, on, off",
            ]
        );
    }

    #[test]
    fn same_inbound_and_outbound_port_is_refused() {
        let args = InitArgs {
            outbound_port: "15006".into(),
            ..InitArgs::default()
        };
        let problems = InitConfig::from_args(&args).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("--inbound-port and --outbound-port are both 15006"));
    }

    #[test]
    fn lists_and_modes_parse() {
        let args = InitArgs {
            skip_inbound_ports: "22, 9000:9100".into(),
            skip_outbound_cidrs: "169.254.169.254/32,fd00::/8".into(),
            iptables_backend: "legacy".into(),
            ipv6: "off".into(),
            uninstall: true,
            dry_run: true,
            ..InitArgs::default()
        };
        let config = InitConfig::from_args(&args).unwrap();
        assert_eq!(config.interception.skip_inbound_ports.len(), 2);
        assert_eq!(config.interception.skip_outbound_cidrs.len(), 2);
        assert_eq!(config.backend, BackendChoice::Legacy);
        assert_eq!(config.ipv6, Ipv6Mode::Off);
        assert_eq!(config.action, Action::Uninstall);
        assert!(config.dry_run);
    }
}

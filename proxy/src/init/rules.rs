//! The rules themselves, as pure text: settings and the table's current state in,
//! `iptables-restore` input out.
//!
//! Everything weft adds lives in two chains of the `nat` table, `WEFT_INBOUND` (jumped to from
//! `PREROUTING`: connections arriving at the pod) and `WEFT_OUTPUT` (jumped to from `OUTPUT`:
//! connections the pod's processes open). Each chain lists what to leave alone and ends in a
//! `REDIRECT` to the proxy's port, which rewrites the destination to the pod itself; the proxy
//! reads the original one back with `SO_ORIGINAL_DST`.
//!
//! The whole change is one `iptables-restore --noflush` transaction, so the table is never left
//! half-configured. Declaring a chain (`:WEFT_INBOUND - [0:0]`) creates or empties it; the jumps
//! from the built-in chains are the only part that needs the current state: any jump that is
//! already there is deleted (`-D`, exactly as `iptables-save` printed it) in the same transaction
//! that appends the new one, so running `init` again leaves exactly one jump and one copy of each
//! chain, even if an older version wrote different rules.
//!
//! Order matters inside `WEFT_OUTPUT`: the proxy's own connections (by UID) must return first,
//! or every connection the proxy makes would be sent back to itself.

use std::fmt::Write as _;

use super::net::{Cidr, PortRange};

/// The chain for connections arriving at the pod.
pub const INBOUND_CHAIN: &str = "WEFT_INBOUND";
/// The chain for connections the pod's processes open.
pub const OUTBOUND_CHAIN: &str = "WEFT_OUTPUT";
/// Where each of our chains is jumped to from.
const JUMPS: [(&str, &str); 2] = [("PREROUTING", INBOUND_CHAIN), ("OUTPUT", OUTBOUND_CHAIN)];

/// IPv4 (`iptables`) or IPv6 (`ip6tables`): the same rules, with the family's loopback network
/// and only the skip networks of that family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    fn loopback(self) -> &'static str {
        match self {
            Family::V4 => "127.0.0.0/8",
            Family::V6 => "::1/128",
        }
    }

    fn holds(self, cidr: &Cidr) -> bool {
        cidr.is_ipv4() == (self == Family::V4)
    }
}

/// What to redirect to the proxy and what to leave alone (checked settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interception {
    /// Connections opened by this UID (the proxy's own) are never redirected.
    pub proxy_uid: u32,
    /// Where inbound connections are redirected to.
    pub inbound_port: u16,
    /// Where outbound connections are redirected to.
    pub outbound_port: u16,
    /// The admin port: probes and scrapes reach it directly.
    pub admin_port: u16,
    pub skip_inbound_ports: Vec<PortRange>,
    /// Connections from these networks reach the app directly.
    pub skip_inbound_cidrs: Vec<Cidr>,
    pub skip_outbound_ports: Vec<PortRange>,
    /// Connections to these networks bypass the proxy.
    pub skip_outbound_cidrs: Vec<Cidr>,
}

impl Default for Interception {
    /// weft's contract: UID 1337, outbound 15001, inbound 15006, admin 15000, nothing skipped.
    fn default() -> Self {
        Self {
            proxy_uid: 1337,
            inbound_port: 15006,
            outbound_port: 15001,
            admin_port: 15000,
            skip_inbound_ports: Vec::new(),
            skip_inbound_cidrs: Vec::new(),
            skip_outbound_ports: Vec::new(),
            skip_outbound_cidrs: Vec::new(),
        }
    }
}

impl Interception {
    /// The contents of `WEFT_INBOUND` and `WEFT_OUTPUT`, as `-A` lines, in order.
    pub fn chain_rules(&self, family: Family) -> Vec<String> {
        let mut rules = Vec::new();
        let inbound = |rule: String| format!("-A {INBOUND_CHAIN} {rule}");
        let outbound = |rule: String| format!("-A {OUTBOUND_CHAIN} {rule}");

        for port in [self.inbound_port, self.outbound_port, self.admin_port] {
            rules.push(inbound(format!("-p tcp --dport {port} -j RETURN")));
        }
        for ports in &self.skip_inbound_ports {
            rules.push(inbound(format!("-p tcp --dport {ports} -j RETURN")));
        }
        for cidr in self.skip_inbound_cidrs.iter().filter(|c| family.holds(c)) {
            rules.push(inbound(format!("-s {cidr} -j RETURN")));
        }
        rules.push(inbound(format!(
            "-p tcp -j REDIRECT --to-ports {}",
            self.inbound_port
        )));

        rules.push(outbound(format!(
            "-m owner --uid-owner {} -j RETURN",
            self.proxy_uid
        )));
        rules.push(outbound("-o lo -j RETURN".to_owned()));
        rules.push(outbound(format!("-d {} -j RETURN", family.loopback())));
        for ports in &self.skip_outbound_ports {
            rules.push(outbound(format!("-p tcp --dport {ports} -j RETURN")));
        }
        for cidr in self.skip_outbound_cidrs.iter().filter(|c| family.holds(c)) {
            rules.push(outbound(format!("-d {cidr} -j RETURN")));
        }
        rules.push(outbound(format!(
            "-p tcp -j REDIRECT --to-ports {}",
            self.outbound_port
        )));
        rules
    }
}

/// What of ours a `nat` table holds, read from `iptables-save -t nat`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Installed {
    /// Rules in other chains that jump to ours, exactly as saved (`-A PREROUTING ...`).
    pub jumps: Vec<String>,
    /// Which of our chains exist.
    pub chains: Vec<&'static str>,
}

impl Installed {
    /// Parses `iptables-save` output (only the `nat` table is looked at).
    pub fn from_save(text: &str) -> Self {
        let mut installed = Self::default();
        let mut in_nat = false;
        for line in text.lines().map(str::trim) {
            if let Some(table) = line.strip_prefix('*') {
                in_nat = table == "nat";
                continue;
            }
            if !in_nat {
                continue;
            }
            if let Some(declaration) = line.strip_prefix(':') {
                let name = declaration.split_whitespace().next().unwrap_or_default();
                if let Some(ours) = our_chain(name) {
                    installed.chains.push(ours);
                }
            } else if line.starts_with("-A ") && is_jump_to_ours(line) {
                installed.jumps.push(line.to_owned());
            }
        }
        installed
    }

    /// What [`install_script`] leaves behind: both chains and one jump to each.
    pub fn as_installed_by_us() -> Self {
        Self {
            jumps: JUMPS
                .iter()
                .map(|(from, to)| jump(from, to))
                .collect::<Vec<_>>(),
            chains: vec![INBOUND_CHAIN, OUTBOUND_CHAIN],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.jumps.is_empty() && self.chains.is_empty()
    }
}

fn our_chain(name: &str) -> Option<&'static str> {
    [INBOUND_CHAIN, OUTBOUND_CHAIN]
        .into_iter()
        .find(|ours| *ours == name)
}

/// `-A <chain> ... -j|-g WEFT_...` where `<chain>` is not one of ours.
fn is_jump_to_ours(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    let from_ours = words.get(1).is_some_and(|chain| our_chain(chain).is_some());
    let jumps_to_ours = words
        .windows(2)
        .any(|w| matches!(w[0], "-j" | "--jump" | "-g" | "--goto") && our_chain(w[1]).is_some());
    !from_ours && jumps_to_ours
}

fn jump(from: &str, to: &str) -> String {
    format!("-A {from} -p tcp -j {to}")
}

/// The `iptables-restore --noflush` input that (re)installs our chains and jumps, replacing
/// whatever `installed` found.
pub fn install_script(
    interception: &Interception,
    family: Family,
    installed: &Installed,
) -> String {
    let mut script = String::from("*nat\n");
    for chain in [INBOUND_CHAIN, OUTBOUND_CHAIN] {
        let _ = writeln!(script, ":{chain} - [0:0]");
    }
    for old in &installed.jumps {
        let _ = writeln!(script, "{}", delete(old));
    }
    for rule in interception.chain_rules(family) {
        let _ = writeln!(script, "{rule}");
    }
    for (from, to) in JUMPS {
        let _ = writeln!(script, "{}", jump(from, to));
    }
    script.push_str("COMMIT\n");
    script
}

/// The `iptables-restore --noflush` input that removes what `installed` found: the jumps first,
/// then the (emptied) chains. `None` when there is nothing to remove.
pub fn uninstall_script(installed: &Installed) -> Option<String> {
    if installed.is_empty() {
        return None;
    }
    let mut script = String::from("*nat\n");
    for chain in &installed.chains {
        let _ = writeln!(script, ":{chain} - [0:0]");
    }
    for old in &installed.jumps {
        let _ = writeln!(script, "{}", delete(old));
    }
    for chain in &installed.chains {
        let _ = writeln!(script, "-X {chain}");
    }
    script.push_str("COMMIT\n");
    Some(script)
}

/// `-A CHAIN spec` as saved → `-D CHAIN spec`, which deletes that exact rule.
fn delete(saved: &str) -> String {
    match saved.strip_prefix("-A ") {
        Some(rest) => format!("-D {rest}"),
        None => saved.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT_V4: &str = "\
*nat
:WEFT_INBOUND - [0:0]
:WEFT_OUTPUT - [0:0]
-A WEFT_INBOUND -p tcp --dport 15006 -j RETURN
-A WEFT_INBOUND -p tcp --dport 15001 -j RETURN
-A WEFT_INBOUND -p tcp --dport 15000 -j RETURN
-A WEFT_INBOUND -p tcp -j REDIRECT --to-ports 15006
-A WEFT_OUTPUT -m owner --uid-owner 1337 -j RETURN
-A WEFT_OUTPUT -o lo -j RETURN
-A WEFT_OUTPUT -d 127.0.0.0/8 -j RETURN
-A WEFT_OUTPUT -p tcp -j REDIRECT --to-ports 15001
-A PREROUTING -p tcp -j WEFT_INBOUND
-A OUTPUT -p tcp -j WEFT_OUTPUT
COMMIT
";

    fn with_skips() -> Interception {
        Interception {
            proxy_uid: 2102,
            inbound_port: 4143,
            outbound_port: 4140,
            admin_port: 4191,
            skip_inbound_ports: vec![
                PortRange::single(22),
                PortRange::parse("9000:9100").unwrap(),
            ],
            skip_inbound_cidrs: vec![
                Cidr::parse("10.0.0.0/8").unwrap(),
                Cidr::parse("fd00::/8").unwrap(),
            ],
            skip_outbound_ports: vec![PortRange::single(5432)],
            skip_outbound_cidrs: vec![
                Cidr::parse("169.254.169.254").unwrap(),
                Cidr::parse("2001:db8::/32").unwrap(),
            ],
        }
    }

    #[test]
    fn default_rules_on_a_fresh_table() {
        let script = install_script(&Interception::default(), Family::V4, &Installed::default());
        assert_eq!(script, DEFAULT_V4);
    }

    #[test]
    fn ipv6_uses_its_own_loopback() {
        let script = install_script(&Interception::default(), Family::V6, &Installed::default());
        assert_eq!(script, DEFAULT_V4.replace("-d 127.0.0.0/8", "-d ::1/128"));
    }

    #[test]
    fn skip_lists_and_other_ports_split_by_family() {
        let v4 = install_script(&with_skips(), Family::V4, &Installed::default());
        assert_eq!(
            v4,
            "\
*nat
:WEFT_INBOUND - [0:0]
:WEFT_OUTPUT - [0:0]
-A WEFT_INBOUND -p tcp --dport 4143 -j RETURN
-A WEFT_INBOUND -p tcp --dport 4140 -j RETURN
-A WEFT_INBOUND -p tcp --dport 4191 -j RETURN
-A WEFT_INBOUND -p tcp --dport 22 -j RETURN
-A WEFT_INBOUND -p tcp --dport 9000:9100 -j RETURN
-A WEFT_INBOUND -s 10.0.0.0/8 -j RETURN
-A WEFT_INBOUND -p tcp -j REDIRECT --to-ports 4143
-A WEFT_OUTPUT -m owner --uid-owner 2102 -j RETURN
-A WEFT_OUTPUT -o lo -j RETURN
-A WEFT_OUTPUT -d 127.0.0.0/8 -j RETURN
-A WEFT_OUTPUT -p tcp --dport 5432 -j RETURN
-A WEFT_OUTPUT -d 169.254.169.254/32 -j RETURN
-A WEFT_OUTPUT -p tcp -j REDIRECT --to-ports 4140
-A PREROUTING -p tcp -j WEFT_INBOUND
-A OUTPUT -p tcp -j WEFT_OUTPUT
COMMIT
"
        );
        let v6 = with_skips().chain_rules(Family::V6).join("\n");
        assert!(v6.contains("-A WEFT_INBOUND -s fd00::/8 -j RETURN"), "{v6}");
        assert!(
            v6.contains("-A WEFT_OUTPUT -d 2001:db8::/32 -j RETURN"),
            "{v6}"
        );
        assert!(v6.contains("-A WEFT_OUTPUT -d ::1/128 -j RETURN"), "{v6}");
        assert!(
            !v6.contains("10.0.0.0/8") && !v6.contains("169.254"),
            "{v6}"
        );
    }

    /// As iptables-nft-save prints a table holding our rules (twice jumped to from OUTPUT, as a
    /// careless earlier run might leave it) next to someone else's.
    const SAVED: &str = "\
# Generated by iptables-save v1.8.9 (nf_tables) on Sat Nov 21 20:18:52 2026
*filter
:INPUT ACCEPT [0:0]
-A INPUT -j WEFT_INBOUND
COMMIT
*nat
:PREROUTING ACCEPT [12:720]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [3:180]
:POSTROUTING ACCEPT [0:0]
:OTHER - [0:0]
:WEFT_INBOUND - [0:0]
:WEFT_OUTPUT - [0:0]
-A PREROUTING -j OTHER
-A PREROUTING -p tcp -j WEFT_INBOUND
-A OUTPUT -p tcp -j WEFT_OUTPUT
-A OUTPUT -m comment --comment \"old weft\" -g WEFT_OUTPUT
-A OTHER -d 10.0.0.0/8 -j RETURN
-A WEFT_INBOUND -p tcp -m tcp --dport 15006 -j RETURN
-A WEFT_INBOUND -p tcp -j REDIRECT --to-ports 15006
-A WEFT_OUTPUT -m owner --uid-owner 1337 -j RETURN
-A WEFT_OUTPUT -p tcp -j REDIRECT --to-ports 15001
COMMIT
# Completed on Sat Nov 21 20:18:52 2026
";

    #[test]
    fn finds_our_chains_and_every_jump_to_them_in_nat_only() {
        let installed = Installed::from_save(SAVED);
        assert_eq!(installed.chains, [INBOUND_CHAIN, OUTBOUND_CHAIN]);
        assert_eq!(
            installed.jumps,
            [
                "-A PREROUTING -p tcp -j WEFT_INBOUND",
                "-A OUTPUT -p tcp -j WEFT_OUTPUT",
                "-A OUTPUT -m comment --comment \"old weft\" -g WEFT_OUTPUT",
            ]
        );
        assert!(Installed::from_save("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n").is_empty());
        assert!(Installed::from_save("").is_empty());
    }

    #[test]
    fn reinstalling_deletes_the_old_jumps_in_the_same_transaction() {
        let script = install_script(
            &Interception::default(),
            Family::V4,
            &Installed::from_save(SAVED),
        );
        let old_jumps = "\
-D PREROUTING -p tcp -j WEFT_INBOUND
-D OUTPUT -p tcp -j WEFT_OUTPUT
-D OUTPUT -m comment --comment \"old weft\" -g WEFT_OUTPUT
";
        let expected = DEFAULT_V4.replacen(
            ":WEFT_OUTPUT - [0:0]\n",
            &format!(":WEFT_OUTPUT - [0:0]\n{old_jumps}"),
            1,
        );
        assert_eq!(script, expected);
    }

    #[test]
    fn uninstall_removes_jumps_then_chains() {
        assert_eq!(
            uninstall_script(&Installed::from_save(SAVED)).unwrap(),
            "\
*nat
:WEFT_INBOUND - [0:0]
:WEFT_OUTPUT - [0:0]
-D PREROUTING -p tcp -j WEFT_INBOUND
-D OUTPUT -p tcp -j WEFT_OUTPUT
-D OUTPUT -m comment --comment \"old weft\" -g WEFT_OUTPUT
-X WEFT_INBOUND
-X WEFT_OUTPUT
COMMIT
"
        );
        assert_eq!(uninstall_script(&Installed::default()), None);
        let ours = Installed::as_installed_by_us();
        let reread = Installed::from_save(DEFAULT_V4);
        assert_eq!(reread, ours, "install_script's output parses back as ours");
    }
}

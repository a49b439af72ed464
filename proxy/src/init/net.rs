//! The two kinds of value the skip lists hold: TCP port ranges and CIDR networks.
//!
//! Both are parsed into checked values here and printed in the form iptables itself prints them
//! (`9000:9100`, `10.0.0.0/8`), so the rules we write read the same as `iptables-save` shows them
//! and a dry run shows exactly what the kernel will hold.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A TCP port or an inclusive range of ports, e.g. `80` or `9000:9100`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    first: u16,
    last: u16,
}

impl PortRange {
    /// One port.
    pub fn single(port: u16) -> Self {
        Self {
            first: port,
            last: port,
        }
    }

    /// Parses `PORT`, `FIRST:LAST` or `FIRST-LAST` (ports 1-65535).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        match text.split_once([':', '-']) {
            None => port(text).map(Self::single),
            Some((first, last)) => {
                let (first, last) = (port(first.trim())?, port(last.trim())?);
                if first > last {
                    return Err(format!("range {text:?} ends before it starts"));
                }
                Ok(Self { first, last })
            }
        }
    }

    /// Parses a comma-separated list, one message per bad entry. Empty entries (a trailing comma,
    /// an empty variable) are ignored.
    pub fn parse_list(text: &str) -> (Vec<Self>, Vec<String>) {
        parse_list(text, Self::parse)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}:{}", self.first, self.last)
        }
    }
}

/// A single port, 1-65535.
pub fn port(text: &str) -> Result<u16, String> {
    match text.trim().parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("{text:?} is not a port number (expected 1-65535)")),
        Ok(port) => Ok(port),
    }
}

/// An IPv4 or IPv6 network, e.g. `10.0.0.0/8` or `fd00::/8`; a bare address means just that host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDRESS/PREFIX` or `ADDRESS`. Host bits are cleared (`10.1.2.3/8` is `10.0.0.0/8`),
    /// as iptables does.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| {
            format!("{text:?} is not a CIDR (expected e.g. 10.0.0.0/8 or fd00::/8)")
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => {
                    return Err(format!(
                        "{text:?} is not a CIDR: the prefix length must be 0-{max}"
                    ));
                }
            },
        };
        let network = match addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        Ok(Self { network, prefix })
    }

    /// Parses a comma-separated list, one message per bad entry.
    pub fn parse_list(text: &str) -> (Vec<Self>, Vec<String>) {
        parse_list(text, Self::parse)
    }

    pub fn is_ipv4(&self) -> bool {
        self.network.is_ipv4()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn parse_list<T>(text: &str, parse: fn(&str) -> Result<T, String>) -> (Vec<T>, Vec<String>) {
    let mut values = Vec::new();
    let mut problems = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        match parse(entry) {
            Ok(value) => values.push(value),
            Err(problem) => problems.push(problem),
        }
    }
    (values, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_ranges() {
        assert_eq!(PortRange::parse("80").unwrap().to_string(), "80");
        assert_eq!(
            PortRange::parse(" 9000:9100 ").unwrap().to_string(),
            "9000:9100"
        );
        assert_eq!(
            PortRange::parse("9000-9100").unwrap().to_string(),
            "9000:9100"
        );
        assert_eq!(PortRange::parse("22:22").unwrap().to_string(), "22");
        for bad in ["0", "65536", "http", "", "9100:9000", "1:", ":5", "1:2:3"] {
            assert!(PortRange::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn port_lists_skip_empty_entries_and_report_each_bad_one() {
        let (ports, problems) = PortRange::parse_list("22, 9000:9100,,x,70000,");
        let ports: Vec<String> = ports.iter().map(ToString::to_string).collect();
        assert_eq!(ports, ["22", "9000:9100"]);
        assert_eq!(
            problems,
            [
                "\"x\" is not a port number (expected 1-65535)",
                "\"70000\" is not a port number (expected 1-65535)",
            ]
        );
        assert_eq!(PortRange::parse_list(""), (vec![], vec![]));
    }

    #[test]
    fn cidrs() {
        let shown = |t: &str| Cidr::parse(t).unwrap().to_string();
        assert_eq!(shown("10.0.0.0/8"), "10.0.0.0/8");
        assert_eq!(shown("10.1.2.3/8"), "10.0.0.0/8");
        assert_eq!(shown("192.168.1.7"), "192.168.1.7/32");
        assert_eq!(shown("0.0.0.0/0"), "0.0.0.0/0");
        assert_eq!(shown("fd00::1/8"), "fd00::/8");
        assert_eq!(shown("::1"), "::1/128");
        assert!(Cidr::parse("fd00::/8").is_ok_and(|c| !c.is_ipv4()));
        for bad in [
            "10.0.0.0/33",
            "10.0.0/8",
            "fd00::/129",
            "10.0.0.0/x",
            "example.com",
            "",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}

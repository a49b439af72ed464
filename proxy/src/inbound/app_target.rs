//! Where the inbound side connects to reach the app behind an intercepted connection.
//!
//! A caller dialled `pod-ip:port`, iptables redirected it to the proxy, and the proxy now opens
//! its own connection to the app. Connecting to that same `pod-ip:port` (the default) keeps
//! the mesh from changing what is reachable: a port the app binds to loopback only (a debug or
//! admin server) stays unreachable from the network, exactly as without a sidecar, and the app
//! sees its usual local address. Connecting to `127.0.0.1:port` instead (`loopback`) suits apps
//! that listen on loopback only and rely on the sidecar to expose them; it also exposes every
//! loopback-only port of the pod to anyone who can reach the pod.
//!
//! The proxy's own connection to the pod address is not redirected back into it: `weft-proxy
//! init` exempts the proxy's UID first thing in `OUTPUT` (see [`crate::init::rules`]), and a
//! connection to a local address leaves through `lo`, which is exempt too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::transport::OrigDstAddr;

/// `--inbound-connect-to`: which address of the pod the app is reached at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectTo {
    /// The address the caller asked for (the pod's own IPv4 or IPv6 address).
    PodAddress,
    /// Loopback of the same family, at the port the caller asked for.
    Loopback,
}

impl ConnectTo {
    /// Parses the flag's value.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "pod-address" => Ok(Self::PodAddress),
            "loopback" => Ok(Self::Loopback),
            other => Err(format!(
                "--inbound-connect-to {other:?}: expected pod-address or loopback"
            )),
        }
    }

    /// The app's address for a connection whose caller asked for `orig`.
    pub fn app_target(self, orig: OrigDstAddr) -> SocketAddr {
        match self {
            ConnectTo::PodAddress => orig.0,
            ConnectTo::Loopback => {
                let ip: IpAddr = match orig.0.ip() {
                    IpAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                    IpAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
                };
                SocketAddr::new(ip, orig.0.port())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(mode: ConnectTo, orig: &str) -> String {
        mode.app_target(OrigDstAddr(orig.parse().unwrap()))
            .to_string()
    }

    #[test]
    fn pod_address_keeps_the_original_destination_of_either_family() {
        assert_eq!(
            target(ConnectTo::PodAddress, "10.1.2.3:8080"),
            "10.1.2.3:8080"
        );
        assert_eq!(
            target(ConnectTo::PodAddress, "[fd00::3]:8080"),
            "[fd00::3]:8080"
        );
    }

    #[test]
    fn loopback_keeps_the_port_and_the_family() {
        assert_eq!(
            target(ConnectTo::Loopback, "10.1.2.3:8080"),
            "127.0.0.1:8080"
        );
        assert_eq!(target(ConnectTo::Loopback, "[fd00::3]:8080"), "[::1]:8080");
    }

    #[test]
    fn parses_the_flag_and_names_it_when_wrong() {
        assert_eq!(ConnectTo::parse("pod-address"), Ok(ConnectTo::PodAddress));
        assert_eq!(ConnectTo::parse(" loopback "), Ok(ConnectTo::Loopback));
        assert_eq!(
            ConnectTo::parse("localhost").unwrap_err(),
            "--inbound-connect-to \"localhost\": expected pod-address or loopback"
        );
    }
}

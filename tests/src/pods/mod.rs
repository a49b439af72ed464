//! Pods on one machine: each pod a Linux network namespace with its own address, all joined by a
//! bridge, so end-to-end tests run real programs (and later weft sidecars with their iptables
//! rules) with the isolation they get in a cluster: their own loopback, their own port space,
//! their own netfilter tables, and a wire between them that tcpdump can watch.
//!
//! Layout of one [`Pods`] (instance `k` of process `pid`):
//!
//! ```text
//!  netns wpod-<pid>-<k>-<pod>     netns wpod-<pid>-<k> ("bridge")
//!  lo up, eth0 10.X.Y.(2+i)/25    br0 10.X.Y.1/25 ── h<i>-<pod> (peer of the pod's eth0)
//!  default via 10.X.Y.1           unreachable 10.X.Y.128/25 (the VIP range)
//! ```
//!
//! with `X = 200 + k % 50` and `Y = pid % 256`. Pods reach each other directly over the bridge;
//! a process in the bridge namespace (a control plane) is reachable from every pod at `.1`.
//! Addresses in `10.X.Y.128/25` belong to nobody: a pod routes them to `.1` by its default route
//! and the bridge namespace refuses them at once (ICMP unreachable), so they suit service VIPs
//! that iptables in the client pod rewrites before they reach the wire ([`Pods::allocate_vip`]).
//!
//! When the kernel has IPv6, each pod's `eth0` also gets `fd00:X:Y::(2+i)/64` and `br0`
//! `fd00:X:Y::1/64` (unique local addresses; X and Y as above, in hex), added without duplicate
//! address detection so they work at once. The /64 is on-link everywhere, so pods reach each
//! other over IPv6 without routes ([`Pod::ip6`]); there is no IPv6 VIP range.
//!
//! Every instance has its own bridge namespace, so instances never share a link and their
//! addresses could even coincide; distinct subnets just keep captures and logs unambiguous.
//! Interface names are short and only need to be unique inside one instance's namespaces.
//!
//! Cleanup: dropping [`Pods`] (also while a test panics) kills the processes it started, then
//! every other process left in its namespaces (found like `ip netns pids` does), then deletes
//! the namespaces, which takes the veths, the bridge, routes and iptables rules with them, then
//! kills any process that entered a namespace meanwhile (found by the namespace's inode).
//! A test process that died without dropping leaves namespaces named after its pid; the next
//! [`Pods::create`] in any process deletes those whose pid is no longer alive (pids are assumed
//! to be from one pid namespace).
//!
//! On top of it, [`pod_mesh`] runs weft in pods the way a cluster does (`weft-proxy init`, the
//! sidecar as UID 1337) and [`pod_spec`] runs a pod spec's container the way the kubelet does.
//!
//! Needs root, iproute2, util-linux `setpriv` and tcpdump: start each test with [`available`].

mod capture;
mod names;
mod netns;
pub mod pcap;
pub mod pod_mesh;
pub mod pod_spec;
mod process;

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tempfile::TempDir;

pub use capture::Capture;
pub use names::{PREFIX, bridge_namespace, pod_namespace, remove_stale};
pub use netns::{Netns, exists as netns_exists, list as netns_list};
pub use pcap::{Segment, Stream, Traffic};
pub use process::{Process, Ran, alive, output};

use crate::process::programs;
use names::check_names;
use process::Registry;

/// First VIP handed out, and the last usable one, in the instance's `.128/25`.
const FIRST_VIP: u8 = 200;
const LAST_VIP: u8 = 254;

/// Whether this test can build pods: root, `ip`, `setpriv`, `tcpdump` and `bash`. If not, prints
/// one line saying what is missing and how to run `suite` (a module of the `pods` test binary),
/// and returns false; with `WEFT_REQUIRE_PEERS` set (CI) it panics instead.
pub fn available(suite: &str) -> bool {
    let mut missing = Vec::new();
    if !is_root() {
        missing.push("root".to_owned());
    }
    for (program, package) in [
        ("ip", "iproute2"),
        ("setpriv", "util-linux"),
        ("tcpdump", "tcpdump"),
        ("bash", "bash"),
    ] {
        if !programs::installed(program) {
            missing.push(format!("{program} (apt-get install {package})"));
        }
    }
    missing.is_empty()
        || programs::skip(&format!(
            "{suite} needs root and iproute2/setpriv/tcpdump (missing: {}): run \
             `sudo -E env PATH=$PATH cargo test -p weft-tests --test pods {suite}::`",
            missing.join(", ")
        ))
}

/// Whether the kernel has IPv6 (then pods get IPv6 addresses too).
pub fn ipv6_available() -> bool {
    std::path::Path::new("/proc/net/if_inet6").exists()
}

fn is_root() -> bool {
    // The effective uid is the second field of `Uid:`.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

/// An IPv4 network, e.g. `10.200.7.0/25`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        u32::from(ip) & mask == u32::from(self.addr) & mask
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// One pod: a network namespace with `lo` and `eth0` up, an address, and a default route to the
/// bridge.
pub struct Pod {
    name: String,
    netns: Netns,
    ip: Ipv4Addr,
    ip6: Option<Ipv6Addr>,
    host_veth: String,
    registry: Arc<Registry>,
}

impl Pod {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The network namespace's name, as `ip netns` knows it.
    pub fn namespace(&self) -> &str {
        self.netns.name()
    }

    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// The address of its `eth0`.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// `ip():port`
    pub fn addr(&self, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(self.ip, port)
    }

    /// The IPv6 address of its `eth0`; `None` when the kernel has no IPv6.
    pub fn ip6(&self) -> Option<Ipv6Addr> {
        self.ip6
    }

    /// `[ip6()]:port`; panics when the kernel has no IPv6 (check [`ipv6_available`] first).
    pub fn addr6(&self, port: u16) -> SocketAddrV6 {
        let ip = self
            .ip6
            .unwrap_or_else(|| panic!("pod {} has no IPv6 address", self.name));
        SocketAddrV6::new(ip, port, 0, 0)
    }

    /// The bridge-namespace end of its veth: what [`Pods::capture`] listens on.
    pub fn host_veth(&self) -> &str {
        &self.host_veth
    }

    /// `program` inside the pod, as root (see [`Netns::command`]).
    pub fn command(&self, program: &str) -> Command {
        self.netns.command(program)
    }

    /// `program` inside the pod as `uid`/`gid` (see [`Netns::command_as`]).
    pub fn command_as(&self, uid: u32, gid: u32, program: &str) -> Command {
        self.netns.command_as(uid, gid, program)
    }

    /// Runs `program args…` inside the pod, killed after `timeout`.
    pub fn run(&self, program: &str, args: &[&str], timeout: Duration) -> Ran {
        self.netns.run(program, args, timeout)
    }

    /// Starts `program args…` inside the pod; the harness kills it when it drops.
    pub fn spawn(&self, program: &str, args: &[&str]) -> Process {
        self.registry.spawn(self.command(program).args(args))
    }

    /// Polls until the pod accepts TCP connections on `ip():port`, connecting from inside the
    /// pod; panics after `deadline`.
    pub fn wait_for_port(&self, port: u16, deadline: Duration) {
        self.netns.wait_for_port(self.addr(port), deadline);
    }
}

/// Pods joined by a bridge; see the module documentation. Dropping it removes everything.
pub struct Pods {
    pods: Vec<Pod>,
    bridge: Netns,
    subnet: Cidr,
    /// The first four groups of the pods' IPv6 /64, if the kernel has IPv6.
    subnet6: Option<[u16; 4]>,
    next_vip: AtomicU32,
    registry: Arc<Registry>,
    /// Every namespace created (or being created), in creation order, for cleanup.
    namespaces: Vec<String>,
    dir: TempDir,
}

impl Pods {
    /// Creates a bridge namespace and one pod per name (lowercase letters, digits and `-`, at
    /// most 32 characters, unique). Removes stale namespaces of dead test processes first.
    /// Panics if a step fails, after removing whatever it had created.
    pub fn create(names: &[&str]) -> Self {
        static INSTANCES: AtomicU32 = AtomicU32::new(0);
        check_names(names);
        remove_stale();
        let pid = std::process::id();
        let instance = INSTANCES.fetch_add(1, Ordering::Relaxed);
        let [x, y] = [200 + (instance % 50) as u8, (pid % 256) as u8];
        let subnet = Cidr {
            addr: Ipv4Addr::new(10, x, y, 0),
            prefix: 24,
        };
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-", bridge_namespace(pid, instance)))
            .tempdir()
            .unwrap();
        let mut pods = Self {
            pods: Vec::new(),
            bridge: Netns::new(bridge_namespace(pid, instance)),
            subnet,
            subnet6: ipv6_available().then_some([0xfd00, u16::from(x), u16::from(y), 0]),
            next_vip: AtomicU32::new(u32::from(FIRST_VIP)),
            registry: Arc::new(Registry::new(dir.path().to_owned())),
            namespaces: Vec::new(),
            dir,
        };
        // From here on, a failing step panics and `Drop` removes what exists.
        pods.add_bridge();
        for (i, name) in names.iter().enumerate() {
            pods.add_pod(i, name, pid, instance);
        }
        pods
    }

    fn add_bridge(&mut self) {
        let bridge = self.bridge.clone();
        self.namespaces.push(bridge.name().to_owned());
        netns::ip(&["netns", "add", bridge.name()]);
        bridge.ip(&["link", "set", "lo", "up"]);
        bridge.ip(&["link", "add", "br0", "type", "bridge"]);
        bridge.ip(&[
            "addr",
            "add",
            &format!("{}/25", self.bridge_ip()),
            "dev",
            "br0",
        ]);
        if let Some(ip6) = self.nth6(1) {
            bridge.ip(&["addr", "add", &format!("{ip6}/64"), "dev", "br0", "nodad"]);
        }
        bridge.ip(&["link", "set", "br0", "up"]);
        // With forwarding on, a packet for an unowned VIP gets an immediate ICMP unreachable
        // (instead of silence), so a connect that iptables did not redirect fails fast.
        bridge.ip(&["route", "add", "unreachable", &self.vip_range().to_string()]);
        let ran = bridge.run(
            "sh",
            &["-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"],
            netns::STEP,
        );
        ran.expect_success();
    }

    fn add_pod(&mut self, i: usize, name: &str, pid: u32, instance: u32) {
        let netns = Netns::new(pod_namespace(pid, instance, name));
        let ip = self.nth(2 + i as u8);
        let host_veth: String = format!("h{i}-{name}").chars().take(15).collect();
        self.namespaces.push(netns.name().to_owned());
        netns::ip(&["netns", "add", netns.name()]);
        netns.ip(&["link", "set", "lo", "up"]);
        netns.ip(&[
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            &host_veth,
            "netns",
            self.bridge.name(),
        ]);
        self.bridge
            .ip(&["link", "set", &host_veth, "master", "br0"]);
        self.bridge.ip(&["link", "set", &host_veth, "up"]);
        netns.ip(&["addr", "add", &format!("{ip}/25"), "dev", "eth0"]);
        let ip6 = self.nth6(2 + i as u8);
        if let Some(ip6) = ip6 {
            netns.ip(&["addr", "add", &format!("{ip6}/64"), "dev", "eth0", "nodad"]);
        }
        netns.ip(&["link", "set", "eth0", "up"]);
        netns.ip(&[
            "route",
            "add",
            "default",
            "via",
            &self.bridge_ip().to_string(),
        ]);
        self.pods.push(Pod {
            name: name.to_owned(),
            netns,
            ip,
            ip6,
            host_veth,
            registry: self.registry.clone(),
        });
    }

    fn nth(&self, host: u8) -> Ipv4Addr {
        let [a, b, c, _] = self.subnet.addr.octets();
        Ipv4Addr::new(a, b, c, host)
    }

    fn nth6(&self, host: u8) -> Option<Ipv6Addr> {
        let [a, b, c, d] = self.subnet6?;
        Some(Ipv6Addr::new(a, b, c, d, 0, 0, 0, u16::from(host)))
    }

    pub fn pods(&self) -> &[Pod] {
        &self.pods
    }

    /// The pod called `name`; panics if there is none.
    pub fn pod(&self, name: &str) -> &Pod {
        self.pods
            .iter()
            .find(|pod| pod.name == name)
            .unwrap_or_else(|| panic!("no pod {name:?}"))
    }

    /// The namespace holding the bridge (and the host-side veths).
    pub fn bridge(&self) -> &Netns {
        &self.bridge
    }

    /// The bridge's address (`.1`): every pod's gateway, and where a process started in the
    /// bridge namespace is reachable from the pods.
    pub fn bridge_ip(&self) -> Ipv4Addr {
        self.nth(1)
    }

    /// `program` in the bridge namespace (see [`Netns::command`]).
    pub fn bridge_command(&self, program: &str) -> Command {
        self.bridge.command(program)
    }

    /// The /24 this instance uses: pods in the lower half, VIPs in the upper.
    pub fn subnet(&self) -> Cidr {
        self.subnet
    }

    /// Routed from every pod, owned by nobody: `.128/25`.
    pub fn vip_range(&self) -> Cidr {
        Cidr {
            addr: self.nth(128),
            prefix: 25,
        }
    }

    /// A fresh address in [`Self::vip_range`] (`.200`, `.201`, …); panics after `.254`.
    pub fn allocate_vip(&self) -> Ipv4Addr {
        let host = self.next_vip.fetch_add(1, Ordering::Relaxed);
        match u8::try_from(host) {
            Ok(host) if host <= LAST_VIP => self.nth(host),
            _ => panic!("all VIPs of {} are allocated", self.vip_range()),
        }
    }

    /// Starts `command` (from [`Pod::command`], [`Pod::command_as`], [`Self::bridge_command`],
    /// or any other) with stdout and stderr to a log file; the harness kills it when it drops.
    pub fn spawn(&self, command: &mut Command) -> Process {
        self.registry.spawn(command)
    }

    /// Starts tcpdump on `pod`'s host-side veth and returns once it is capturing.
    pub fn capture(&self, pod: &Pod) -> Capture {
        Capture::start(&self.bridge, &pod.host_veth)
    }

    /// Every namespace of this instance: the bridge's, then the pods'.
    pub fn namespaces(&self) -> Vec<String> {
        self.namespaces.clone()
    }

    /// Where spawned processes' logs are, until the harness drops.
    pub fn log_dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for Pods {
    fn drop(&mut self) {
        // While a test fails, what its servers said is the first clue.
        self.registry.kill_all(std::thread::panicking());
        for name in self.namespaces.iter().rev() {
            netns::destroy(name);
        }
    }
}

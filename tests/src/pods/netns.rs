//! One named network namespace (`/run/netns/<name>`), driven with `ip` the way an operator would:
//! commands run inside it through `ip netns exec`, optionally as another user through `setpriv`.
//!
//! The workspace denies `unsafe`, so the test process never enters a namespace itself (that
//! takes `setns`); every action inside one is an external command.

use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::{Duration, Instant};

use super::process::{self, Ran};
use crate::wait;

/// Deadline for one `ip` or `kill` step of setup and teardown.
pub(crate) const STEP: Duration = Duration::from_secs(10);

/// A named network namespace. Does not own it: [`super::Pods`] creates and deletes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netns {
    name: String,
}

impl Netns {
    pub(crate) fn new(name: String) -> Self {
        Self { name }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec <name> <program>`: add arguments, then run or spawn it.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// [`Self::command`] as user `uid` and group `gid` with no supplementary groups
    /// (`setpriv --reuid --regid --clear-groups`), e.g. a sidecar as UID 1337.
    pub fn command_as(&self, uid: u32, gid: u32, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, "setpriv"]);
        command.arg(format!("--reuid={uid}"));
        command.arg(format!("--regid={gid}"));
        command.args(["--clear-groups", program]);
        command
    }

    /// Runs `program args…` inside, killed after `timeout`.
    pub fn run(&self, program: &str, args: &[&str], timeout: Duration) -> Ran {
        process::output(self.command(program).args(args), timeout)
    }

    /// `ip -n <name> args…` (configure this namespace's links, addresses, routes); panics on
    /// failure.
    pub(crate) fn ip(&self, args: &[&str]) {
        ip(&[&["-n", &self.name], args].concat());
    }

    /// Whether a TCP connect from inside to `addr` (IPv4 or IPv6) succeeds now.
    pub fn accepts(&self, addr: impl Into<SocketAddr>) -> bool {
        let addr = addr.into();
        // bash's /dev/tcp does one connect() and nothing else; the per-attempt deadline covers a
        // peer that drops SYNs.
        let script = format!("exec 3<>/dev/tcp/{}/{}", addr.ip(), addr.port());
        process::output(
            self.command("bash").args(["-c", &script]),
            Duration::from_secs(2),
        )
        .success()
    }

    /// Polls until a TCP connect from inside to `addr` succeeds; panics after `deadline`.
    pub fn wait_for_port(&self, addr: impl Into<SocketAddr>, deadline: Duration) {
        let addr = addr.into();
        wait::until_blocking(
            deadline,
            &format!("{addr} to accept connections from netns {}", self.name),
            || self.accepts(addr).then_some(()),
        );
    }

    /// Every process inside (like `ip netns pids`).
    pub fn pids(&self) -> Vec<u32> {
        pids(&self.name)
    }
}

/// Runs `ip args…`; panics with its output on failure.
pub(crate) fn ip(args: &[&str]) {
    process::output(Command::new("ip").args(args), STEP).expect_success();
}

/// The processes inside namespace `name`; none if it does not exist.
pub(crate) fn pids(name: &str) -> Vec<u32> {
    inode(name).map(pids_in).unwrap_or_default()
}

/// The namespace's identity: the inode of its nsfs file, the same after its name is deleted.
/// `None` if there is no such namespace, or while `ip netns add` has created the file but not
/// yet bound the namespace to it (the file is then a plain file on another filesystem).
fn inode(name: &str) -> Option<u64> {
    let nsfs = std::fs::metadata("/proc/self/ns/net").ok()?.dev();
    let file = std::fs::metadata(format!("/run/netns/{name}")).ok()?;
    (file.dev() == nsfs).then_some(file.ino())
}

/// The processes whose network namespace is `inode` (what `ip netns pids` does, by identity
/// rather than by name, so it also finds them once the name is gone).
fn pids_in(inode: u64) -> Vec<u32> {
    let wanted = format!("net:[{inode}]");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|link| link.as_os_str() == wanted.as_str())
        })
        .collect()
}

/// SIGKILLs everything inside `name` until nothing is left (a dying process may fork), deletes
/// the namespace, which takes its interfaces, routes and iptables rules with it, then kills
/// anything that entered it meanwhile (found by identity, the name being gone). Best effort and
/// quiet: it runs from `Drop`, where a panic would abort.
pub(crate) fn destroy(name: &str) {
    // Someone may be creating it right now (a test planting stale namespaces): wait for the
    // namespace to be bound, or the processes found afterwards would be looked up by the wrong
    // identity.
    let deadline = Instant::now() + STEP;
    let inode = loop {
        match inode(name) {
            Some(inode) => break Some(inode),
            None if !exists(name) => return,
            None if Instant::now() >= deadline => break None, // a crashed `ip netns add`
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    if let Some(inode) = inode {
        kill_all_in(inode, name);
    }
    let ran = process::output(Command::new("ip").args(["netns", "delete", name]), STEP);
    if !ran.success() && exists(name) {
        eprintln!("pods: cannot delete netns {name}: {ran}");
    }
    if let Some(inode) = inode {
        kill_all_in(inode, name);
    }
}

fn kill_all_in(inode: u64, name: &str) {
    let deadline = Instant::now() + STEP;
    loop {
        let left = pids_in(inode);
        if left.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            eprintln!("pods: processes {left:?} survive in netns {name}");
            return;
        }
        let mut kill = Command::new("kill");
        kill.arg("-KILL").args(left.iter().map(u32::to_string));
        // Some may have exited since the listing; that failure is fine.
        let _ = process::output(&mut kill, STEP);
    }
}

/// Whether namespace `name` exists.
pub fn exists(name: &str) -> bool {
    list().iter().any(|n| n == name)
}

/// Every named namespace (the entries of `/run/netns`, which is what `ip netns list` shows).
pub fn list() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

//! `weft-proxy init` against the real iptables, in throwaway network namespaces.
//!
//! Needs root (network namespaces and iptables), `ip` and `iptables`; without them each test says
//! it is skipped and passes. The redirection test also needs `python3` for its small TCP servers
//! and clients, which have to run inside the namespaces. Run them with:
//!
//! ```text
//! sudo -E cargo test -p weft-proxy --test init
//! ```
//!
//! Every namespace is removed by a drop guard, so a failing assertion leaves nothing behind.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_weft-proxy");
const HOW: &str = "run as root: sudo -E cargo test -p weft-proxy --test init";

/// Why these tests cannot run here, if they cannot.
fn missing_prerequisite() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root".to_owned());
    }
    for (tool, arg) in [("ip", "-V"), ("iptables", "--version")] {
        if !Command::new(tool)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Some(format!("{tool} is not installed"));
        }
    }
    None
}

macro_rules! require_root {
    () => {
        if let Some(why) = missing_prerequisite() {
            eprintln!("skipped: {why}; {HOW}");
            return;
        }
    };
}

/// A fresh network namespace, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("weft-init-{}-{n}", std::process::id());
        let netns = Self { name };
        let out = run("ip", &["netns", "add", &netns.name]);
        assert!(out.status.success(), "ip netns add: {}", stderr(&out));
        netns.exec(&["ip", "link", "set", "lo", "up"]);
        netns
    }

    /// `ip netns exec <ns> args...`
    fn exec(&self, args: &[&str]) -> Output {
        let mut all = vec!["netns", "exec", &self.name];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// `weft-proxy init args...` inside the namespace.
    fn init(&self, args: &[&str]) -> Output {
        let mut all = vec![BIN, "init"];
        all.extend_from_slice(args);
        self.exec(&all)
    }

    /// `init` that must succeed.
    fn init_ok(&self, args: &[&str]) -> Output {
        let out = self.init(args);
        assert!(
            out.status.success(),
            "init {args:?} failed:\n{}",
            stderr(&out)
        );
        out
    }

    /// The `nat` table as `<tool>-save` prints it, without comments and counters; `None` if the
    /// tool does not work here (e.g. no IPv6).
    fn nat(&self, tool: &str) -> Option<String> {
        let out = self.exec(&[&format!("{tool}-save"), "-t", "nat"]);
        out.status.success().then(|| normalize(&stdout(&out)))
    }

    fn nat4(&self) -> String {
        self.nat("iptables").unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Drops `#` lines and zeroes `[packets:bytes]` counters.
fn normalize(save: &str) -> String {
    save.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| match l.rfind(" [") {
            Some(at) if l.starts_with(':') => format!("{} [0:0]", &l[..at]),
            _ => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn count(haystack: &str, line: &str) -> usize {
    haystack.lines().filter(|l| *l == line).count()
}

const EXPECTED_V4: &[&str] = &[
    ":WEFT_INBOUND - [0:0]",
    ":WEFT_OUTPUT - [0:0]",
    "-A PREROUTING -p tcp -j WEFT_INBOUND",
    "-A OUTPUT -p tcp -j WEFT_OUTPUT",
    "-A WEFT_INBOUND -p tcp -m tcp --dport 15006 -j RETURN",
    "-A WEFT_INBOUND -p tcp -m tcp --dport 15001 -j RETURN",
    "-A WEFT_INBOUND -p tcp -m tcp --dport 15000 -j RETURN",
    "-A WEFT_INBOUND -p tcp -j REDIRECT --to-ports 15006",
    "-A WEFT_OUTPUT -m owner --uid-owner 1337 -j RETURN",
    "-A WEFT_OUTPUT -o lo -j RETURN",
    "-A WEFT_OUTPUT -d 127.0.0.0/8 -j RETURN",
    "-A WEFT_OUTPUT -p tcp -j REDIRECT --to-ports 15001",
];

#[test]
fn installs_once_however_often_it_runs_and_uninstalls_cleanly() {
    require_root!();
    let ns = Netns::new();

    let out = ns.init_ok(&[]);
    assert!(
        stderr(&out).contains("iptables backend: "),
        "{}",
        stderr(&out)
    );
    let first = ns.nat4();
    for line in EXPECTED_V4 {
        assert_eq!(count(&first, line), 1, "{line:?} once in:\n{first}");
    }
    let first_v6 = ns.nat("ip6tables");
    if let Some(v6) = &first_v6 {
        assert_eq!(count(v6, "-A WEFT_OUTPUT -d ::1/128 -j RETURN"), 1, "{v6}");
        assert_eq!(count(v6, "-A OUTPUT -p tcp -j WEFT_OUTPUT"), 1, "{v6}");
    }

    let out = ns.init_ok(&[]);
    assert!(stderr(&out).contains("reinstalled"), "{}", stderr(&out));
    assert_eq!(ns.nat4(), first, "a second run changes nothing");
    assert_eq!(
        ns.nat("ip6tables"),
        first_v6,
        "a second run changes nothing"
    );

    let out = ns.init_ok(&["--uninstall"]);
    assert!(stderr(&out).contains("removed"), "{}", stderr(&out));
    let after = ns.nat4();
    assert!(!after.contains("WEFT_"), "left behind:\n{after}");
    if let Some(v6) = ns.nat("ip6tables") {
        assert!(!v6.contains("WEFT_"), "left behind:\n{v6}");
    }

    let out = ns.init_ok(&["--uninstall"]);
    assert!(
        stderr(&out).contains("nothing to remove"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn reinstalling_replaces_changed_settings_and_stray_jumps() {
    require_root!();
    let ns = Netns::new();
    ns.init_ok(&["--ipv6", "off", "--skip-outbound-ports", "22"]);
    // A jump added by hand (or by an older version) is replaced too.
    let out = ns.exec(&["iptables", "-t", "nat", "-A", "OUTPUT", "-j", "WEFT_OUTPUT"]);
    assert!(out.status.success(), "{}", stderr(&out));

    ns.init_ok(&[
        "--ipv6",
        "off",
        "--skip-inbound-ports",
        "9000:9100,8443",
        "--skip-inbound-cidrs",
        "10.1.0.0/16",
        "--skip-outbound-cidrs",
        "169.254.169.254",
    ]);
    let nat = ns.nat4();
    for line in [
        "-A WEFT_INBOUND -p tcp -m tcp --dport 9000:9100 -j RETURN",
        "-A WEFT_INBOUND -p tcp -m tcp --dport 8443 -j RETURN",
        "-A WEFT_INBOUND -s 10.1.0.0/16 -j RETURN",
        "-A WEFT_OUTPUT -d 169.254.169.254/32 -j RETURN",
        "-A OUTPUT -p tcp -j WEFT_OUTPUT",
        "-A PREROUTING -p tcp -j WEFT_INBOUND",
    ] {
        assert_eq!(count(&nat, line), 1, "{line:?} once in:\n{nat}");
    }
    assert!(!nat.contains("--dport 22 "), "old setting left:\n{nat}");
    assert_eq!(
        nat.lines()
            .filter(|l| l.ends_with("-j WEFT_OUTPUT"))
            .count(),
        1,
        "{nat}"
    );
}

#[test]
fn dry_run_prints_the_rules_and_changes_nothing() {
    require_root!();
    let ns = Netns::new();
    let before = ns.nat4();

    let out = ns.init_ok(&["--dry-run", "--skip-outbound-ports", "5432"]);
    let printed = stdout(&out);
    assert!(
        printed.contains("# iptables-restore --noflush\n*nat\n"),
        "{printed}"
    );
    for line in [
        "-A WEFT_OUTPUT -p tcp --dport 5432 -j RETURN",
        "-A WEFT_OUTPUT -p tcp -j REDIRECT --to-ports 15001",
        "-A PREROUTING -p tcp -j WEFT_INBOUND",
    ] {
        assert!(printed.contains(line), "{line:?} not in:\n{printed}");
    }
    assert_eq!(ns.nat4(), before, "the dry run changed the table");

    // Without root it still works (it cannot read the table, so shows a fresh install).
    let out = ns.exec(&[
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        BIN,
        "init",
        "--dry-run",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("-A OUTPUT -p tcp -j WEFT_OUTPUT"));
    assert_eq!(ns.nat4(), before);
}

#[test]
fn refuses_clearly_without_permission() {
    require_root!();
    let ns = Netns::new();
    let out = ns.exec(&[
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        BIN,
        "init",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "weft-proxy init: permission denied changing iptables rules: run it as root or with \
             CAP_NET_ADMIN (in Kubernetes: an init container with \
             securityContext.capabilities.add: [NET_ADMIN, NET_RAW])"
        ),
        "{}",
        stderr(&out)
    );
    assert!(!ns.nat4().contains("WEFT_"));
}

#[test]
fn says_when_iptables_is_missing() {
    require_root!();
    let ns = Netns::new();
    let empty = std::env::temp_dir().join(format!("weft-init-empty-path-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let path = format!("PATH={}", empty.display());
    let out = ns.exec(&["env", &path, BIN, "init"]);
    let _ = std::fs::remove_dir(&empty);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not found in PATH: install iptables (nft or legacy backend)"),
        "{}",
        stderr(&out)
    );
}

/// Needs neither root nor iptables: the flags are checked before anything runs.
#[test]
fn reports_every_bad_flag_at_once() {
    let out = Command::new(BIN)
        .args([
            "init",
            "--inbound-port",
            "http",
            "--skip-outbound-cidrs",
            "10.0.0.0/8,10.0.0.0/99",
            "--skip-inbound-ports",
            "22,abc",
        ])
        .env_remove("WEFT_IPV6")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    for expected in [
        "--inbound-port: \"http\" is not a port number",
        "--skip-inbound-ports: \"abc\" is not a port number",
        "--skip-outbound-cidrs: \"10.0.0.0/99\" is not a CIDR",
    ] {
        assert!(err.contains(expected), "{expected:?} not in:\n{err}");
    }
}

// ---- real connections ----

/// Serves `label@host:port` listeners: each connection gets its listener's label and is closed.
/// Exits on its own after a minute, should the test's cleanup ever miss it.
const SERVER: &str = r#"
import selectors, socket, sys, time
sel = selectors.DefaultSelector()
for spec in sys.argv[1:]:
    label, addr = spec.split("@")
    host, port = addr.rsplit(":", 1)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port)))
    s.listen(16)
    sel.register(s, selectors.EVENT_READ, label)
print("ready", flush=True)
deadline = time.time() + 60
while time.time() < deadline:
    for key, _ in sel.select(timeout=1):
        conn, _ = key.fileobj.accept()
        conn.sendall(key.data.encode() + b"\n")
        conn.close()
"#;

/// Connects to argv[1]:argv[2] and prints what the server said, or why it could not.
const CLIENT: &str = r#"
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    s.settimeout(3)
    data = b""
    while True:
        chunk = s.recv(100)
        if not chunk:
            break
        data += chunk
    print(data.decode().strip())
except socket.timeout:
    print("timeout")
except OSError as e:
    print("error:", e)
"#;

/// A python3 that an unprivileged UID can run too (not one under /root).
fn python() -> Option<&'static str> {
    ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// A [`SERVER`] inside a namespace, killed on drop.
struct Server(Child);

impl Server {
    fn start(ns: &Netns, python: &str, listeners: &[&str]) -> Self {
        let mut args = vec!["netns", "exec", &ns.name, python, "-c", SERVER];
        args.extend_from_slice(listeners);
        let mut child = Command::new("ip")
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let server = Self(child);
        // Readiness: the server's "ready" line, with a deadline, not a sleep.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(10));
        assert_eq!(
            line.as_deref().map(str::trim),
            Ok("ready"),
            "server {listeners:?} did not start"
        );
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a [`CLIENT`] in `ns`, as `uid` (None: root), heard from `host:port`.
fn connect(ns: &Netns, python: &str, uid: Option<u32>, host: &str, port: u16) -> String {
    let port = port.to_string();
    let mut args = Vec::new();
    let (reuid, regid);
    if let Some(uid) = uid {
        reuid = format!("--reuid={uid}");
        regid = format!("--regid={uid}");
        args.extend(["setpriv", &reuid, &regid, "--clear-groups"]);
    }
    args.extend([python, "-c", CLIENT, host, &port]);
    let out = ns.exec(&args);
    assert!(out.status.success(), "client: {}", stderr(&out));
    stdout(&out).trim().to_owned()
}

/// Two namespaces joined by a veth pair: the pod (10.99.0.2, with weft's rules) and a peer
/// (10.99.0.1). Fake "proxy" listeners in the pod name themselves, so each connection shows
/// where iptables sent it.
#[test]
fn redirects_real_connections_except_the_proxys_own() {
    require_root!();
    let Some(python) = python() else {
        eprintln!("skipped: python3 (in /usr/bin or /usr/local/bin) is needed for this test");
        return;
    };
    let pod = Netns::new();
    let peer = Netns::new();
    for args in [
        vec![
            "ip", "link", "add", "a0", "type", "veth", "peer", "name", "b0", "netns", &peer.name,
        ],
        vec!["ip", "addr", "add", "10.99.0.2/24", "dev", "a0"],
        vec!["ip", "link", "set", "a0", "up"],
    ] {
        let out = pod.exec(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    for args in [
        vec!["ip", "addr", "add", "10.99.0.1/24", "dev", "b0"],
        vec!["ip", "link", "set", "b0", "up"],
    ] {
        let out = peer.exec(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }

    pod.init_ok(&[
        "--ipv6",
        "off",
        "--skip-inbound-ports",
        "9000",
        "--skip-outbound-ports",
        "81",
    ]);
    let _pod_servers = Server::start(
        &pod,
        python,
        &[
            "outbound-proxy@0.0.0.0:15001",
            "inbound-proxy@0.0.0.0:15006",
            "app@0.0.0.0:9000",
        ],
    );
    let _peer_servers = Server::start(&peer, python, &["peer@0.0.0.0:80", "peer@0.0.0.0:81"]);

    // The pod's processes reach the outbound proxy instead of the peer...
    assert_eq!(
        connect(&pod, python, None, "10.99.0.1", 80),
        "outbound-proxy"
    );
    // ...except the proxy itself (UID 1337), skipped ports, and loopback.
    assert_eq!(connect(&pod, python, Some(1337), "10.99.0.1", 80), "peer");
    assert_eq!(
        connect(&pod, python, Some(1000), "10.99.0.1", 80),
        "outbound-proxy"
    );
    assert_eq!(connect(&pod, python, None, "10.99.0.1", 81), "peer");
    assert_eq!(connect(&pod, python, None, "127.0.0.1", 9000), "app");
    // Connections arriving at the pod reach the inbound proxy, except skipped ports.
    assert_eq!(
        connect(&peer, python, None, "10.99.0.2", 8080),
        "inbound-proxy"
    );
    assert_eq!(connect(&peer, python, None, "10.99.0.2", 9000), "app");

    // After --uninstall, nothing is redirected.
    pod.init_ok(&["--ipv6", "off", "--uninstall"]);
    assert_eq!(connect(&pod, python, None, "10.99.0.1", 80), "peer");
    assert!(
        connect(&peer, python, None, "10.99.0.2", 8080).starts_with("error:"),
        "nothing listens on 8080"
    );
}

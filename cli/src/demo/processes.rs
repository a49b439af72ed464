//! The demo's child processes: the real `weft-control-plane` and `weft-proxy` binaries, started
//! with the same flags a person would type, logging to files, killed when the demo ends.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// A running child and where its log goes.
pub struct Process {
    pub name: String,
    pub command_line: String,
    pub log: PathBuf,
    child: Child,
}

impl Process {
    /// Starts `binary args…`, with stderr and stdout appended to `<dir>/<name>.log`.
    pub fn spawn(dir: &Path, name: &str, binary: &Path, args: &[String]) -> anyhow::Result<Self> {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let child = Command::new(binary)
            .args(args)
            .env("WEFT_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        Ok(Self {
            name: name.to_owned(),
            command_line: format!(
                "{} {}",
                binary.file_name().unwrap_or_default().to_string_lossy(),
                args.join(" ")
            ),
            log,
            child,
        })
    }

    /// Fails if the process has exited, quoting the end of its log.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); last lines of {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 15)
            );
        }
        Ok(())
    }
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `name` next to the running `weft` binary (cargo puts all of a workspace's binaries in one
/// directory), unless `WEFT_<NAME>_BIN` says otherwise.
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let env = format!(
        "WEFT_{}_BIN",
        name.trim_start_matches("weft-")
            .replace('-', "_")
            .to_uppercase()
    );
    if let Ok(path) = std::env::var(&env) {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().context("cannot locate the weft binary")?;
    let dir = exe.parent().context("the weft binary has no directory")?;
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{name} was not found next to {} — build every binary first (cargo build --release), or set {env}",
            exe.display()
        );
    }
    Ok(path)
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// A port that was free a moment ago on every one of `ips` (endpoints of one service share their
/// port and differ by address: all of 127/8 is loopback on Linux).
pub fn free_port_on(ips: &[Ipv4Addr]) -> anyhow::Result<u16> {
    for _ in 0..20 {
        let Some(first) = ips.first() else {
            bail!("no addresses");
        };
        let port = TcpListener::bind((*first, 0))?.local_addr()?.port();
        if ips[1..]
            .iter()
            .all(|ip| TcpListener::bind((*ip, port)).is_ok())
        {
            return Ok(port);
        }
    }
    bail!("no port free on every one of {ips:?} after 20 tries")
}

/// Polls `http://<admin>/<path>` until it answers 200, or fails after `deadline`.
pub async fn wait_http_ok(
    process: &mut Process,
    admin: SocketAddr,
    path: &str,
    deadline: Duration,
) -> anyhow::Result<()> {
    let give_up = tokio::time::Instant::now() + deadline;
    loop {
        process.check_alive()?;
        if let Ok((200, _)) = super::http_get(admin, path).await {
            return Ok(());
        }
        if tokio::time::Instant::now() >= give_up {
            bail!(
                "{} did not become ready within {deadline:?}; last lines of {}:\n{}",
                process.name,
                process.log.display(),
                tail(&process.log, 15)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

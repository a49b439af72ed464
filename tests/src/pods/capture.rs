//! What crossed a pod's wire, seen from outside the pod: tcpdump on the host-side end of the pod's
//! veth, in the bridge namespace. Traffic the pod keeps to itself (loopback, iptables redirects
//! to a local sidecar) never shows up here; traffic between pods always does. That is the
//! vantage point for "the bytes on the wire are TLS, not plaintext".

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::netns::Netns;
use super::pcap::{self, Traffic};
use super::process::{self, describe};
use crate::wait;

/// How long tcpdump may take to start listening, and to finish after being asked to stop.
const TCPDUMP: Duration = Duration::from_secs(10);

/// A running tcpdump. Stop it with [`Capture::stop`]; dropping it kills it.
pub struct Capture {
    child: Child,
    interface: String,
    file: PathBuf,
    stderr: Arc<Mutex<String>>,
    _dir: TempDir,
}

impl Capture {
    /// Starts tcpdump on `interface` inside `netns` and returns once it is listening.
    pub(crate) fn start(netns: &Netns, interface: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(format!("{interface}.pcap"));
        let mut command: Command = netns.command("tcpdump");
        // -U with --immediate-mode: each packet reaches the file as it is seen, so the file can
        // be read while tcpdump runs. -Z root: stay root, so it can write into our private
        // temporary directory. -n: no DNS lookups.
        command
            .args([
                "-i",
                interface,
                "-U",
                "--immediate-mode",
                "-n",
                "-Z",
                "root",
                "-w",
            ])
            .arg(&file);
        let described = describe(&command);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{described}`: {e}"));

        // tcpdump says "listening on <interface>" on stderr once packets are being captured.
        let (lines_tx, lines_rx) = mpsc::channel();
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let collected = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut text = collected.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
                drop(text);
                let _ = lines_tx.send(line);
            }
        });
        let deadline = Instant::now() + TCPDUMP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) if line.contains("listening on") => break,
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "`{described}` did not start listening within {TCPDUMP:?}:\n{}",
                        stderr.lock().unwrap()
                    );
                }
            }
        }
        Self {
            child,
            interface: interface.to_owned(),
            file,
            stderr,
            _dir: dir,
        }
    }

    /// The interface captured on.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// What has been captured so far, while tcpdump keeps running.
    pub fn snapshot(&self) -> Traffic {
        let bytes = std::fs::read(&self.file).unwrap_or_default();
        pcap::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", self.file.display()))
    }

    /// Polls the capture until `done` holds for it; panics with `what` after `deadline`. Use it
    /// before asserting on the last packets of an exchange, so they are surely in the file.
    pub fn wait_until(
        &self,
        deadline: Duration,
        what: &str,
        done: impl Fn(&Traffic) -> bool,
    ) -> Traffic {
        wait::until_blocking(deadline, what, || {
            let traffic = self.snapshot();
            done(&traffic).then_some(traffic)
        })
    }

    /// Stops tcpdump (SIGTERM, so it flushes and closes the file) and returns everything it
    /// captured.
    pub fn stop(mut self) -> Traffic {
        let pid = self.child.id().to_string();
        let _ = process::output(Command::new("kill").args(["-TERM", &pid]), TCPDUMP);
        let deadline = Instant::now() + TCPDUMP;
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            eprintln!(
                "pods: tcpdump on {} ignored SIGTERM for {TCPDUMP:?}; killing it:\n{}",
                self.interface,
                self.stderr.lock().unwrap()
            );
        }
        self.snapshot()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

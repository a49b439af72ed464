//! Processes a test starts in its pods: short commands run with a deadline, and long-running ones
//! (servers, sidecars) registered with the harness so they die with it, even when the test panics.
//!
//! Everything here works on `std::process::Command`, so the same helpers serve commands built for
//! a pod, for the bridge namespace, or for the host.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// How often a running command is checked for exit.
const POLL: Duration = Duration::from_millis(5);

/// What a command run to completion (or to its deadline) produced.
#[derive(Debug)]
pub struct Ran {
    /// What was run, for messages.
    pub command: String,
    /// `None` when it was killed at the deadline.
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Ran {
    /// Exited on its own with status 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    pub fn timed_out(&self) -> bool {
        self.status.is_none()
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Panics with the command, its status and both outputs unless it succeeded.
    #[track_caller]
    pub fn expect_success(&self) -> &Self {
        assert!(self.success(), "{self}");
        self
    }
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(status) => write!(f, "`{}` exited with {status}", self.command)?,
            None => write!(f, "`{}` was killed at its deadline", self.command)?,
        }
        write!(
            f,
            "\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout_text(),
            self.stderr_text()
        )
    }
}

/// Runs `command` with stdin closed and both outputs captured; kills it if it has not exited
/// after `timeout`. Output written until then is kept either way.
pub fn output(command: &mut Command, timeout: Duration) -> Ran {
    let described = describe(command);
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{described}`: {e}"));
    // Readers on threads, so a chatty command never blocks on a full pipe while we wait.
    let (done_tx, done_rx) = mpsc::channel();
    let stdout = collect(child.stdout.take(), done_tx.clone());
    let stderr = collect(child.stderr.take(), done_tx);

    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(POLL),
            Err(e) => panic!("cannot wait for `{described}`: {e}"),
        }
    };
    // A descendant that inherited the pipes can keep them open after the command is gone: give
    // the readers a moment to reach end of file, then take what they have.
    let drained = Instant::now() + Duration::from_secs(1);
    for _ in 0..2 {
        let left = drained.saturating_duration_since(Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            break;
        }
    }
    let take = |buffer: &Arc<Mutex<Vec<u8>>>| std::mem::take(&mut *buffer.lock().unwrap());
    Ran {
        command: described,
        status,
        stdout: take(&stdout),
        stderr: take(&stderr),
    }
}

fn collect(
    pipe: Option<impl Read + Send + 'static>,
    done: mpsc::Sender<()>,
) -> Arc<Mutex<Vec<u8>>> {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let Some(mut pipe) = pipe else {
        let _ = done.send(());
        return buffer;
    };
    let sink = buffer.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        while let Ok(n @ 1..) = pipe.read(&mut chunk) {
            sink.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
        let _ = done.send(());
    });
    buffer
}

/// `program arg…` as a shell-like line, for messages.
pub(crate) fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The long-running processes one harness started; killed and reaped when the harness drops.
pub(crate) struct Registry {
    /// Where the processes' logs go.
    dir: PathBuf,
    children: Mutex<Vec<Registered>>,
    next: AtomicU32,
}

struct Registered {
    child: Child,
    command: String,
    log: PathBuf,
}

impl Registry {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            children: Mutex::default(),
            next: AtomicU32::default(),
        }
    }

    /// Starts `command` with stdin closed and stdout and stderr going to a fresh log file.
    pub(crate) fn spawn(self: &Arc<Self>, command: &mut Command) -> Process {
        let described = describe(command);
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let log = self.dir.join(format!("process-{n:02}.log"));
        let file = File::create(&log).unwrap_or_else(|e| panic!("cannot create {log:?}: {e}"));
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{described}`: {e}"));
        let pid = child.id();
        self.children.lock().unwrap().push(Registered {
            child,
            command: described.clone(),
            log: log.clone(),
        });
        Process {
            pid,
            command: described,
            log,
            registry: self.clone(),
        }
    }

    fn with_child<T>(&self, pid: u32, f: impl FnOnce(&mut Child) -> T) -> Option<T> {
        let mut children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        children
            .iter_mut()
            .find(|r| r.child.id() == pid)
            .map(|r| f(&mut r.child))
    }

    /// Kills and reaps every registered process; with `show_logs`, prints the end of each log
    /// (a failing test's servers are the first thing to look at).
    pub(crate) fn kill_all(&self, show_logs: bool) {
        let mut children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        for registered in children.iter_mut() {
            let _ = registered.child.kill();
            let _ = registered.child.wait();
            if show_logs {
                let text = std::fs::read(&registered.log).unwrap_or_default();
                let tail = &text[text.len().saturating_sub(4096)..];
                eprintln!(
                    "--- pods: output of `{}` (pid {})\n{}",
                    registered.command,
                    registered.child.id(),
                    String::from_utf8_lossy(tail)
                );
            }
        }
        children.clear();
    }
}

/// A long-running process the harness started. Dropping the handle leaves it running; the
/// harness kills it when it drops.
pub struct Process {
    pid: u32,
    command: String,
    log: PathBuf,
    registry: Arc<Registry>,
}

impl Process {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The command line, for messages.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// The file its stdout and stderr go to.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything it has written so far, stdout and stderr interleaved.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Its exit status if it has exited (and is reaped), `None` while it runs.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.registry
            .with_child(self.pid, |child| child.try_wait().ok().flatten())
            .flatten()
    }

    pub fn is_running(&self) -> bool {
        self.exit_status().is_none() && alive(self.pid)
    }

    /// Waits up to `timeout` for it to exit on its own.
    pub fn wait(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Kills it (SIGKILL) and reaps it.
    pub fn kill(&self) -> Option<ExitStatus> {
        self.registry
            .with_child(self.pid, |child| {
                let _ = child.kill();
                child.wait().ok()
            })
            .flatten()
    }
}

/// Whether `pid` is a live process: it exists and is not a zombie waiting to be reaped.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may contain spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

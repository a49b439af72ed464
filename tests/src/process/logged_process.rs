//! A binary of ours started as a process whose stderr log is collected, and the line it logs
//! when it is up: [`super::proxy_process`] and [`super::control_plane_process`] read their
//! bound addresses from it, so tests never guess free ports.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::wait;

const STARTED_DEADLINE: Duration = Duration::from_secs(30);

/// A process's stderr as collected so far, and whether all of it is in: a thread reads the pipe,
/// so right after the process exits its last lines may still be on the way.
#[derive(Debug, Clone, Default)]
pub struct Log {
    text: Arc<Mutex<String>>,
    complete: Arc<AtomicBool>,
}

impl Log {
    /// Everything collected so far.
    pub fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    /// Whether the pipe has ended (the process exited and every line it wrote is in).
    pub fn is_complete(&self) -> bool {
        self.complete.load(Ordering::Acquire)
    }
}

/// Spawns `command` (stderr collected into the returned log) and waits for the first log line
/// containing `started`, which it returns. Panics with the log if it does not come.
pub async fn spawn(
    mut command: Command,
    name: &'static str,
    started: &'static str,
) -> (Child, Log, String) {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("{name} starts: {e}"));
    let log = Log::default();
    let stderr = child.stderr.take().expect("stderr is piped");
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut text = sink.text.lock().unwrap();
            text.push_str(&line);
            text.push('\n');
        }
        sink.complete.store(true, Ordering::Release);
    });
    let watched = log.clone();
    let line = tokio::task::spawn_blocking(move || {
        wait::until_blocking(
            STARTED_DEADLINE,
            &format!("{name} to log {started:?}"),
            || {
                let text = watched.text.lock().unwrap();
                text.lines()
                    .find(|l| l.contains(started))
                    .map(str::to_owned)
            },
        )
    })
    .await;
    match line {
        Ok(line) => (child, log, line),
        Err(e) => {
            let _ = child.kill();
            panic!("{e}; {name}'s log:\n{}", log.text());
        }
    }
}

/// The value of `name=value` in a log line.
pub fn field(line: &str, name: &str) -> String {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {line:?}"))
        .to_owned()
}

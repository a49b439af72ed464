//! A binary of ours started as a process whose stderr log is collected, and the line it logs
//! when it is up: [`crate::proxy_process`] and [`crate::control_plane_process`] read their bound
//! addresses from it, so tests never guess free ports.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::wait;

const STARTED_DEADLINE: Duration = Duration::from_secs(30);

/// Spawns `command` (stderr collected into the returned log) and waits for the first log line
/// containing `started`, which it returns. Panics with the log if it does not come.
pub async fn spawn(
    mut command: Command,
    name: &'static str,
    started: &'static str,
) -> (Child, Arc<Mutex<String>>, String) {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("{name} starts: {e}"));
    let log = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().expect("stderr is piped");
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    let watched = log.clone();
    let line = tokio::task::spawn_blocking(move || {
        wait::until_blocking(
            STARTED_DEADLINE,
            &format!("{name} to log {started:?}"),
            || {
                let log = watched.lock().unwrap();
                log.lines().find(|l| l.contains(started)).map(str::to_owned)
            },
        )
    })
    .await;
    match line {
        Ok(line) => (child, log, line),
        Err(e) => {
            let _ = child.kill();
            panic!("{e}; {name}'s log:\n{}", log.lock().unwrap());
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

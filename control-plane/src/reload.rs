//! Reloading files that change while the control plane runs.
//!
//! Polling the contents (not mtimes, which are coarse and lie on some filesystems, nor inotify,
//! which misses the symlink swaps Kubernetes uses for mounted ConfigMaps and Secrets) is simple
//! and cheap for the small files involved. A change that fails to apply is logged with the
//! error and counted, and the previous state stays in force.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use prometheus::IntCounterVec;
use ring::digest::{SHA256, digest};
use tokio_util::sync::CancellationToken;

/// How often watched files are checked: twice a second, so that a policy edit is in force in
/// every proxy within a second.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Calls `apply` with the new contents whenever the file at `path` changes from `initial`.
/// `apply` returns a summary for the log, or an error to keep the previous state.
pub fn watch_file<F>(
    path: PathBuf,
    initial: &[u8],
    reloads: IntCounterVec,
    stop: CancellationToken,
    apply: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(&[u8]) -> anyhow::Result<String> + Send + 'static,
{
    watch_source(
        path,
        initial,
        reloads,
        stop,
        |path| {
            let contents = std::fs::read(path)?;
            Ok((contents.clone(), contents))
        },
        move |contents| apply(&contents),
    )
}

/// Like [`watch_file`] for a source made of several files (a directory): `read` returns the
/// bytes whose digest tells whether anything changed (compared with `initial`) and the value
/// `apply` takes. A failed read is logged at debug level and retried on the next tick.
pub fn watch_source<T, R, F>(
    path: PathBuf,
    initial: &[u8],
    reloads: IntCounterVec,
    stop: CancellationToken,
    read: R,
    apply: F,
) -> tokio::task::JoinHandle<()>
where
    T: Send + 'static,
    R: Fn(&Path) -> anyhow::Result<(Vec<u8>, T)> + Send + Sync + 'static,
    F: Fn(T) -> anyhow::Result<String> + Send + 'static,
{
    let mut last = digest(&SHA256, initial);
    let read = Arc::new(read);
    tokio::spawn(async move {
        let file_label = path.display().to_string();
        let mut ticker = tokio::time::interval(POLL_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let (reading, at) = (read.clone(), path.clone());
            let (fingerprint, value) = match tokio::task::spawn_blocking(move || reading(&at)).await
            {
                Ok(Ok(read)) => read,
                Ok(Err(e)) => {
                    tracing::debug!(file = %path.display(), error = %format!("{e:#}"), "cannot read watched file");
                    continue;
                }
                Err(e) => {
                    tracing::debug!(file = %path.display(), error = %e, "reading a watched file failed");
                    continue;
                }
            };
            let current = digest(&SHA256, &fingerprint);
            if current.as_ref() == last.as_ref() {
                continue;
            }
            last = current;
            match apply(value) {
                Ok(summary) => {
                    reloads
                        .with_label_values(&[file_label.as_str(), "ok"])
                        .inc();
                    tracing::info!(file = %path.display(), "reloaded: {summary}");
                }
                Err(e) => {
                    reloads
                        .with_label_values(&[file_label.as_str(), "error"])
                        .inc();
                    tracing::error!("{e:#}; keeping the previous version");
                }
            }
        }
    })
}

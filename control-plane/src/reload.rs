//! Reloading files that change while the control plane runs.
//!
//! Polling the contents (not mtimes, which are coarse and lie on some filesystems, nor inotify,
//! which misses the symlink swaps Kubernetes uses for mounted ConfigMaps and Secrets) is simple
//! and cheap for the small files involved.
//!
//! A change is applied once the file has stopped changing: after it is seen, the file is read
//! again every [`SETTLE`] until two readings agree (for at most [`MAX_SETTLE`]), so an editor's
//! truncate-then-write, or several saves in a row, make one reload of the final version.
//!
//! A change that cannot be applied keeps the previous state in force; it is logged once with
//! the error and counted in `weft_config_reloads_total{file,result="error"}` and in
//! `weft_config_reload_failures_total{kind,reason}`, the reason being one of [`Failure`]: the
//! file broken, empty ([`crate::empty_file`]), missing (deleted, renamed away) or unreadable.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use prometheus::IntCounterVec;
use ring::digest::{Digest, SHA256, digest};
use tokio_util::sync::CancellationToken;

use crate::empty_file::{self, EmptyFile};

/// How often watched files are checked: twice a second, so that a policy edit (a poll, then
/// one [`SETTLE`]) is in force in every proxy within a second.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// A changed file is read again this long after, until two readings agree.
pub const SETTLE: Duration = Duration::from_millis(250);
/// A file that never stops changing is applied as it is after this long.
pub const MAX_SETTLE: Duration = Duration::from_secs(2);

/// What a watched file is for: the `kind` label of `weft_config_reload_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Policies,
    Routes,
    Services,
    BootstrapTokens,
    ServiceAccountJwks,
}

impl FileKind {
    pub const ALL: [FileKind; 5] = [
        FileKind::Policies,
        FileKind::Routes,
        FileKind::Services,
        FileKind::BootstrapTokens,
        FileKind::ServiceAccountJwks,
    ];

    pub fn label(self) -> &'static str {
        match self {
            FileKind::Policies => "policies",
            FileKind::Routes => "routes",
            FileKind::Services => "services",
            FileKind::BootstrapTokens => "bootstrap_tokens",
            FileKind::ServiceAccountJwks => "service_account_jwks",
        }
    }
}

/// Why a change was not applied: the `reason` label of `weft_config_reload_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// It does not parse or check.
    Invalid,
    /// It holds nothing ([`crate::empty_file`]).
    Empty,
    /// It is not there (deleted, or renamed away).
    Missing,
    /// It is there but cannot be read (permissions, I/O error).
    Unreadable,
}

impl Failure {
    pub const ALL: [Failure; 4] = [
        Failure::Invalid,
        Failure::Empty,
        Failure::Missing,
        Failure::Unreadable,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Failure::Invalid => "invalid",
            Failure::Empty => "empty",
            Failure::Missing => "missing",
            Failure::Unreadable => "unreadable",
        }
    }

    /// An error from reading a watched source: missing or unreadable.
    fn of_read(error: &anyhow::Error) -> Self {
        let missing = error
            .chain()
            .filter_map(|e| e.downcast_ref::<std::io::Error>())
            .any(|e| e.kind() == std::io::ErrorKind::NotFound);
        if missing {
            Failure::Missing
        } else {
            Failure::Unreadable
        }
    }

    /// An error from applying a change: empty or invalid.
    fn of_apply(error: &anyhow::Error) -> Self {
        if error.chain().any(|e| e.is::<EmptyFile>()) {
            Failure::Empty
        } else {
            Failure::Invalid
        }
    }
}

/// Where a watch counts what it does.
#[derive(Clone)]
pub struct Counters {
    kind: FileKind,
    reloads: IntCounterVec,
    failures: IntCounterVec,
}

impl Counters {
    /// Counts into `weft_config_reloads_total` (`reloads`) and
    /// `weft_config_reload_failures_total` (`failures`), registered by [`crate::metrics`].
    pub fn new(kind: FileKind, reloads: &IntCounterVec, failures: &IntCounterVec) -> Self {
        Self {
            kind,
            reloads: reloads.clone(),
            failures: failures.clone(),
        }
    }
}

/// Calls `apply` with the new contents whenever the file at `path` changes from `initial`.
/// `apply` returns a summary for the log, or an error to keep the previous state. A file with
/// nothing in it is refused before `apply` sees it.
pub fn watch_file<F>(
    path: PathBuf,
    initial: &[u8],
    counters: Counters,
    stop: CancellationToken,
    apply: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(&[u8]) -> anyhow::Result<String> + Send + 'static,
{
    let file = path.display().to_string();
    watch_source(
        path,
        initial,
        counters,
        stop,
        |path| {
            let contents = std::fs::read(path).map_err(|e| {
                anyhow::Error::new(e).context(format!("cannot read {}", path.display()))
            })?;
            Ok((contents.clone(), contents))
        },
        move |contents| {
            if empty_file::contents(&contents) == empty_file::Contents::Nothing {
                return Err(EmptyFile { file: file.clone() }.into());
            }
            apply(&contents)
        },
    )
}

/// Like [`watch_file`] for a source made of several files (a directory): `read` returns the
/// bytes whose digest tells whether anything changed (compared with `initial`) and the value
/// `apply` takes.
pub fn watch_source<T, R, F>(
    path: PathBuf,
    initial: &[u8],
    counters: Counters,
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
            let mut reading = read_now(&read, &path).await;
            if reading.digest().as_ref() == last.as_ref() {
                continue;
            }
            let settle_until = tokio::time::Instant::now() + MAX_SETTLE;
            while tokio::time::Instant::now() < settle_until {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(SETTLE) => {}
                }
                let again = read_now(&read, &path).await;
                let settled = again.digest().as_ref() == reading.digest().as_ref();
                reading = again;
                if settled {
                    break;
                }
            }
            if reading.digest().as_ref() == last.as_ref() {
                // Back to the version in force (say, truncated and rewritten as it was).
                continue;
            }
            last = reading.digest();
            let outcome = match reading {
                Reading::Read { value, .. } => apply(value).map_err(|e| (Failure::of_apply(&e), e)),
                Reading::Failed { failure, error, .. } => Err((failure, error)),
            };
            let result = match &outcome {
                Ok(_) => "ok",
                Err(_) => "error",
            };
            counters
                .reloads
                .with_label_values(&[file_label.as_str(), result])
                .inc();
            match outcome {
                Ok(summary) => tracing::info!(file = %path.display(), "reloaded: {summary}"),
                Err((failure, e)) => {
                    counters
                        .failures
                        .with_label_values(&[counters.kind.label(), failure.label()])
                        .inc();
                    tracing::error!("{e:#}; keeping the previous version");
                }
            }
        }
    })
}

/// One reading of a watched source.
enum Reading<T> {
    Read {
        digest: Digest,
        value: T,
    },
    /// The source could not be read; the digest stands for this failure, so that it is
    /// reported once, not at every tick.
    Failed {
        digest: Digest,
        failure: Failure,
        error: anyhow::Error,
    },
}

impl<T> Reading<T> {
    fn digest(&self) -> Digest {
        match self {
            Reading::Read { digest, .. } | Reading::Failed { digest, .. } => *digest,
        }
    }
}

async fn read_now<T, R>(read: &Arc<R>, path: &Path) -> Reading<T>
where
    T: Send + 'static,
    R: Fn(&Path) -> anyhow::Result<(Vec<u8>, T)> + Send + Sync + 'static,
{
    let (reading, at) = (read.clone(), path.to_owned());
    let result = match tokio::task::spawn_blocking(move || reading(&at)).await {
        Ok(result) => result,
        Err(e) => Err(anyhow::anyhow!("reading {} failed: {e}", path.display())),
    };
    match result {
        Ok((fingerprint, value)) => Reading::Read {
            digest: digest(&SHA256, &fingerprint),
            value,
        },
        Err(error) => {
            let failure = Failure::of_read(&error);
            // The digest of a marker for the failure, not of any contents read.
            let marker = format!("\u{0}cannot read: {}", failure.label());
            Reading::Failed {
                digest: digest(&SHA256, marker.as_bytes()),
                failure,
                error,
            }
        }
    }
}

//! Programs nobody here wrote (curl, openssl, h2load…), used as real peers when installed.
//!
//! A test that needs one it cannot find is skipped with a message saying what to install.
//! `.ci/run` installs them all and sets `WEFT_REQUIRE_PEERS=1`, which turns a missing program into
//! a failure, so CI never skips silently.

use std::process::{Command, Output};

/// Whether `program` can be run; prints why the calling test is skipped if not.
pub fn available(program: &str, package: &str) -> bool {
    installed(program)
        || skip(&format!(
            "{program} is not installed (apt-get install {package}); .ci/run installs it"
        ))
}

/// Whether `program` is on `PATH`, silently.
pub fn installed(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Skips the calling test: prints `SKIPPED: {reason}` and returns false, or panics with `reason`
/// when `WEFT_REQUIRE_PEERS` is set (CI), so a missing prerequisite never passes silently there.
pub fn skip(reason: &str) -> bool {
    if std::env::var_os("WEFT_REQUIRE_PEERS").is_some() {
        panic!("{reason} (WEFT_REQUIRE_PEERS is set, so this fails instead of skipping)");
    }
    eprintln!("SKIPPED: {reason}");
    false
}

/// Runs `program args…` and returns its output, stdout and stderr together as text.
pub fn run(program: &str, args: &[&str]) -> (Output, String) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, text)
}

/// `promtool check metrics` on `text`: its complaints, or "" when it has none.
pub fn promtool_complaints(text: &str) -> String {
    use std::io::Write as _;
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    promtool
        .stdin
        .take()
        .expect("promtool runs")
        .write_all(text.as_bytes())
        .expect("promtool runs");
    let out = promtool.wait_with_output().expect("promtool runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        said.trim().to_owned()
    } else {
        format!("promtool failed ({}): {said}", out.status)
    }
}

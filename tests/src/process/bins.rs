//! The real binaries, for tests that run processes.
//!
//! `cargo test` builds a package's binaries only for that package's own integration tests, so
//! this asks cargo to build `weft`, `weft-control-plane` and `weft-proxy` (a no-op when they are
//! fresh) in the profile the tests were built with, once per test process. `weft-tests` is part
//! of that build so that features unify exactly as in `cargo test` (it enables tokio's
//! `test-util`, as the proxy's dev-dependencies do); otherwise the two builds would keep
//! rebuilding each other's artifacts.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The path of binary `name`, built and up to date.
pub fn path(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = BUILT
        .get_or_init(build)
        .as_ref()
        .unwrap_or_else(|e| panic!("{e}"));
    dir.join(name)
}

fn build() -> Result<PathBuf, String> {
    // target/<profile>/deps/<test binary> → target/<profile>
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .ok_or("unexpected test binary location")?
        .to_owned();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command.args([
        "build",
        "--quiet",
        "-p",
        "weft-cli",
        "-p",
        "weft-control-plane",
        "-p",
        "weft-proxy",
        "-p",
        "weft-tests",
        "--bins",
        "--lib",
    ]);
    if profile_dir.ends_with("release") {
        command.arg("--release");
    }
    // Cargo describes the package under test to this process (CARGO_MANIFEST_DIR, CARGO_PKG_NAME,
    // …); passed on, those would differ from what the `cargo test` that built the tests saw, and
    // build scripts that read them (ring's) would rerun, rebuilding the TLS stack in both builds
    // turn by turn. Settings for cargo itself (CARGO_HOME, CARGO_TARGET_DIR, CARGO_PROFILE_*, …)
    // stay.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || matches!(
                name.as_ref(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_RUSTC_CURRENT_DIR"
            )
        {
            command.env_remove(name.as_ref());
        }
    }
    let status = command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .map_err(|e| format!("cannot run cargo to build the weft binaries: {e}"))?;
    if !status.success() {
        return Err(format!("building the weft binaries failed ({status})"));
    }
    Ok(profile_dir)
}

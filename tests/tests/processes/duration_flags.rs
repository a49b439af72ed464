//! One duration grammar for every duration flag (`weft_api::duration`): the real binaries refuse
//! `10 sec`, `1.5h` and `365days` with the grammar and the spelling that was probably meant, the
//! way a policy document refuses them, and accept compound durations like `1h30m`.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use weft_tests::process::bins;

/// A refused flag stops a binary at once; one that is accepted would run on.
const EXIT_DEADLINE: Duration = Duration::from_secs(10);

const GRAMMAR: &str = "expected a number and a unit (ms, s, m, h, d), like 300ms or 1h30m";

/// Runs `binary` with `args` and returns its output once it exits; a binary still running after
/// [`EXIT_DEADLINE`] accepted the flags: it is killed and the test fails.
fn run(binary: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(bins::path(binary))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > EXIT_DEADLINE {
            child.kill().unwrap();
            let output = child.wait_with_output().unwrap();
            panic!(
                "{binary} {args:?} accepted the flags and ran on; stderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn refused(output: &Output) -> String {
    assert!(!output.status.success(), "{output:?}");
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[test]
fn the_control_plane_refuses_a_duration_outside_the_grammar() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = format!("--data-dir={}", data.path().display());
    let common = [
        "--listen=127.0.0.1:0",
        "--admin-listen=127.0.0.1:0",
        "--webhook-listen=off",
        data_dir.as_str(),
    ];
    let flag = |extra: &'static str| -> Vec<&str> {
        let mut args = common.to_vec();
        args.push(extra);
        args
    };
    let stderr = refused(&run("weft-control-plane", &flag("--cert-ttl=10 sec"), &[]));
    assert!(
        stderr.contains(&format!(
            "invalid value '10 sec' for '--cert-ttl <CERT_TTL>': {GRAMMAR}; did you mean 10s?"
        )),
        "{stderr}"
    );
    let stderr = refused(&run(
        "weft-control-plane",
        &flag("--grpc-keepalive-interval=1.5h"),
        &[],
    ));
    assert!(
        stderr.contains(&format!("'1.5h' for '--grpc-keepalive-interval <GRPC_KEEPALIVE_INTERVAL>': {GRAMMAR}; did you mean 90m?")),
        "{stderr}"
    );
    // The environment variable goes through the same parser.
    let stderr = refused(&run(
        "weft-control-plane",
        &common,
        &[("WEFT_CA_LIFETIME", "365days")],
    ));
    assert!(
        stderr.contains(&format!(
            "'365days' for '--ca-lifetime <CA_LIFETIME>': {GRAMMAR}; did you mean 365d?"
        )),
        "{stderr}"
    );
}

#[test]
fn the_proxy_refuses_a_duration_outside_the_grammar() {
    let stderr = refused(&run(
        "weft-proxy",
        &[
            "--identity=spiffe://cluster.local/ns/demo/sa/web",
            "--control-plane-addr=127.0.0.1:1",
            "--token=0123456789abcdef0123",
            "--inbound-listen=127.0.0.1:0",
            "--admin-listen=127.0.0.1:0",
            "--outbound-listen=off",
            "--detect-timeout=1.5h",
            "--shutdown-grace=10 sec",
        ],
        &[],
    ));
    assert!(
        stderr.contains(&format!(
            "--detect-timeout \"1.5h\": {GRAMMAR}; did you mean 90m?"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "--shutdown-grace \"10 sec\": {GRAMMAR}; did you mean 10s?"
        )),
        "{stderr}"
    );
}

#[test]
fn weft_refuses_a_duration_outside_the_grammar_and_takes_compound_ones() {
    let out = tempfile::tempdir().unwrap();
    let out_flag = format!("--out={}", out.path().join("ca").display());
    let stderr = refused(&run(
        "weft",
        &["ca", "create", &out_flag, "--root-lifetime=10 days"],
        &[],
    ));
    assert!(
        stderr.contains(&format!(
            "invalid value '10 days' for '--root-lifetime <ROOT_LIFETIME>': {GRAMMAR}; did you mean 10d?"
        )),
        "{stderr}"
    );
    let output = run(
        "weft",
        &[
            "ca",
            "create",
            &out_flag,
            "--root-lifetime=30d",
            "--intermediate-lifetime=1d12h",
        ],
        &[],
    );
    assert!(output.status.success(), "{output:?}");
}

//! The main job, as a user runs it: `weft demo` with no configuration.

#![allow(clippy::unwrap_used)] // a failed step fails the test, with its message

use std::process::Command;

#[test]
fn weft_demo_runs_a_mesh_rotates_certificates_and_exits_zero() {
    let output = Command::new(weft_tests::bins::path("weft"))
        .args(["demo", "--duration=6s", "--cert-ttl=3s"])
        .output()
        .expect("weft demo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "weft demo failed:\n{stdout}\n{stderr}"
    );

    let sent: u64 = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("requests"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count in:\n{stdout}"));
    assert!(sent > 0);
    assert!(
        stdout.contains(&format!("{sent} sent, {sent} answered 200 OK, 0 failed")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "app saw        caller spiffe://cluster.local/ns/demo/sa/web on {sent} requests"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("client saw     server spiffe://cluster.local/ns/demo/sa/hello"),
        "{stdout}"
    );
    assert!(stdout.contains("rotated certificate"), "{stdout}");
}

//! The main job, as a user runs it: `weft demo` with no configuration, the canary included.

use std::process::Command;
use std::time::{Duration, Instant};

/// The numbers in `line`, in order (`4259 answered 200` → `[4259, 200]`).
fn numbers(line: &str) -> Vec<u64> {
    line.split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// The line of `stdout` starting (after its indentation) with `prefix`.
fn line<'a>(stdout: &'a str, prefix: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.trim_start().starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{stdout}"))
}

/// Where in `stdout` a line containing `text` is, after line `after`.
fn position(stdout: &str, text: &str, after: usize) -> Option<usize> {
    stdout
        .lines()
        .enumerate()
        .skip(after)
        .find(|(_, l)| l.contains(text))
        .map(|(i, _)| i)
}

#[test]
fn weft_demo_shows_mtls_rotations_retries_the_breaker_and_timeouts_and_exits_zero() {
    let weft = weft_tests::process::bins::path("weft"); // builds the binaries first
    let started = Instant::now();
    let output = Command::new(weft)
        .args(["demo", "--duration=6s", "--cert-ttl=3s"])
        .output()
        .expect("weft demo runs");
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "weft demo failed:\n{stdout}\n{stderr}"
    );
    assert!(
        took < Duration::from_secs(20),
        "the demo took {took:?}:\n{stdout}"
    );

    // What the client sent and received: every request to / answered 200, every slow one 504.
    let [sent, fast, slow] = numbers(line(&stdout, "requests "))[..] else {
        panic!("requests line: {stdout}");
    };
    assert!(fast > 0 && slow > 0 && sent == fast + slow, "{stdout}");
    assert_eq!(
        line(&stdout, "/ ").trim(),
        format!("/              {fast} answered 200"),
        "{stdout}"
    );
    assert_eq!(
        line(&stdout, "/slow ").trim(),
        format!("/slow          {slow} answered 504 weft-error: timeout"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "app saw        caller spiffe://cluster.local/ns/demo/sa/web on {fast} requests"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "client saw     server spiffe://cluster.local/ns/demo/sa/hello (verified by the web sidecar) on {fast} requests"
        )),
        "{stdout}"
    );

    // The fault drill: aborts injected by the hello sidecars, hidden by web's retries; and the
    // hello sidecars let in only web.
    let drill = numbers(line(&stdout, "fault drill "));
    // [aborted, 10, retried, ok, sent, 200, apps answered]
    assert!(drill[0] > 0, "no abort injected: {stdout}");
    assert_eq!(
        drill[0], drill[2],
        "every injected abort was retried: {stdout}"
    );
    assert_eq!(
        drill[3], drill[4],
        "every drill request answered 200: {stdout}"
    );
    assert_eq!(drill[6], drill[3], "each answered once by an app: {stdout}");
    assert!(
        line(&stdout, "authorization ").contains(
            "got 403 from hello1's sidecar: weft: unauthenticated is not allowed to call hello.demo"
        ),
        "{stdout}"
    );

    // The apps answered each request once; the flaky app's 503s were all retried.
    let steady = numbers(line(&stdout, "app of hello1"));
    let flaky = numbers(line(&stdout, "app of hello2"));
    // [1, 200s, 200, 503s, 503, slow] and [2, …]
    assert_eq!(steady[1] + flaky[1], fast, "{stdout}");
    assert_eq!(steady[3], 0, "the steady app never fails: {stdout}");
    let failures = flaky[3];
    assert!(failures > 0, "the flaky app failed nothing: {stdout}");
    let unreachable = numbers(line(&stdout, "sidecar hello2 answered 502"))[2];
    let retries_line = line(&stdout, "retries ");
    let retried = numbers(retries_line)[0];
    assert!(retried > 0, "{stdout}");
    let count_is = |reason: &str, n: u64| {
        retries_line.contains(&format!("{reason} {n},"))
            || retries_line.contains(&format!("{reason} {n})"))
    };
    assert!(
        count_is("http_503", failures),
        "every 503 of the flaky app was retried: {stdout}"
    );
    assert!(
        unreachable == 0 || count_is("connect_failure", unreachable),
        "every app_unreachable was retried: {stdout}"
    );
    assert!(retries_line.ends_with("the budget refused 0"), "{stdout}");

    // The breaker opened (the app died) and closed again after it came back.
    let breaker = numbers(line(&stdout, "breaker   "));
    assert!(breaker[0] >= 1, "{stdout}");
    let died = position(&stdout, "hello2's app dies", 0).expect("the app died");
    let opened = position(&stdout, "breaker opened for 127.0.0.3:", 0).expect("breaker opened");
    let back = position(&stdout, "hello2's app is back", died).expect("the app came back");
    let closed = position(&stdout, "(probe succeeded)", back)
        .unwrap_or_else(|| panic!("the breaker did not close after the app came back:\n{stdout}"));
    assert!(opened < back && back < closed, "{stdout}");
    let at_end = line(&stdout, "breaker   ")
        .split("at the end ")
        .nth(1)
        .unwrap_or_else(|| panic!("no final states: {stdout}"));
    assert!(
        at_end.split(", ").all(|e| e.ends_with(" closed")) && at_end.contains("127.0.0.3:"),
        "every endpoint closed at the end: {stdout}"
    );

    // The deadline cut every slow request, by both counts.
    assert!(
        stdout.contains(&format!(
            "timeouts       {slow} requests cut at 300ms (weft_outbound_timeouts_total{{kind=\"request\"}}); the client got {slow} × 504 timeout"
        )),
        "{stdout}"
    );

    // Certificates rotated under traffic, and the commands to do it by hand name the files.
    assert!(stdout.contains("rotated certificate"), "{stdout}");
    assert!(
        line(&stdout, "weft-control-plane ").contains("--services=")
            && line(&stdout, "weft-control-plane ").contains("--policies="),
        "{stdout}"
    );
    assert!(
        stdout.contains("--forward=127.0.0.1:") && stdout.contains("=hello.demo:8080"),
        "{stdout}"
    );

    // The canary: the shares each version's app counted at each step of the route's weights,
    // and no request failed while the weights moved.
    for (step, (w1, w2)) in [
        ("90/10", (90, 10)),
        ("50/50", (50, 50)),
        ("0/100", (0, 100)),
    ] {
        let counts = numbers(line(&stdout, &format!("weights {step} ")));
        // `weights 90/10  hello-v1 answered 431 (90 %), hello-v2 48 (10 %)`
        let [_, _, _, v1, v1_share, _, v2, v2_share] = counts[..] else {
            panic!("weights {step}: {counts:?} in {stdout}");
        };
        assert!(v1 + v2 > 0, "{stdout}");
        assert!((99..=101).contains(&(v1_share + v2_share)), "{stdout}");
        assert!(
            v2_share.abs_diff(w2) <= 15 && v1_share.abs_diff(w1) <= 15,
            "{stdout}"
        );
    }
    assert!(
        line(&stdout, "weights 0/100 ").contains("hello-v1 answered 0 (0 %)"),
        "{stdout}"
    );
    assert!(
        line(&stdout, "client  ").ends_with("requests, no failed request"),
        "{stdout}"
    );
    assert!(
        line(&stdout, "weft-control-plane ").contains("--routes="),
        "{stdout}"
    );
    assert!(stdout.contains("\nok: "), "{stdout}");
}

//! The pods harness on its own, with real programs: pods (network namespaces) talk over the
//! bridge, the bridge namespace is reachable at `.1`, VIPs route and can be redirected, tcpdump
//! sees what crossed a pod's wire, and nothing outlives a `Pods` value, not even after a panic
//! or a test process that died.
//!
//! Needs root, iproute2, util-linux and tcpdump (plus python3 and curl as peers); without them
//! every test but the pcap parser's says `SKIPPED` and passes, unless `WEFT_REQUIRE_PEERS` is set.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use weft_tests::pods::{self, Pods, pcap};
use weft_tests::{process::programs, wait};

const TEST: &str = "pods_harness";
const DEADLINE: Duration = Duration::from_secs(20);
const RUN: Duration = Duration::from_secs(10);

fn ready(extra: &[(&str, &str)]) -> bool {
    pods::available(TEST)
        && extra
            .iter()
            .all(|(program, package)| programs::available(program, package))
}

/// `python3 -m http.server <port> --bind <ip>`, serving an empty temporary directory.
fn http_server(port: u16, ip: impl std::fmt::Display) -> Vec<String> {
    let dir = std::env::temp_dir();
    [
        "-m",
        "http.server",
        &port.to_string(),
        "--bind",
        &ip.to_string(),
        "--directory",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([dir.to_string_lossy().into_owned()])
    .collect()
}

/// curl's status code for `url`, run in `pod`.
fn curl_status(pod: &pods::Pod, url: &str) -> String {
    let ran = pod.run(
        "curl",
        &[
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
            url,
        ],
        RUN,
    );
    ran.expect_success();
    ran.stdout_text()
}

#[test]
fn curl_between_pods_and_the_request_is_on_the_wire() {
    if !ready(&[("python3", "python3"), ("curl", "curl")]) {
        return;
    }
    let pods = Pods::create(&["a", "b"]);
    let (a, b) = (pods.pod("a"), pods.pod("b"));
    assert_ne!(a.ip(), b.ip());
    assert!(pods.subnet().contains(a.ip()) && pods.subnet().contains(b.ip()));

    let args = http_server(8080, b.ip());
    let server = b.spawn(
        "python3",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    b.wait_for_port(8080, DEADLINE);
    let capture = pods.capture(b);

    let url = format!("http://{}/", b.addr(8080));
    assert_eq!(curl_status(a, &url), "200", "server log:\n{}", server.log());

    // The response's last bytes are on the wire before curl exits; wait until tcpdump has
    // written them, then stop.
    capture.wait_until(DEADLINE, "the HTTP response in the capture", |t| {
        t.contains(b"HTTP/1.0 200")
    });
    let traffic = capture.stop();
    let request = traffic.payload_to_port(8080);
    assert!(request.starts_with(b"GET / HTTP/1.1\r\n"), "{request:?}");
    assert!(pcap::contains(
        &request,
        format!("Host: {}", b.addr(8080)).as_bytes()
    ));
    assert!(traffic.payload_from_port(8080).starts_with(b"HTTP/1.0 200"));
    let streams = traffic.streams();
    let to_server = streams.iter().find(|s| s.dst == b.addr(8080)).unwrap();
    assert_eq!(
        *to_server.src.ip(),
        a.ip(),
        "the request came from pod a directly"
    );
}

#[test]
fn pods_reach_each_other_over_ipv6() {
    if !ready(&[("python3", "python3"), ("curl", "curl")]) {
        return;
    }
    if !pods::ipv6_available() {
        programs::skip(&format!("{TEST}: the kernel has IPv6 disabled"));
        return;
    }
    let pods = Pods::create(&["a", "b"]);
    let (a, b) = (pods.pod("a"), pods.pod("b"));
    let (Some(a_ip6), Some(b_ip6)) = (a.ip6(), b.ip6()) else {
        panic!("pods without IPv6 addresses on a kernel with IPv6");
    };
    assert_ne!(a_ip6, b_ip6);
    let args = http_server(8080, b_ip6);
    let server = b.spawn(
        "python3",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    a.netns().wait_for_port(b.addr6(8080), DEADLINE);
    let url = format!("http://{}/", b.addr6(8080));
    assert_eq!(curl_status(a, &url), "200", "server log:\n{}", server.log());
}

#[test]
fn a_server_in_the_bridge_namespace_is_reachable_from_every_pod() {
    if !ready(&[("python3", "python3"), ("curl", "curl")]) {
        return;
    }
    let pods = Pods::create(&["one", "two"]);
    let args = http_server(9000, pods.bridge_ip());
    pods.spawn(pods.bridge_command("python3").args(&args));
    let addr = SocketAddrV4::new(pods.bridge_ip(), 9000);
    for pod in pods.pods() {
        pod.netns().wait_for_port(addr, DEADLINE);
        assert_eq!(curl_status(pod, &format!("http://{addr}/")), "200");
    }
}

#[test]
fn vips_route_nowhere_until_iptables_in_the_client_pod_redirects_them() {
    if !ready(&[
        ("python3", "python3"),
        ("curl", "curl"),
        ("iptables", "iptables"),
    ]) {
        return;
    }
    let pods = Pods::create(&["client", "server"]);
    let (client, server) = (pods.pod("client"), pods.pod("server"));
    let vip = pods.allocate_vip();
    assert_eq!(vip.octets()[3], 200);
    assert_ne!(pods.allocate_vip(), vip);
    assert!(pods.vip_range().contains(vip) && !pods.vip_range().contains(server.ip()));

    // Nobody owns it: the connect fails at once ("No route to host"), it does not hang.
    let started = Instant::now();
    assert!(!client.netns().accepts(SocketAddrV4::new(vip, 80)));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    let args = http_server(8080, server.ip());
    server.spawn(
        "python3",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    server.wait_for_port(8080, DEADLINE);
    let to = server.addr(8080).to_string();
    let vip = vip.to_string();
    let rule = [
        "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", &vip, "--dport", "80",
    ];
    let ran = client.run(
        "iptables",
        &[&rule[..], &["-j", "DNAT", "--to-destination", &to]].concat(),
        RUN,
    );
    ran.expect_success();
    assert_eq!(curl_status(client, &format!("http://{vip}/")), "200");
}

#[test]
fn commands_run_as_another_user_and_are_bounded_in_time() {
    if !ready(&[]) {
        return;
    }
    let pods = Pods::create(&["solo"]);
    let pod = pods.pod("solo");
    let ran = pods::output(
        pod.command_as(1337, 1338, "sh")
            .args(["-c", "id -u; id -g; id -G"]),
        RUN,
    );
    assert_eq!(ran.expect_success().stdout_text(), "1337\n1338\n1338\n");

    let started = Instant::now();
    let ran = pod.run("sleep", &["30"], Duration::from_millis(300));
    assert!(ran.timed_out() && !ran.success(), "{ran}");
    assert!(started.elapsed() < Duration::from_secs(5));

    let ran = pod.run("sh", &["-c", "echo out; echo err >&2; exit 3"], RUN);
    assert_eq!(ran.status.and_then(|s| s.code()), Some(3));
    assert_eq!(
        (ran.stdout_text(), ran.stderr_text()),
        ("out\n".into(), "err\n".into())
    );

    // Inside the pod: its own loopback and eth0, nothing else.
    let links = pod
        .run("ip", &["-o", "link"], RUN)
        .expect_success()
        .stdout_text();
    assert!(links.contains("lo:") && links.contains("eth0@"), "{links}");
    assert_eq!(links.lines().count(), 2, "{links}");
}

/// What a test saw of a harness before it went away.
#[derive(Default)]
struct Seen {
    namespaces: Vec<String>,
    pids: Vec<u32>,
    /// Started behind the harness's back, so this test reaps it.
    stray: Option<Child>,
}

/// Fills `pods` with processes: registered ones, one the harness did not start, a grandchild,
/// and one in the bridge namespace. Records every pid in the namespaces.
fn populate(pods: &Pods, seen: &mut Seen) {
    seen.namespaces = pods.namespaces();
    let pod = &pods.pods()[0];
    pod.spawn("sleep", &["600"]);
    pod.spawn("bash", &["-c", "sleep 600 & wait"]);
    pods.spawn(pods.bridge_command("sleep").arg("601"));
    // Started behind the harness's back: only the namespace sweep can find it.
    let stray = pod.command("sleep").arg("602").spawn().unwrap();
    seen.pids = wait::until_blocking(DEADLINE, "5 processes in the namespaces", || {
        let mut pids = pod.netns().pids();
        pids.extend(pods.bridge().pids());
        (pids.len() >= 5 && pids.contains(&stray.id())).then_some(pids)
    });
    seen.stray = Some(stray);
}

fn assert_gone(seen: &mut Seen) {
    let listed = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    for name in &seen.namespaces {
        assert!(
            !listed
                .lines()
                .any(|l| l.split_whitespace().next() == Some(name)),
            "{name} still listed:\n{listed}"
        );
    }
    let alive: Vec<u32> = seen
        .pids
        .iter()
        .copied()
        .filter(|p| pods::alive(*p))
        .collect();
    assert!(
        alive.is_empty(),
        "still running: {alive:?} of {:?}",
        seen.pids
    );
}

#[test]
fn dropping_pods_kills_their_processes_and_deletes_their_namespaces() {
    if !ready(&[]) {
        return;
    }
    let mut seen = Seen::default();
    {
        let pods = Pods::create(&["a", "b"]);
        populate(&pods, &mut seen);
        assert_eq!(seen.namespaces.len(), 3);
        assert!(seen.namespaces.iter().all(|ns| pods::netns_exists(ns)));
    }
    assert_gone(&mut seen);
}

#[test]
fn a_panicking_test_body_still_cleans_up() {
    if !ready(&[]) {
        return;
    }
    let mut seen = Seen::default();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let pods = Pods::create(&["doomed"]);
        populate(&pods, &mut seen);
        panic!("the test body fails");
    }));
    assert!(result.is_err());
    assert_eq!(seen.namespaces.len(), 2);
    assert_gone(&mut seen);
}

#[test]
fn namespaces_of_a_dead_test_process_are_removed_by_the_next_create() {
    if !ready(&[]) {
        return;
    }
    // Any harness that starts meanwhile (another test, another test process) may sweep them
    // before they are complete: then plant them again.
    let (stale, mut orphan) = wait::until_blocking(DEADLINE, "stale namespaces planted", plant);
    // A live harness (this process's) is not stale.
    let live = Pods::create(&["kept"]);

    let _pods = Pods::create(&["fresh"]);
    for name in &stale {
        assert!(!pods::netns_exists(name), "{name} survived");
    }
    assert!(live.namespaces().iter().all(|ns| pods::netns_exists(ns)));
    let status = wait::until_blocking(DEADLINE, "the orphan to die", || orphan.try_wait().unwrap());
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL");
}

/// Namespaces named like those of a test process that died, with a process left running inside
/// one, as a crashed test leaves its servers; `None` if they were swept while being planted.
fn plant() -> Option<([String; 2], Child)> {
    // A pid that just exited: pids are handed out in a cycle, so it stays free a long while.
    let mut exited = Command::new("true").spawn().unwrap();
    exited.wait().unwrap();
    let dead = exited.id();
    assert!(!pods::alive(dead));

    let stale = [
        pods::bridge_namespace(dead, 3),
        pods::pod_namespace(dead, 3, "left"),
    ];
    for name in &stale {
        pods::output(Command::new("ip").args(["netns", "add", name]), RUN);
    }
    let mut orphan = Command::new("ip")
        .args(["netns", "exec", &stale[1], "sleep", "600"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let inside = wait::until_blocking(DEADLINE, "the orphan to enter the stale netns", || {
        if orphan.try_wait().unwrap().is_some() || !pods::netns_exists(&stale[1]) {
            return Some(false); // swept before or while the orphan entered
        }
        let ran = pods::output(Command::new("ip").args(["netns", "pids", &stale[1]]), RUN);
        let listed = ran
            .stdout_text()
            .split_whitespace()
            .any(|p| p == orphan.id().to_string());
        listed.then_some(true)
    });
    if inside && stale.iter().all(|ns| pods::netns_exists(ns)) {
        return Some((stale, orphan));
    }
    let _ = orphan.kill();
    let _ = orphan.wait();
    for name in &stale {
        pods::output(Command::new("ip").args(["netns", "delete", name]), RUN);
    }
    None
}

/// The parser, on a hand-made capture: no root needed.
#[test]
fn pcap_parser_reassembles_tcp_streams() {
    let client = SocketAddrV4::new(Ipv4Addr::new(10, 1, 2, 3), 40000);
    let server = SocketAddrV4::new(Ipv4Addr::new(10, 1, 2, 4), 80);
    let mut file = Vec::new();
    // Global header: little-endian microsecond pcap, version 2.4, snaplen, Ethernet.
    file.extend_from_slice(&0xa1b2_c3d4_u32.to_le_bytes());
    file.extend_from_slice(&[2, 0, 4, 0]);
    file.extend_from_slice(&[0; 8]);
    file.extend_from_slice(&65535_u32.to_le_bytes());
    file.extend_from_slice(&1_u32.to_le_bytes());
    let segments: [(SocketAddrV4, SocketAddrV4, u32, u8, &[u8]); 6] = [
        (client, server, 999, 0x02, b""),       // SYN
        (server, client, 4999, 0x12, b""),      // SYN-ACK
        (client, server, 1000, 0x18, b"GET /"), // data
        (client, server, 1005, 0x18, b" HTTP"),
        (client, server, 1000, 0x18, b"GET /"), // retransmission
        (server, client, 5000, 0x18, b"HTTP/1.1 200 OK"),
    ];
    for (src, dst, seq, flags, payload) in segments {
        let frame = frame(src, dst, seq, flags, payload);
        file.extend_from_slice(&[0; 8]);
        file.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        file.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        file.extend_from_slice(&frame);
    }
    // A record tcpdump is still writing.
    file.extend_from_slice(&[0; 8]);
    file.extend_from_slice(&[200, 0, 0, 0, 200, 0, 0, 0, 1, 2, 3]);

    let traffic = pcap::parse(&file).unwrap();
    assert_eq!(traffic.segments.len(), 6);
    assert_eq!(traffic.payload_to_port(80), b"GET / HTTP");
    assert_eq!(traffic.payload_from_port(80), b"HTTP/1.1 200 OK");
    assert!(traffic.contains(b"/ HT") && !traffic.contains(b"HTTPHTTP"));
    let streams = traffic.streams();
    assert_eq!((streams[0].src, streams[0].dst), (client, server));
    assert!(pcap::parse(b"not a pcap file at all, no").is_err());
    assert!(pcap::parse(&file[..10]).unwrap().segments.is_empty());
}

/// An Ethernet/IPv4/TCP frame, padded to Ethernet's 60-byte minimum like a real short frame.
fn frame(src: SocketAddrV4, dst: SocketAddrV4, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0; 12];
    frame.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 20 + payload.len()) as u16;
    frame.extend_from_slice(&[0x45, 0]);
    frame.extend_from_slice(&total.to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
    frame.extend_from_slice(&src.ip().octets());
    frame.extend_from_slice(&dst.ip().octets());
    frame.extend_from_slice(&src.port().to_be_bytes());
    frame.extend_from_slice(&dst.port().to_be_bytes());
    frame.extend_from_slice(&seq.to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    frame.extend_from_slice(payload);
    frame.resize(frame.len().max(60), 0);
    frame
}

//! `weft demo`: the whole mesh on loopback, with nothing to configure.
//!
//! It starts the real binaries (a control plane with a fresh CA, and two sidecars with their own
//! identities and bootstrap tokens), an app behind one sidecar and a client behind the other;
//! sends traffic while certificates that live a few seconds rotate underneath; then reports what
//! each side saw and prints the commands to run the same mesh by hand.

mod app;
mod processes;
mod traffic;
mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use ring::rand::{SecureRandom, SystemRandom};
use weft_certs::SpiffeId;

use crate::config::parse_duration;
use processes::{Process, free_port, sibling_binary, wait_http_ok};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// How long to send traffic.
    #[arg(long, default_value = "8s", value_parser = parse_duration)]
    duration: Duration,
    /// Certificate lifetime; short, so rotations happen while you watch.
    #[arg(long, default_value = "4s", value_parser = parse_duration)]
    cert_ttl: Duration,
    /// Keep the working directory (CA, tokens, logs) instead of deleting it.
    #[arg(long)]
    keep: bool,
}

pub fn run(args: DemoArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("weft demo: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(demo(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("\nweft demo failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The mesh's two workloads.
const WEB: &str = "web";
const HELLO: &str = "hello";

fn identity(account: &str) -> anyhow::Result<SpiffeId> {
    Ok(SpiffeId::new("cluster.local", "demo", account)?)
}

async fn demo(args: DemoArgs) -> anyhow::Result<bool> {
    let control_plane_bin = sibling_binary("weft-control-plane")?;
    let proxy_bin = sibling_binary("weft-proxy")?;
    let workdir = tempfile::Builder::new().prefix("weft-demo-").tempdir()?;
    let dir = workdir.path();
    let (web_id, hello_id) = (identity(WEB)?, identity(HELLO)?);
    write_tokens(dir, &[(&web_id, WEB), (&hello_id, HELLO)])?;

    let (cp_grpc, cp_admin) = (free_port()?, free_port()?);
    let (hello_inbound, hello_admin) = (free_port()?, free_port()?);
    let (web_inbound, web_admin, web_forward) = (free_port()?, free_port()?, free_port()?);
    let app = app::start().await?;
    let s = |p: &Path| p.display().to_string();

    println!(
        "weft demo: a control plane and two sidecars on 127.0.0.1 (working directory {})\n",
        dir.display()
    );
    let cp_args = vec![
        format!("--listen={cp_grpc}"),
        format!("--admin-listen={cp_admin}"),
        format!("--data-dir={}", s(&dir.join("control-plane"))),
        format!("--cert-ttl={}", humantime::format_duration(args.cert_ttl)),
        format!("--bootstrap-tokens={}", s(&dir.join("tokens.yaml"))),
    ];
    let mut control_plane = Process::spawn(dir, "control-plane", &control_plane_bin, &cp_args)?;
    wait_http_ok(
        &mut control_plane,
        cp_admin,
        "/ready",
        Duration::from_secs(15),
    )
    .await?;
    let trust_bundle = dir.join("control-plane").join("trust-bundle.pem");
    let ca = weft_certs::inspect_pem(&std::fs::read(&trust_bundle)?, "trust bundle")?;

    let proxy_args = |account: &str, id: &SpiffeId, inbound: SocketAddr, admin: SocketAddr| {
        vec![
            format!("--identity={id}"),
            format!("--control-plane-addr={cp_grpc}"),
            format!("--trust-anchors={}", s(&trust_bundle)),
            format!("--token-file={}", s(&dir.join(format!("{account}.token")))),
            format!("--inbound-listen={inbound}"),
            format!("--admin-listen={admin}"),
            // Nothing is intercepted on loopback: both sidecars share one network namespace.
            "--outbound-listen=off".to_owned(),
        ]
    };
    let mut hello_args = proxy_args(HELLO, &hello_id, hello_inbound, hello_admin);
    hello_args.push(format!("--inbound-app-addr={app}"));
    let mut web_args = proxy_args(WEB, &web_id, web_inbound, web_admin);
    web_args.push(format!(
        "--forward={web_forward}={hello_id}@{hello_inbound}"
    ));
    let mut hello = Process::spawn(dir, "hello-sidecar", &proxy_bin, &hello_args)?;
    let mut web = Process::spawn(dir, "web-sidecar", &proxy_bin, &web_args)?;
    wait_http_ok(&mut hello, hello_admin, "/ready", Duration::from_secs(15)).await?;
    wait_http_ok(&mut web, web_admin, "/ready", Duration::from_secs(15)).await?;

    println!(
        "  control plane  {cp_grpc}  CA \"{}\", workload certificates live {}",
        ca[0].subject,
        humantime::format_duration(args.cert_ttl)
    );
    println!("  sidecar web    {web_id}  (client side: the client sends to {web_forward})");
    println!("  sidecar hello  {hello_id}  (server side: its app listens on {app})\n");
    println!(
        "sending requests for {}: client -> web sidecar -> mutual TLS -> hello sidecar -> app",
        humantime::format_duration(args.duration)
    );

    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(watch::certificates(
        vec![(WEB, web_admin), (HELLO, hello_admin)],
        started,
        stop.clone(),
    ));
    let tally = traffic::run(web_forward, args.duration, 4, Duration::from_millis(2)).await;
    stop.store(true, Ordering::SeqCst);
    let certificates = watcher.await.context("the certificate watcher failed")?;
    control_plane.check_alive()?;
    hello.check_alive()?;
    web.check_alive()?;

    let rotations = |sidecar: &str| {
        certificates
            .iter()
            .filter(|c| c.sidecar == sidecar)
            .count()
            .saturating_sub(1)
    };
    let (_, hello_metrics) = http_get(hello_admin, "/metrics").await?;
    let inbound_line = hello_metrics
        .lines()
        .find(|l| l.starts_with("weft_inbound_requests_total{"))
        .unwrap_or("(no inbound requests recorded)")
        .to_owned();

    println!("\nresults");
    println!(
        "  requests       {} sent, {} answered 200 OK, {} failed",
        tally.sent,
        tally.ok(),
        tally.sent - tally.ok()
    );
    for (status, count) in tally.statuses.iter().filter(|(s, _)| **s != 200) {
        println!("                 {count} answered {status}");
    }
    for (error, count) in &tally.errors {
        println!("                 {count} failed: {error}");
    }
    for (caller, count) in &tally.caller_identities {
        println!("  app saw        caller {caller} on {count} requests");
    }
    for (server, count) in &tally.server_identities {
        println!(
            "  client saw     server {server} (verified by the web sidecar) on {count} requests"
        );
    }
    println!(
        "  rotations      web {}, hello {} under traffic (last certificates expire {})",
        rotations(WEB),
        rotations(HELLO),
        certificates
            .iter()
            .rev()
            .find(|c| c.sidecar == HELLO)
            .map(|c| c.not_after.as_str())
            .unwrap_or("?")
    );
    println!("  hello metrics  {inbound_line}");

    let mut problems = Vec::new();
    if tally.sent == 0 || tally.ok() != tally.sent {
        problems.push(format!(
            "{} of {} requests failed",
            tally.sent - tally.ok(),
            tally.sent
        ));
    }
    if tally
        .caller_identities
        .keys()
        .any(|c| *c != web_id.to_string())
    {
        problems.push("the app saw a caller identity other than web's".to_owned());
    }
    if tally
        .server_identities
        .keys()
        .any(|s| *s != hello_id.to_string())
    {
        problems.push("the client saw a server identity other than hello's".to_owned());
    }
    if rotations(WEB) == 0 || rotations(HELLO) == 0 {
        problems.push(format!(
            "expected each sidecar to rotate its certificate at least once (lifetime {}, traffic for {})",
            humantime::format_duration(args.cert_ttl),
            humantime::format_duration(args.duration)
        ));
    }

    println!("\nthe same mesh by hand (the flags the demo used):");
    for process in [&control_plane, &hello, &web] {
        println!("  {}", process.command_line);
    }
    if args.keep {
        let kept = workdir.keep();
        println!("\nkept {} (logs: *.log)", kept.display());
    }
    if problems.is_empty() {
        println!(
            "\nok: every request crossed the mesh over mutual TLS, and certificates rotated without losing one"
        );
        Ok(true)
    } else {
        println!("\nFAILED:");
        for p in problems {
            println!("  - {p}");
        }
        Ok(false)
    }
}

/// A bootstrap token per workload: 32 random hex characters, in the control plane's tokens file
/// and in a file per sidecar.
fn write_tokens(dir: &Path, workloads: &[(&SpiffeId, &str)]) -> anyhow::Result<()> {
    let mut yaml = String::from("apiVersion: weft.dev/v1alpha1\nkind: BootstrapTokens\ntokens:\n");
    for (id, account) in workloads {
        let mut bytes = [0u8; 16];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| anyhow::anyhow!("the system random source failed"))?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        yaml.push_str(&format!("  - identity: {id}\n    token: {token}\n"));
        std::fs::write(dir.join(format!("{account}.token")), &token)?;
    }
    std::fs::write(dir.join("tokens.yaml"), yaml)?;
    Ok(())
}

/// One HTTP/1.1 GET on a fresh connection: (status, body).
pub(crate) async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(req).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

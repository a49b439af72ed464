//! `weft demo`: the whole mesh on loopback, with nothing to configure.
//!
//! It starts the real binaries (a control plane with a fresh CA, the MeshService `hello.demo`
//! and its ServicePolicy; two `hello` sidecars as the service's endpoints, each in front of its
//! own app; a `web` sidecar in front of the client), sends traffic while certificates that live
//! a few seconds rotate underneath and one endpoint's app is flaky, then dies, then comes back;
//! then shifts `hello`'s traffic to a v2 by the weights of a Gateway API route (a canary);
//! reports what each side saw and prints the commands to run the same mesh by hand.

mod app;
mod canary;
mod dashboard;
mod files;
mod flaky;
mod metrics;
mod processes;
mod report;
mod timeline;
mod traffic;
mod watch;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use weft_certs::SpiffeId;

use files::{CONSECUTIVE_FAILURES, RETRY_LIMIT, SERVICE, SERVICE_PORT, SLOW_PREFIX};
use processes::{Process, free_port, free_port_on, sibling_binary, wait_http_ok};
use weft_api::duration::parse as parse_duration;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// How long to send traffic (at least 4s: the flaky app has a quarter of it, the dead app
    /// the next quarter, and the breaker needs time to see it back).
    #[arg(long, default_value = "8s", value_parser = parse_duration)]
    duration: Duration,
    /// Certificate lifetime; short, so rotations happen while you watch.
    #[arg(long, default_value = "4s", value_parser = parse_duration)]
    cert_ttl: Duration,
    /// Keep the working directory (CA, tokens, service and policy files, logs) instead of
    /// deleting it.
    #[arg(long)]
    keep: bool,
    /// After the report, keep the mesh running with traffic and serve `weft dashboard`'s page
    /// for its sidecars (its URL is printed) until Ctrl-C.
    #[arg(long)]
    dashboard: bool,
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
/// The sidecars, as the timeline names them: `hello1` fronts the steady app, `hello2` the flaky.
const SIDECARS: [&str; 3] = [WEB, "hello1", "hello2"];
/// The endpoints' addresses (they share a port).
const ENDPOINT_IPS: [Ipv4Addr; 2] = [Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3)];
/// The flaky app's share of `503`s.
const FLAKY_PERCENT: u32 = 30;

fn identity(account: &str) -> anyhow::Result<SpiffeId> {
    Ok(SpiffeId::new("cluster.local", "demo", account)?)
}

/// What the flaky app is doing, for the timeline's lines.
type Condition = Arc<Mutex<&'static str>>;

async fn demo(args: DemoArgs) -> anyhow::Result<bool> {
    if args.duration < Duration::from_secs(4) {
        bail!(
            "--duration {} is too short: the flaky app, its death and its return need at least 4s",
            humantime::format_duration(args.duration)
        );
    }
    let control_plane_bin = sibling_binary("weft-control-plane")?;
    let proxy_bin = sibling_binary("weft-proxy")?;
    let workdir = tempfile::Builder::new().prefix("weft-demo-").tempdir()?;
    let dir = workdir.path();
    let (web_id, hello_id) = (identity(WEB)?, identity(HELLO)?);
    files::write_tokens(dir, &[(&web_id, WEB), (&hello_id, HELLO)])?;

    let port = free_port_on(&[ENDPOINT_IPS, canary::IPS].concat())?;
    let endpoints = ENDPOINT_IPS.map(|ip| SocketAddr::from((ip, port)));
    let (services_file, policy_file) = (dir.join("services.yaml"), dir.join("policy.yaml"));
    let services = [
        files::services_yaml(&endpoints),
        canary::services_yaml(port),
    ]
    .join("---\n");
    std::fs::write(&services_file, services)?;
    // No route until the canary: `[]` says so on purpose.
    let routes_file = dir.join("routes.yaml");
    std::fs::write(&routes_file, "[]\n")?;
    let drill_until = std::time::SystemTime::now() + args.duration + Duration::from_secs(60);
    std::fs::write(&policy_file, files::policy_yaml(&web_id, drill_until))?;

    let (cp_grpc, cp_admin) = (free_port()?, free_port()?);
    let (web_inbound, web_admin, web_forward) = (free_port()?, free_port()?, free_port()?);
    let admins = [web_admin, free_port()?, free_port()?];
    let steady = flaky::App::start().await?;
    let mut flaky = flaky::App::start().await?;
    let versions = [flaky::App::start().await?, flaky::App::start().await?];
    let version_admins = [free_port()?, free_port()?];
    let s = |p: &Path| p.display().to_string();

    println!(
        "weft demo: a control plane and three sidecars on loopback (working directory {})\n",
        dir.display()
    );
    // The control plane checks both files and refuses to start on a broken one (its log says
    // what is wrong, file:line:column).
    let cp_args = vec![
        format!("--listen={cp_grpc}"),
        format!("--admin-listen={cp_admin}"),
        format!("--data-dir={}", s(&dir.join("control-plane"))),
        format!("--cert-ttl={}", weft_api::duration::format(args.cert_ttl)),
        format!("--bootstrap-tokens={}", s(&dir.join("tokens.yaml"))),
        format!("--services={}", s(&services_file)),
        format!("--policies={}", s(&policy_file)),
        format!("--routes={}", s(&routes_file)),
        // No cluster sends admission reviews to a demo; do not take port 8443.
        "--webhook-listen=off".to_owned(),
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
            // Nothing is intercepted on loopback: all sidecars share one network namespace.
            "--outbound-listen=off".to_owned(),
        ]
    };
    let mut sidecars = Vec::new();
    for (i, app) in [&steady, &flaky].into_iter().enumerate() {
        let mut args = proxy_args(HELLO, &hello_id, endpoints[i], admins[i + 1]);
        args.push(format!("--inbound-app-addr={}", app.addr));
        let name = format!("{}-sidecar", SIDECARS[i + 1]);
        sidecars.push(Process::spawn(dir, &name, &proxy_bin, &args)?);
    }
    let mut web_args = proxy_args(WEB, &web_id, web_inbound, web_admin);
    web_args.push(format!("--forward={web_forward}={SERVICE}:{SERVICE_PORT}"));
    sidecars.insert(
        0,
        Process::spawn(dir, "web-sidecar", &proxy_bin, &web_args)?,
    );
    let mut version_sidecars = Vec::new();
    for (i, app) in versions.iter().enumerate() {
        let endpoint = SocketAddr::from((canary::IPS[i], port));
        let mut args = proxy_args(HELLO, &hello_id, endpoint, version_admins[i]);
        args.push(format!("--inbound-app-addr={}", app.addr));
        let name = format!("hello-v{}-sidecar", i + 1);
        version_sidecars.push(Process::spawn(dir, &name, &proxy_bin, &args)?);
    }
    let all_admins = admins.into_iter().chain(version_admins);
    for (sidecar, admin) in sidecars
        .iter_mut()
        .chain(&mut version_sidecars)
        .zip(all_admins)
    {
        wait_http_ok(sidecar, admin, "/ready", Duration::from_secs(15)).await?;
    }
    let policy_version = wait_for_service(web_admin, endpoints.len()).await?;

    println!(
        "  control plane  {cp_grpc}  CA \"{}\", workload certificates live {}",
        ca[0].subject,
        humantime::format_duration(args.cert_ttl)
    );
    println!(
        "  service        {SERVICE}:{SERVICE_PORT} -> {} and {}  (services.yaml)",
        endpoints[0], endpoints[1]
    );
    println!(
        "  policy         {policy_version}  (policy.yaml): {RETRY_LIMIT} retries on 502/503/504, breaker after {CONSECUTIVE_FAILURES} failures in a row, {SLOW_PREFIX} cut at {}",
        humantime::format_duration(files::SLOW_TIMEOUT)
    );
    println!("  sidecar web    {web_id}  (the client sends to {web_forward})");
    println!(
        "  sidecar hello1 {hello_id} on {}  (its app: 127.0.0.1:{})",
        endpoints[0],
        steady.addr.port()
    );
    println!(
        "  sidecar hello2 {hello_id} on {}  (its app: 127.0.0.1:{}, flaky, then down, then back)\n",
        endpoints[1],
        flaky.addr.port()
    );
    println!(
        "sending requests for {}: client -> web sidecar -> mutual TLS -> hello sidecars -> apps; one connection asks for {SLOW_PREFIX}, where the app takes {}",
        humantime::format_duration(args.duration),
        humantime::format_duration(app::SLOW_ANSWER)
    );

    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let certificates = tokio::spawn(watch::certificates(
        SIDECARS.into_iter().zip(admins).collect(),
        started,
        stop.clone(),
    ));
    let condition: Condition = Arc::new(Mutex::new("its app answers 503s"));
    let why = {
        let condition = condition.clone();
        let flaky_endpoint = endpoints[1].to_string();
        move |endpoint: &str| {
            if endpoint == flaky_endpoint {
                (*condition.lock().unwrap_or_else(|p| p.into_inner())).to_owned()
            } else {
                "failing".to_owned()
            }
        }
    };
    let breakers = tokio::spawn(timeline::breakers(web_admin, started, why, stop.clone()));
    timeline::print(
        started,
        &format!("hello2's app answers 503 to {FLAKY_PERCENT} % of requests"),
    );
    flaky.fail(FLAKY_PERCENT);
    let script = async {
        let quarter = args.duration / 4;
        tokio::time::sleep_until((started + quarter).into()).await;
        *condition.lock().unwrap_or_else(|p| p.into_inner()) = "app down";
        flaky.die().await;
        timeline::print(
            started,
            "hello2's app dies: its listener closes (its sidecar answers 502 app_unreachable)",
        );
        tokio::time::sleep_until((started + 2 * quarter).into()).await;
        let back = flaky.come_back().await;
        *condition.lock().unwrap_or_else(|p| p.into_inner()) = "app back";
        timeline::print(
            started,
            &format!("hello2's app is back, listening on {}", flaky.addr),
        );
        back.map(|()| started.elapsed())
    };
    let fast = traffic::run(web_forward, "/", args.duration, 4, Duration::from_millis(5));
    let slow = traffic::run(
        web_forward,
        "/slow/report",
        args.duration,
        1,
        Duration::from_millis(150),
    );
    let (back_at, fast, slow) = tokio::join!(script, fast, slow);
    let back_at = back_at.context("the flaky app could not listen again")?;
    timeline::print(
        started,
        &format!(
            "fault drill: the hello sidecars abort {} % of {} requests with 503 (until {})",
            files::DRILL_PERCENT,
            files::DRILL_PREFIX,
            humantime::format_rfc3339_seconds(drill_until)
        ),
    );
    let drill = traffic::run(
        web_forward,
        "/drill/report",
        Duration::from_secs(1),
        2,
        Duration::from_millis(10),
    )
    .await;
    // Straight to a hello sidecar without a mesh certificate: its policy admits only web.
    let plaintext = http_get(endpoints[0], "/").await?;
    stop.store(true, Ordering::SeqCst);
    let certificates = certificates
        .await
        .context("the certificate watcher failed")?;
    let breakers = breakers.await.context("the breaker watcher failed")?;

    let mut texts = Vec::new();
    for admin in admins {
        texts.push(http_get(admin, "/metrics").await?.1);
    }
    // After the scrape: the report's counts are those of the run before.
    let canary = canary::run(
        &routes_file,
        web_forward,
        web_admin,
        [&versions[0], &versions[1]],
    )
    .await?;
    control_plane.check_alive()?;
    for sidecar in sidecars.iter_mut().chain(&mut version_sidecars) {
        sidecar.check_alive()?;
    }
    let run = report::Run {
        web_id: web_id.to_string(),
        hello_id: hello_id.to_string(),
        sidecars: SIDECARS,
        endpoints,
        apps: [&steady, &flaky],
        fast,
        slow,
        drill,
        plaintext,
        metrics: texts,
        certificates,
        breakers,
        back_at,
        final_states: timeline::endpoint_states(web_admin).await,
        duration: args.duration,
        cert_ttl: args.cert_ttl,
    };
    let mut problems = report::print(&run);
    problems.extend(canary::report(&canary));

    println!(
        "\nthe same mesh by hand (the flags the demo used; the apps and the client are the demo's own):"
    );
    for process in std::iter::once(&control_plane)
        .chain(&sidecars)
        .chain(&version_sidecars)
    {
        println!("  {}", process.command_line);
    }
    if args.dashboard {
        // The flaky app fails some requests again: retries and the breaker have work to show.
        flaky.fail(FLAKY_PERCENT);
        let every_sidecar: Vec<SocketAddr> =
            admins.iter().chain(&version_admins).copied().collect();
        dashboard::run(web_forward, &every_sidecar).await?;
    }
    if args.keep {
        let kept = workdir.keep();
        println!(
            "\nkept {} (services.yaml, policy.yaml, routes.yaml, tokens, logs: *.log)",
            kept.display()
        );
    }
    Ok(report::verdict(&problems))
}

/// Waits until the web sidecar knows every endpoint of the service and its policy; returns the
/// policy's version.
async fn wait_for_service(web_admin: SocketAddr, endpoints: usize) -> anyhow::Result<String> {
    let give_up = Instant::now() + Duration::from_secs(10);
    let mut last = None;
    while Instant::now() < give_up {
        if let Some(d) = timeline::destination(web_admin).await {
            let version = d["policy_version"].as_str().unwrap_or("").to_owned();
            let known = d["endpoints"].as_array().map_or(0, Vec::len);
            if known == endpoints && !version.is_empty() && version != "builtin" {
                return Ok(version);
            }
            last = Some(d);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!(
        "the web sidecar did not learn {SERVICE} with {endpoints} endpoints and its policy within 10s; it shows {}",
        last.map_or("nothing".to_owned(), |d| d.to_string())
    )
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

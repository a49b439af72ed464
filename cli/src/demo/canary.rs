//! The demo's canary: `hello` gets two versions, `hello-v1` and `hello-v2` (each a Service with
//! one endpoint: a sidecar in front of its own app), and an HTTPRoute on `hello` moves the
//! weights 90/10 → 50/50 → 0/100 while the client keeps sending. Each step starts when the web
//! sidecar shows the new weights in force, and its shares are counted by the two apps
//! themselves, not read from the configuration.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;

use super::files::{SERVICE_PORT, write_atomically};
use super::flaky::App;
use super::timeline;
use super::traffic::{self, Tally};

/// The versions' endpoints (the port is the demo's endpoint port).
pub const IPS: [Ipv4Addr; 2] = [Ipv4Addr::new(127, 0, 0, 4), Ipv4Addr::new(127, 0, 0, 5)];
/// The weights of `hello-v1` and `hello-v2`, step by step.
pub const STEPS: [(u32, u32); 3] = [(90, 10), (50, 50), (0, 100)];
/// How long each step's weights are in force while the client sends.
const STEP: Duration = Duration::from_millis(800);
/// The longest wait for an edit of the routes file to reach the web sidecar.
const IN_FORCE_DEADLINE: Duration = Duration::from_secs(5);

/// `hello-v1.demo` and `hello-v2.demo`, each with one endpoint proving `.../sa/hello`.
pub fn services_yaml(port: u16) -> String {
    IPS.iter()
        .enumerate()
        .map(|(i, ip)| {
            format!(
                "apiVersion: weft.dev/v1alpha1\nkind: MeshService\nmetadata: {{name: hello-v{}, namespace: demo}}\nspec:\n  ports: [{{port: {SERVICE_PORT}, targetPort: {port}}}]\n  endpoints: [{{address: {ip}, serviceAccount: hello}}]\n",
                i + 1
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The HTTPRoute on `hello.demo:8080` with the weights of `step`.
pub fn route_yaml((v1, v2): (u32, u32)) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: hello, namespace: demo}}
spec:
  parentRefs: [{{group: \"\", kind: Service, name: hello, port: {SERVICE_PORT}}}]
  rules:
    - name: canary
      backendRefs:
        - {{name: hello-v1, port: {SERVICE_PORT}, weight: {v1}}}
        - {{name: hello-v2, port: {SERVICE_PORT}, weight: {v2}}}
"
    )
}

/// What one step's weights brought each version, by the apps' own counts.
#[derive(Debug)]
pub struct Step {
    pub weights: (u32, u32),
    pub v1: u64,
    pub v2: u64,
}

/// The canary's result.
#[derive(Debug)]
pub struct Canary {
    pub steps: Vec<Step>,
    /// Everything the client sent meanwhile.
    pub traffic: Tally,
}

/// Edits `routes_file` step by step while the client sends to `target` through the web
/// sidecar (admin port `web_admin`), counting what each version's app answered.
pub async fn run(
    routes_file: &Path,
    target: SocketAddr,
    web_admin: SocketAddr,
    apps: [&App; 2],
) -> anyhow::Result<Canary> {
    let counts = || [apps[0].behaviour.answered(), apps[1].behaviour.answered()];
    let stop = Arc::new(AtomicBool::new(false));
    // Bounded by the longest the steps can take, should the demo be stopped on the way.
    let limit = (STEP + IN_FORCE_DEADLINE) * STEPS.len() as u32;
    let mut traffic = None;
    let mut steps = Vec::new();
    // The step in force, and the apps' counts when it came into force.
    let mut current: Option<((u32, u32), [u64; 2])> = None;
    for weights in STEPS {
        write_atomically(routes_file, &route_yaml(weights))?;
        in_force(web_admin, weights).await?;
        let now = counts();
        if let Some((previous, before)) = current.replace((weights, now)) {
            steps.push(between(previous, before, now));
        }
        // The client starts once the first weights are in force (before, `hello`'s own
        // endpoints would answer), and keeps sending while the next edits come in.
        traffic.get_or_insert_with(|| {
            let pause = Duration::from_millis(2);
            let run = traffic::run_until(target, "/", stop.clone(), limit, 4, pause);
            tokio::spawn(run)
        });
        tokio::time::sleep(STEP).await;
    }
    stop.store(true, Ordering::SeqCst);
    let traffic = match traffic {
        Some(running) => running.await.unwrap_or_default(),
        None => Tally::default(),
    };
    if let Some((weights, before)) = current {
        steps.push(between(weights, before, counts()));
    }
    Ok(Canary { steps, traffic })
}

fn between(weights: (u32, u32), before: [u64; 2], after: [u64; 2]) -> Step {
    Step {
        weights,
        v1: after[0] - before[0],
        v2: after[1] - before[1],
    }
}

/// Waits until the web sidecar's route table for `hello.demo` has `weights`.
async fn in_force(web_admin: SocketAddr, (v1, v2): (u32, u32)) -> anyhow::Result<()> {
    let give_up = Instant::now() + IN_FORCE_DEADLINE;
    loop {
        if let Some(d) = timeline::destination(web_admin).await {
            let backends = &d["gateway_routes"]["rules"][0]["backends"];
            let weight = |i: usize| backends[i]["weight"].as_u64();
            if weight(0) == Some(u64::from(v1)) && weight(1) == Some(u64::from(v2)) {
                return Ok(());
            }
        }
        if Instant::now() > give_up {
            bail!(
                "the web sidecar did not put the weights {v1}/{v2} in force within {IN_FORCE_DEADLINE:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Prints the canary's steps; returns what went wrong.
pub fn report(canary: &Canary) -> Vec<String> {
    let mut problems = Vec::new();
    println!(
        "\ncanary         routes.yaml: HTTPRoute hello -> hello-v1 / hello-v2, weights edited while the client sends"
    );
    for step in &canary.steps {
        let (w1, w2) = step.weights;
        let total = step.v1 + step.v2;
        let share = |n: u64| match total {
            0 => 0.0,
            _ => n as f64 * 100.0 / total as f64,
        };
        println!(
            "  weights {w1}/{w2}  hello-v1 answered {} ({:.0} %), hello-v2 {} ({:.0} %)",
            step.v1,
            share(step.v1),
            step.v2,
            share(step.v2)
        );
        if total == 0 {
            problems.push(format!("no request reached a version at weights {w1}/{w2}"));
        } else if (share(step.v2) - f64::from(w2)).abs() > 15.0 {
            problems.push(format!(
                "at weights {w1}/{w2} hello-v2 got {:.0} % of the requests",
                share(step.v2)
            ));
        }
        if w1 == 0 && step.v1 > 0 {
            problems.push(format!(
                "hello-v1 answered {} requests at weight 0",
                step.v1
            ));
        }
    }
    let failed = canary.traffic.failed();
    match failed {
        0 => println!(
            "  client         {} requests, no failed request",
            canary.traffic.sent
        ),
        n => {
            println!(
                "  client         {} requests, {n} failed",
                canary.traffic.sent
            );
            problems.push(format!("{n} requests failed while the weights moved"));
        }
    }
    problems
}

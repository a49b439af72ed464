//! The files the demo writes for the control plane: bootstrap tokens, the `hello.demo`
//! MeshService, and its ServicePolicy. They are what a person would write by hand (`--keep`
//! keeps them next to the logs).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
use weft_certs::SpiffeId;

/// The service's name, port, and the `destination` label of the caller's metrics.
pub const SERVICE: &str = "hello.demo";
pub const SERVICE_PORT: u16 = 8080;
/// The route of the slow requests, and its deadline.
pub const SLOW_PREFIX: &str = "/slow";
pub const SLOW_TIMEOUT: Duration = Duration::from_millis(300);
/// Extra attempts on a gateway error, and the failures in a row that eject an endpoint.
pub const RETRY_LIMIT: u32 = 2;
pub const CONSECUTIVE_FAILURES: u32 = 5;
/// The breaker's longest penalty: the demo leaves at least this long after the app comes back.
pub const PENALTY_MAX: Duration = Duration::from_secs(2);
/// The route of the fault drill the hello sidecars run, the share they abort with `503`, and
/// the retries the caller makes on that route.
pub const DRILL_PREFIX: &str = "/drill";
pub const DRILL_PERCENT: u32 = 10;
pub const DRILL_RETRIES: u32 = 4;

/// Replaces `path` at once (a temporary file renamed over it), so the control plane, which
/// polls the file, never reads half of it.
pub fn write_atomically(path: &Path, contents: &str) -> anyhow::Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, contents)?;
    std::fs::rename(&temporary, path)?;
    Ok(())
}

/// A bootstrap token per workload: 32 random hex characters, in the control plane's tokens file
/// and in a file per sidecar (`<account>.token`).
pub fn write_tokens(dir: &Path, workloads: &[(&SpiffeId, &str)]) -> anyhow::Result<()> {
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

/// `hello.demo`: port 8080 to the sidecars' inbound port on each endpoint, all proving
/// `.../sa/hello`. Every endpoint listens on the same port, so they differ by address.
pub fn services_yaml(endpoints: &[SocketAddr]) -> String {
    let target_port = endpoints.first().map_or(0, SocketAddr::port);
    let mut yaml = format!(
        "apiVersion: weft.dev/v1alpha1
kind: MeshService
metadata: {{name: hello, namespace: demo}}
spec:
  ports:
    - port: {SERVICE_PORT}
      targetPort: {target_port}
  endpoints:
"
    );
    for endpoint in endpoints {
        yaml.push_str(&format!(
            "    - address: {}\n      serviceAccount: hello\n",
            endpoint.ip()
        ));
    }
    yaml
}

/// The ServicePolicy of `hello.demo`: the client half enforced by the web sidecar, the server
/// half by the hello sidecars, with a fault drill that ends by itself at `drill_until`.
pub fn policy_yaml(web: &SpiffeId, drill_until: std::time::SystemTime) -> String {
    let slow_ms = SLOW_TIMEOUT.as_millis();
    let penalty_max = PENALTY_MAX.as_secs();
    let until = humantime::format_rfc3339_seconds(drill_until);
    format!(
        "apiVersion: weft.dev/v1alpha1
kind: ServicePolicy
metadata: {{name: hello, namespace: demo}}
spec:
  routes:
    - name: slow
      match: {{pathPrefix: {SLOW_PREFIX}}}
    - name: drill
      match: {{pathPrefix: {DRILL_PREFIX}}}
  client:
    defaults:
      retries:
        limit: {RETRY_LIMIT}                      # up to two more attempts, on another endpoint
        on: [gateway-error]           # 502, 503, 504 (and connect failures, always)
        budget: {{ratio: 0.5}}          # retries add at most half the traffic
      circuitBreaker:
        consecutiveFailures: {CONSECUTIVE_FAILURES}
        penalty: {{base: 1s, max: {penalty_max}s, jitter: 0.5}}
    overrides:
      - routes: [slow]
        timeouts: {{request: {slow_ms}ms}}   # the whole request, every attempt: then 504
        retries: {{limit: 1}}           # an endpoint that never got it can still be tried
      - routes: [drill]
        retries: {{limit: {DRILL_RETRIES}}}
  server:
    authorization:
      allow: [{{from: [\"{web}\"]}}]   # only web may call hello
    faults:
      - routes: [drill]
        abort: {{status: 503, percent: {DRILL_PERCENT}}}
        until: {until}   # a drill always ends by itself
"
    )
}

//! What `tests/tests/reference_docs.rs` compares: the flags the binaries' `--help` lists and the
//! metric families a running mesh exposes, against the tables of `docs/reference/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::Method;

use crate::apps::fault_app::Reply;
use crate::clients::{self, tls_probe};
use crate::mesh::identity;
use crate::mesh::policy_mesh::{PolicyMesh, admin_get, policy, send};

/// A command (`weft ca create`) and its long flags, each with the environment variable
/// `--help` names for it.
#[derive(Debug)]
pub struct CommandFlags {
    pub command: String,
    pub flags: BTreeMap<String, Option<String>>,
}

/// Runs `binary … --help` for the binary and every subcommand, recursively, and collects each
/// command's long flags. `--help` and `--version` are left out: clap adds them to every command.
pub fn help_flags(binary: &Path, name: &str) -> Vec<CommandFlags> {
    let mut found = Vec::new();
    let mut todo: Vec<Vec<String>> = vec![Vec::new()];
    while let Some(path) = todo.pop() {
        let help = run_help(binary, &path);
        for sub in help_subcommands(&help) {
            let mut deeper = path.clone();
            deeper.push(sub);
            todo.push(deeper);
        }
        let command = std::iter::once(name.to_owned())
            .chain(path.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ");
        found.push(CommandFlags {
            command,
            flags: help_options(&help),
        });
    }
    found
}

fn run_help(binary: &Path, path: &[String]) -> String {
    let output = Command::new(binary)
        .args(path)
        .arg("--help")
        // `--help` shows an environment variable's value when it is set: keep ours out of it.
        .env_clear()
        .output()
        .unwrap_or_else(|e| panic!("{} {path:?} --help: {e}", binary.display()));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success() && !text.is_empty(),
        "{} {path:?} --help: {}\n{text}{}",
        binary.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

/// The names under clap's `Commands:`, without `help`.
fn help_subcommands(help: &str) -> Vec<String> {
    let mut subcommands = Vec::new();
    let mut in_commands = false;
    for line in help.lines() {
        if !line.starts_with(' ') {
            in_commands = line.trim_end() == "Commands:";
            continue;
        }
        if in_commands
            && let Some(word) = line
                .strip_prefix("  ")
                .and_then(|l| l.split_whitespace().next())
            && !line.starts_with("   ")
            && word != "help"
        {
            subcommands.push(word.to_owned());
        }
    }
    subcommands
}

/// Long flags from clap's option lines (`  -h, --help` or `      --listen <LISTEN>`), each with
/// the `[env: NAME=…]` of its description, if any.
fn help_options(help: &str) -> BTreeMap<String, Option<String>> {
    let mut options = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in help.lines() {
        let option = line
            .strip_prefix("      --")
            .or_else(|| {
                let rest = line.strip_prefix("  -")?;
                let mut chars = rest.chars();
                chars.next()?;
                chars.as_str().strip_prefix(", --")
            })
            .filter(|rest| rest.starts_with(|c: char| c.is_ascii_alphanumeric()));
        if let Some(rest) = option {
            let flag: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            let flag = format!("--{flag}");
            current = (flag != "--help" && flag != "--version").then(|| flag.clone());
            if let Some(flag) = &current {
                options.insert(flag.clone(), None);
            }
        }
        if let Some(flag) = &current
            && let Some(env) = line.split("[env: ").nth(1)
        {
            let name: String = env
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            options.insert(flag.clone(), Some(name));
        }
        if !line.starts_with(' ') {
            current = None;
        }
    }
    options
}

/// The flag rows of a reference page by command: a heading that is a command in backticks
/// (`` ## `weft ca create` ``) starts its section; a row `` | `--flag` | `` is a flag, and the
/// first code span of its next cell, when it is a name in capitals (`` `WEFT_LOG` ``), its
/// environment variable.
pub fn documented_flags(page: &str) -> BTreeMap<String, BTreeMap<String, Option<String>>> {
    let mut commands: BTreeMap<String, BTreeMap<String, Option<String>>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in page.lines() {
        if line.starts_with('#') {
            let title = line.trim_start_matches('#').trim();
            current = title
                .strip_prefix('`')
                .and_then(|t| t.strip_suffix('`'))
                .filter(|t| t.starts_with("weft"))
                .map(str::to_owned);
            if let Some(command) = &current {
                commands.entry(command.clone()).or_default();
            }
            continue;
        }
        let Some(command) = &current else { continue };
        let cells: Vec<&str> = line.split(" | ").collect();
        let Some(flag) = cells
            .first()
            .and_then(|c| c.strip_prefix("| `--"))
            .and_then(|c| c.strip_suffix('`'))
        else {
            continue;
        };
        let env = cells
            .get(1)
            .and_then(|c| c.split('`').nth(1))
            .filter(|e| {
                e.starts_with(|c: char| c.is_ascii_uppercase())
                    && e.chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            })
            .map(str::to_owned);
        commands
            .get_mut(command)
            .unwrap()
            .insert(format!("--{flag}"), env);
    }
    commands
}

/// Whose `/metrics` a family is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Component {
    Proxy,
    ControlPlane,
}

impl Component {
    /// Where the code that registers this component's metrics lives.
    pub fn source_dir(self) -> &'static str {
        match self {
            Component::Proxy => "proxy/src",
            Component::ControlPlane => "control-plane/src",
        }
    }
}

/// A metric family's type and label names (`le` and `quantile` left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    pub kind: String,
    pub labels: BTreeSet<String>,
}

pub type Families = BTreeMap<Component, BTreeMap<String, Family>>;

/// The rows of `metrics.md`, `` | `name` | type | `label`, `label` | meaning | ``, under
/// `## The proxy …` or `## The control plane …`.
pub fn documented_metrics(page: &str) -> Families {
    let mut families = Families::new();
    let mut current = None;
    for line in page.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            current = if title.starts_with("The proxy") {
                Some(Component::Proxy)
            } else if title.starts_with("The control plane") {
                Some(Component::ControlPlane)
            } else {
                None
            };
            continue;
        }
        let Some(component) = current else { continue };
        let cells: Vec<&str> = line.split(" | ").collect();
        let Some(name) = cells
            .first()
            .and_then(|c| c.strip_prefix("| `weft_"))
            .and_then(|c| c.strip_suffix('`'))
        else {
            continue;
        };
        let labels = cells
            .get(2)
            .map(|cell| {
                cell.split(", ")
                    .filter_map(|l| l.strip_prefix('`')?.strip_suffix('`'))
            })
            .into_iter()
            .flatten()
            .map(str::to_owned)
            .collect();
        families.entry(component).or_default().insert(
            format!("weft_{name}"),
            Family {
                kind: cells.get(1).copied().unwrap_or_default().to_owned(),
                labels,
            },
        );
    }
    families
}

/// The families of a Prometheus text exposition.
pub fn parse_exposition(text: &str) -> BTreeMap<String, Family> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                continue;
            };
            families.insert(
                name.to_owned(),
                Family {
                    kind: kind.to_owned(),
                    labels: BTreeSet::new(),
                },
            );
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let sample = &line[..name_end];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| sample.strip_suffix(suffix))
            .find(|base| {
                families
                    .get(*base)
                    .is_some_and(|f| f.kind == "histogram" || f.kind == "summary")
            })
            .unwrap_or(sample)
            .to_owned();
        let labels = label_names(&line[name_end..]);
        if let Some(entry) = families.get_mut(&family) {
            entry
                .labels
                .extend(labels.into_iter().filter(|l| l != "le" && l != "quantile"));
        }
    }
    families
}

/// The names of `{a="x",b="y"}` (values may hold `,`, `=` and escaped quotes).
fn label_names(rest: &str) -> Vec<String> {
    let Some(body) = rest.strip_prefix('{') else {
        return Vec::new();
    };
    let mut names = Vec::new();
    let mut chars = body.chars();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        let name = name.trim_start_matches(',').trim();
        if name.is_empty() || name.starts_with('}') {
            return names;
        }
        names.push(name.to_owned());
        if chars.next() != Some('"') {
            return names;
        }
        let mut escaped = false;
        for c in chars.by_ref() {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => break,
                _ => {}
            }
        }
    }
}

/// Every exposed family missing from the documented ones, or documented with another type or
/// other labels.
pub fn metrics_drift(documented: &Families, exposed: &Families) -> Vec<String> {
    let mut problems = Vec::new();
    for (component, families) in exposed {
        for (name, family) in families {
            match documented.get(component).and_then(|rows| rows.get(name)) {
                None => problems.push(format!(
                    "metrics.md: {name} ({component:?}, {} {:?}) is exposed but has no row",
                    family.kind, family.labels
                )),
                Some(row) if row != family => problems.push(format!(
                    "metrics.md: {name} ({component:?}) is documented as {} {:?}, \
                     exposed as {} {:?}",
                    row.kind, row.labels, family.kind, family.labels
                )),
                Some(_) => {}
            }
        }
    }
    problems
}

/// Whether `name` appears, quoted, in the component's source.
pub fn registered_in_code(component: Component, name: &str) -> bool {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(component.source_dir());
    mentions(&dir, &format!("\"{name}\""))
}

fn mentions(dir: &Path, needle: &str) -> bool {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .any(|path| {
            if path.is_dir() {
                mentions(&path, needle)
            } else {
                path.extension().is_some_and(|e| e == "rs")
                    && std::fs::read_to_string(&path).is_ok_and(|text| text.contains(needle))
            }
        })
}

/// A policy that makes most layers act: a retried 503, a request timeout, a fault drill that
/// ejects an endpoint, an unauthenticated caller refused, a rate limiter holding buckets.
fn busy_policy() -> String {
    let until = SystemTime::now() + Duration::from_secs(3600);
    policy(&format!(
        "  routes:
    - name: slow
      match: {{pathPrefix: /slow}}
    - name: drill
      match: {{pathPrefix: /drill}}
  client:
    defaults:
      retries: {{limit: 2, on: [gateway-error]}}
      circuitBreaker: {{consecutiveFailures: 3}}
    overrides:
      - routes: [slow]
        timeouts: {{request: 200ms}}
  server:
    authorization:
      allow:
        - from: [\"{}\"]
    rateLimit:
      perIdentity: {{rps: 10000}}
    faults:
      - routes: [drill]
        abort: {{status: 503, percent: 100}}
        until: {}
",
        identity("web"),
        humantime::format_rfc3339_seconds(until)
    ))
}

/// The families the proxies (a caller and two endpoints) and the control plane expose after
/// traffic that makes most of them appear.
pub async fn exposed_metrics() -> Families {
    let mesh = PolicyMesh::start(2, Some(&busy_policy())).await;
    for i in 0..20 {
        send(mesh.addr(), Method::GET, &format!("/{i}"), Bytes::new())
            .await
            .unwrap();
    }
    for backend in &mesh.backends {
        backend.app.script("/flaky", [Reply::status(503)]);
        backend
            .app
            .script("/slow", [Reply::ok().after(Duration::from_secs(1))]);
    }
    let _ = send(mesh.addr(), Method::GET, "/flaky", Bytes::new()).await;
    let _ = send(mesh.addr(), Method::GET, "/slow", Bytes::new()).await;
    // Plaintext, straight to an endpoint's sidecar: no identity, so no allow rule admits it.
    let _ = send(mesh.endpoint(0), Method::GET, "/", Bytes::new()).await;
    // The mesh's protocol without a client certificate: a refused handshake.
    let bundle = mesh.mesh.trust_bundle();
    let _ = tls_probe::probe(
        mesh.endpoint(0),
        b"weft-h2",
        &bundle,
        &identity("hello"),
        None,
    )
    .await;
    for _ in 0..10 {
        let _ = send(mesh.addr(), Method::GET, "/drill", Bytes::new()).await;
    }

    let mut exposed = Families::new();
    let proxies =
        std::iter::once(&mesh.client).chain(mesh.backends.iter().filter_map(|b| b.proxy.as_ref()));
    for proxy in proxies {
        let (_, text) = admin_get(proxy, "/metrics").await.unwrap();
        merge(&mut exposed, Component::Proxy, parse_exposition(&text));
    }
    let admin = mesh.mesh.control_plane.as_ref().unwrap().admin_addr;
    let reply = clients::get(admin, "/metrics", "control-plane")
        .await
        .unwrap();
    merge(
        &mut exposed,
        Component::ControlPlane,
        parse_exposition(&reply.body),
    );
    exposed
}

fn merge(into: &mut Families, component: Component, families: BTreeMap<String, Family>) {
    let known = into.entry(component).or_default();
    for (name, family) in families {
        match known.get_mut(&name) {
            Some(existing) => existing.labels.extend(family.labels),
            None => {
                known.insert(name, family);
            }
        }
    }
}

//! weft in pods: a control plane in the bridge namespace and sidecars installed the way they are
//! in a cluster, on top of the generic [`crate::pods`] harness.
//!
//! A sidecar is `weft-proxy init` (iptables in the pod's namespace) followed by `weft-proxy`
//! running as UID 1337 with the defaults a pod gets (inbound 15006, outbound 15001, admin 15000).
//! Apps and clients are ordinary programs started in the pods; they know nothing about weft.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::mesh::{identity, token};
use crate::pods::{Pod, Pods, Process, Ran};
use crate::process::bins;

/// The UID `weft-proxy init` exempts from interception, and the proxy runs as.
pub const PROXY_UID: u32 = 1337;
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// Pods with a running control plane; sidecars are added per pod.
pub struct PodMesh {
    pub pods: Pods,
    dir: PathBuf,
    proxy_bin: PathBuf,
    control_plane: Option<Process>,
}

impl PodMesh {
    /// Creates `names` as pods and starts a control plane whose `--services` file is
    /// `services(&pods)` and whose tokens cover every account in [`crate::mesh`].
    pub fn start(names: &[&str], services: impl FnOnce(&Pods) -> String) -> Self {
        let pods = Pods::create(names);
        // Everything the proxies (UID 1337) read lives here: binaries, bundle, tokens.
        let dir = pods.log_dir().join("mesh");
        std::fs::create_dir_all(&dir).unwrap();
        for path in [pods.log_dir(), dir.as_path()] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut tokens =
            String::from("apiVersion: weft.dev/v1alpha1\nkind: BootstrapTokens\ntokens:\n");
        for account in crate::mesh::ACCOUNTS {
            tokens.push_str(&format!(
                "  - identity: {}\n    token: {}\n",
                identity(account),
                token(account)
            ));
            write_readable(&dir.join(format!("{account}.token")), &token(account));
        }
        std::fs::write(dir.join("tokens.yaml"), tokens).unwrap();
        std::fs::write(dir.join("services.yaml"), services(&pods)).unwrap();
        let proxy_bin = dir.join("weft-proxy");
        std::fs::copy(bins::path("weft-proxy"), &proxy_bin).unwrap();
        std::fs::set_permissions(&proxy_bin, std::fs::Permissions::from_mode(0o755)).unwrap();

        let mut mesh = Self {
            pods,
            dir,
            proxy_bin,
            control_plane: None,
        };
        mesh.start_control_plane();
        let bundle = mesh.dir.join("cp").join("trust-bundle.pem");
        std::fs::set_permissions(mesh.dir.join("cp"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::fs::set_permissions(&bundle, std::fs::Permissions::from_mode(0o644)).unwrap();
        mesh
    }

    /// Starts the control plane in the bridge namespace (it keeps its CA in the data directory,
    /// so a restart keeps the mesh's trust) and waits until it is ready.
    pub fn start_control_plane(&mut self) {
        let ip = self.pods.bridge_ip();
        let dir = &self.dir;
        self.control_plane = Some(
            self.pods.spawn(
                self.pods
                    .bridge_command(bins::path("weft-control-plane").to_str().unwrap())
                    .args(["--listen", &format!("{ip}:15010")])
                    .args(["--admin-listen", &format!("{ip}:15014")])
                    .arg("--data-dir")
                    .arg(dir.join("cp"))
                    .arg("--bootstrap-tokens")
                    .arg(dir.join("tokens.yaml"))
                    .arg("--services")
                    .arg(dir.join("services.yaml"))
                    .env("WEFT_LOG", "info"),
            ),
        );
        self.wait_http_ok(&format!("http://{ip}:15014/ready"));
    }

    /// Kills the control plane.
    pub fn stop_control_plane(&mut self) {
        if let Some(control_plane) = self.control_plane.take() {
            control_plane.kill();
        }
    }

    pub fn pod(&self, name: &str) -> &Pod {
        self.pods.pod(name)
    }

    /// Replaces the control plane's `--services` file (it reloads within about a second).
    pub fn write_services(&self, yaml: &str) {
        std::fs::write(self.dir.join("services.yaml"), yaml).unwrap();
    }

    /// Installs `pod`'s sidecar as workload `account`: iptables rules, then the proxy as UID
    /// 1337 with `extra` flags; returns once the proxy reports ready.
    pub fn sidecar(&self, pod: &str, account: &str, extra: &[&str]) -> Process {
        let pod = self.pods.pod(pod);
        pod.run(
            self.proxy_bin.to_str().unwrap(),
            &["init"],
            Duration::from_secs(30),
        )
        .expect_success();
        let proxy = self.pods.spawn(
            pod.command_as(PROXY_UID, PROXY_UID, self.proxy_bin.to_str().unwrap())
                .arg(format!("--identity={}", identity(account)))
                .arg(format!(
                    "--control-plane-addr={}:15010",
                    self.pods.bridge_ip()
                ))
                .arg("--trust-anchors")
                .arg(self.dir.join("cp").join("trust-bundle.pem"))
                .arg("--token-file")
                .arg(self.dir.join(format!("{account}.token")))
                .args(extra)
                .env("WEFT_LOG", "info,weft_proxy=debug"),
        );
        self.wait_http_ok(&format!("http://{}:15000/ready", pod.ip()));
        proxy
    }

    /// A proxy's admin endpoint, fetched from the bridge namespace.
    pub fn admin(&self, pod: &str, path: &str) -> String {
        let url = format!("http://{}:15000{path}", self.pods.pod(pod).ip());
        let ran = self.curl_from_bridge(&url);
        ran.expect_success();
        ran.stdout_text()
    }

    /// Runs `program args…` in `pod` (as root, so the pod's iptables rules apply to it).
    pub fn run_in(&self, pod: &str, program: &str, args: &[&str]) -> Ran {
        self.pods
            .pod(pod)
            .run(program, args, Duration::from_secs(30))
    }

    /// Starts a program from `tests/e2e/peers.py` in `pod` and waits for its "ready" line.
    pub fn peer(&self, pod: &str, args: &[&str]) -> Process {
        let script = peers_script();
        let mut all = vec![script.to_str().unwrap()];
        all.extend_from_slice(args);
        let process = self.pods.pod(pod).spawn("python3", &all);
        let deadline = Instant::now() + READY_DEADLINE;
        while !process.log().contains("ready") {
            assert!(
                Instant::now() < deadline && process.is_running(),
                "{} did not become ready in pod {pod}; log: {}",
                args.join(" "),
                process.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        process
    }

    /// Polls `url` from the bridge namespace until it answers 2xx.
    fn wait_http_ok(&self, url: &str) {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            let ran = self.curl_from_bridge(url);
            if ran.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{url} not ready within {READY_DEADLINE:?}: {ran}\nlogs in {}",
                self.pods.log_dir().display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn curl_from_bridge(&self, url: &str) -> Ran {
        self.pods.bridge().run(
            "curl",
            &["-sf", "--max-time", "2", url],
            Duration::from_secs(5),
        )
    }
}

fn write_readable(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

/// `tests/e2e/peers.py`: the apps and clients the end-to-end tests run.
pub fn peers_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("e2e")
        .join("peers.py")
}

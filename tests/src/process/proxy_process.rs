//! `weft-proxy` as a process on loopback, for what only a process shows: how it takes a signal,
//! its exit status, its log.
//!
//! It is started with the flags an in-process proxy of [`Mesh::proxy_args`] would get, listening
//! on port 0; the bound addresses are read from its "proxy started" log line, so tests never
//! guess free ports.

use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use weft_proxy::ProxyArgs;

use crate::clients::{self, Reply};
use crate::mesh::{Mesh, ProxyOptions};
use crate::wait;
use crate::{process::bins, process::logged_process};

const READY_DEADLINE: Duration = Duration::from_secs(10);
/// How long the log may take to reach its end once the process has exited.
const LOG_END_DEADLINE: Duration = Duration::from_secs(5);

pub struct ProxyProcess {
    child: Child,
    log: logged_process::Log,
    pub inbound_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The bound address of each `--forward` listener, in order.
    pub forward_addrs: Vec<SocketAddr>,
}

impl ProxyProcess {
    /// Starts `weft-proxy` for `account` with the flags `options` stand for plus `extra`, and
    /// waits until its admin `/ready` answers 200 (it holds a certificate).
    pub async fn start(mesh: &Mesh, account: &str, options: &ProxyOptions, extra: &[&str]) -> Self {
        let process = Self::spawn(mesh, account, options, extra, |_| {}).await;
        wait::until(READY_DEADLINE, "weft-proxy to be ready", || async {
            let reply = process.admin("/ready").await?;
            (reply.status == 200).then_some(())
        })
        .await;
        process
    }

    /// Starts `weft-proxy` like [`Self::start`], with `edit` applied to its flags first, and
    /// returns once it has started (it may have no certificate yet, or ever).
    pub async fn spawn(
        mesh: &Mesh,
        account: &str,
        options: &ProxyOptions,
        extra: &[&str],
        edit: impl FnOnce(&mut ProxyArgs),
    ) -> Self {
        let mut args = mesh.proxy_args(account, options);
        edit(&mut args);
        let mut command = Command::new(bins::path("weft-proxy"));
        command
            .args(flags(&args))
            .args(extra)
            .env("WEFT_TOKEN", args.token.as_deref().unwrap_or_default())
            .env("WEFT_LOG", "info");
        let (child, log, started) =
            logged_process::spawn(command, "weft-proxy", "proxy started").await;
        let field = |name: &str| logged_process::field(&started, name);
        let forwards = started
            .split_once("forwards=[")
            .and_then(|(_, rest)| rest.split_once(']'))
            .map(|(list, _)| list)
            .unwrap_or_else(|| panic!("no forwards in {started:?}"));
        Self {
            child,
            log,
            inbound_addr: field("inbound_addr").parse().unwrap(),
            admin_addr: field("admin_addr").parse().unwrap(),
            forward_addrs: forwards
                .split(", ")
                .filter(|a| !a.is_empty())
                .map(|a| a.parse().unwrap())
                .collect(),
        }
    }

    /// `GET path` on the admin port, `None` if the port does not answer.
    pub async fn admin(&self, path: &str) -> Option<Reply> {
        let tcp = TcpStream::connect(self.admin_addr).await.ok()?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .ok()?;
        tokio::spawn(conn);
        let req = Request::get(path)
            .header("host", "admin")
            .body(Empty::<Bytes>::new())
            .unwrap();
        Some(clients::read(sender.send_request(req).await.ok()?).await)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM, as the kubelet does to stop a pod.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {} failed", self.pid());
    }

    /// Its exit status, if it has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Waits up to `deadline` for it to exit; returns its status and when it was seen to exit.
    pub async fn wait_exit(&mut self, deadline: Duration) -> (ExitStatus, Instant) {
        let what = format!("weft-proxy (pid {}) to exit", self.pid());
        let status = wait::until(deadline, &what, || {
            let status = self.exit_status();
            async move { status }
        })
        .await;
        let exited = Instant::now();
        // The log is read by a thread: its last lines may still be on the way.
        wait::until(LOG_END_DEADLINE, "its log to end", || {
            let complete = self.log.is_complete();
            async move { complete.then_some(()) }
        })
        .await;
        (status, exited)
    }

    /// Everything it has logged so far (all of it once [`Self::wait_exit`] has returned).
    pub fn log(&self) -> String {
        self.log.text()
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- weft-proxy (pid {}) log:\n{}", self.pid(), self.log());
        }
    }
}

/// The command line `args` stands for (the token goes in the environment, not in `ps`).
fn flags(args: &ProxyArgs) -> Vec<String> {
    let mut flags = vec![
        format!(
            "--identity={}",
            args.identity.as_deref().unwrap_or_default()
        ),
        format!(
            "--control-plane-addr={}",
            args.control_plane_addr.as_deref().unwrap_or_default()
        ),
        format!("--inbound-listen={}", args.inbound_listen),
        format!("--inbound-mode={}", args.inbound_mode),
        format!("--admin-listen={}", args.admin_listen),
        format!(
            "--outbound-listen={}",
            args.outbound_listen.as_deref().unwrap_or("off")
        ),
        format!("--detect-timeout={}", args.detect_timeout),
        format!("--connect-timeout={}", args.connect_timeout),
    ];
    if let Some(path) = &args.trust_anchors {
        flags.push(format!("--trust-anchors={}", path.display()));
    }
    if let Some(app) = &args.inbound_app_addr {
        flags.push(format!("--inbound-app-addr={app}"));
    }
    flags.extend(args.forward.iter().map(|f| format!("--forward={f}")));
    flags
}

//! `weft-control-plane` as a process on loopback, for what only a process shows: a replica
//! that dies at once (SIGKILL), connections and all, with nothing said to its callers.
//!
//! It listens on port 0; the bound addresses are read from its "control plane serving" log line.

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::{clients, process::bins, process::logged_process, wait};

pub struct ControlPlaneProcess {
    child: Child,
    log: logged_process::Log,
    pub grpc_addr: SocketAddr,
    pub admin_addr: SocketAddr,
}

impl ControlPlaneProcess {
    /// Starts `weft-control-plane` with its data directory in `data_dir` and `flags`.
    pub async fn start(data_dir: &Path, flags: &[String]) -> Self {
        let mut command = Command::new(bins::path("weft-control-plane"));
        command
            .arg("--listen=127.0.0.1:0")
            .arg("--admin-listen=127.0.0.1:0")
            .arg(format!("--data-dir={}", data_dir.display()))
            .args(flags)
            .env("WEFT_LOG", "info");
        let (child, log, started) =
            logged_process::spawn(command, "weft-control-plane", "control plane serving").await;
        let field =
            |name: &str| -> SocketAddr { logged_process::field(&started, name).parse().unwrap() };
        Self {
            grpc_addr: field("grpc_addr"),
            admin_addr: field("admin_addr"),
            child,
            log,
        }
    }

    /// Runs `weft-control-plane` with exactly `flags` (no defaults of this harness) until it
    /// exits, which must be within `deadline`: its exit status and its log (stderr).
    pub fn run_to_exit(flags: &[String], deadline: Duration) -> (ExitStatus, String) {
        let mut child = Command::new(bins::path("weft-control-plane"))
            .args(flags)
            .env("WEFT_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("weft-control-plane starts");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let reader = std::thread::spawn(move || {
            let mut log = String::new();
            let _ = stderr.read_to_string(&mut log);
            log
        });
        let exited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait::until_blocking(deadline, "weft-control-plane to exit", || {
                child.try_wait().unwrap()
            })
        }));
        let status = match exited {
            Ok(status) => status,
            Err(panic) => {
                let _ = child.kill();
                let _ = child.wait();
                eprintln!("--- weft-control-plane log:\n{}", reader.join().unwrap());
                std::panic::resume_unwind(panic);
            }
        };
        (status, reader.join().unwrap())
    }

    /// SIGKILL: the process and its connections vanish at once.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its `/metrics` text, `None` if it does not answer.
    pub async fn metrics(&self) -> Option<String> {
        let reply = clients::get(self.admin_addr, "/metrics", "control-plane")
            .await
            .ok()?;
        (reply.status == 200).then_some(reply.body)
    }

    pub fn log(&self) -> String {
        self.log.text()
    }
}

impl Drop for ControlPlaneProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- weft-control-plane (pid {}) log:\n{}",
                self.child.id(),
                self.log()
            );
        }
    }
}

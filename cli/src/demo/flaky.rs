//! An app that fails on command: it answers `503` to a share of requests when told to, dies
//! (its listener closes and its connections end, so its sidecar answers `502 app_unreachable`),
//! and comes back listening on the same address.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::app::Behaviour;

pub struct App {
    pub addr: SocketAddr,
    pub behaviour: Arc<Behaviour>,
    /// The accept loop while the app is up.
    serving: Option<(watch::Sender<()>, JoinHandle<()>)>,
}

impl App {
    /// Starts an app on a free loopback port.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let mut app = Self {
            addr: listener.local_addr()?,
            behaviour: Arc::default(),
            serving: None,
        };
        app.serve(listener);
        Ok(app)
    }

    /// Answers `503` to `percent` % of requests from now on.
    pub fn fail(&self, percent: u32) {
        self.behaviour.fail(percent);
    }

    /// Closes the listener (returning once it is closed) and ends every connection once its
    /// request in progress is answered.
    pub async fn die(&mut self) {
        if let Some((stop, task)) = self.serving.take() {
            let _ = stop.send(());
            let _ = task.await;
        }
    }

    /// Listens on the same address again, answering every request.
    pub async fn come_back(&mut self) -> anyhow::Result<()> {
        self.behaviour.fail(0);
        let listener = TcpListener::bind(self.addr).await?;
        self.serve(listener);
        Ok(())
    }

    fn serve(&mut self, listener: TcpListener) {
        let (stop, mut stopped) = watch::channel(());
        let behaviour = self.behaviour.clone();
        let task = tokio::spawn(async move {
            let graceful = GracefulShutdown::new();
            loop {
                let tcp = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((tcp, _)) => tcp,
                        Err(_) => continue,
                    },
                    _ = stopped.changed() => break,
                };
                let behaviour = behaviour.clone();
                let service = service_fn(move |req| {
                    let behaviour = behaviour.clone();
                    async move { behaviour.handle(req).await }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            drop(listener);
            tokio::spawn(graceful.shutdown());
        });
        self.serving = Some((stop, task));
    }
}

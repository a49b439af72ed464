//! A TCP relay that can go silent: it forwards bytes both ways until [`StallingRelay::stall`],
//! then stops forwarding without closing anything, as a lost node or a cut network looks to the
//! two ends. Connections accepted while stalled are held open and silent too.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct StallingRelay {
    pub addr: SocketAddr,
    stalled: watch::Sender<bool>,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl StallingRelay {
    /// A relay on `127.0.0.1:0` to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), target).await
    }

    /// A relay on `addr` to `target`.
    pub async fn start_on(addr: SocketAddr, target: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stalled, _) = watch::channel(false);
        let accepted = Arc::new(AtomicUsize::new(0));
        let (tx, count) = (stalled.clone(), accepted.clone());
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let stalled = tx.subscribe();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (in_read, in_write) = inbound.into_split();
                    let (out_read, out_write) = outbound.into_split();
                    tokio::join!(
                        pump(in_read, out_write, stalled.clone()),
                        pump(out_read, in_write, stalled),
                    );
                });
            }
        });
        Self {
            addr,
            stalled,
            accepted,
            task,
        }
    }

    /// Stops forwarding, keeping every connection open.
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for StallingRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to` while not stalled; once stalled, reads nothing more and writes nothing
/// more, until the relay is dropped.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buf) => Some(read),
            changed = stalled.wait_for(|s| *s) => {
                drop(changed);
                None
            }
        };
        let stalled_now = *stalled.borrow();
        let n = match read {
            _ if stalled_now => return std::future::pending().await,
            None => return std::future::pending().await,
            Some(Ok(0) | Err(_)) => return,
            Some(Ok(n)) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

//! Background load for resilience tests: callers that send requests one after another, each
//! bounded in count and in time, until told to stop, recording every answer with its time.
//!
//! A test drives its scenario (kill an endpoint, wait for an ejection) while the load runs, then
//! stops it and judges every answer the callers got.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::mesh::policy_mesh::{Answer, Caller};

/// One request of the load: when it was sent, and what came back (`Err`: no HTTP answer).
#[derive(Debug)]
pub struct Sent {
    pub worker: usize,
    pub at: Instant,
    pub answer: Result<Answer, String>,
}

/// `workers` sequential callers of `GET path` on `addr`, each on its own keep-alive connection
/// (a new one after a failure), pausing `pause` between requests, at most `max_requests` each
/// and for at most `max_time`.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    sent: Arc<Mutex<Vec<Sent>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Traffic {
    pub fn start(
        addr: SocketAddr,
        path: &str,
        workers: usize,
        pause: Duration,
        max_requests: usize,
        max_time: Duration,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let give_up = Instant::now() + max_time;
        let tasks = (0..workers)
            .map(|worker| {
                let (stop, sent, path) = (stop.clone(), sent.clone(), path.to_owned());
                tokio::spawn(async move {
                    let mut caller: Option<Caller> = None;
                    for _ in 0..max_requests {
                        if stop.load(Ordering::SeqCst) || Instant::now() >= give_up {
                            return;
                        }
                        let at = Instant::now();
                        let answer = match caller.as_mut() {
                            Some(c) => c.get(&path).await,
                            None => match Caller::connect(addr).await {
                                Ok(mut c) => {
                                    let answer = c.get(&path).await;
                                    caller = Some(c);
                                    answer
                                }
                                Err(e) => Err(e),
                            },
                        };
                        if answer.is_err() {
                            caller = None;
                        }
                        sent.lock().unwrap().push(Sent { worker, at, answer });
                        tokio::time::sleep(pause).await;
                    }
                })
            })
            .collect();
        Self { stop, sent, tasks }
    }

    /// Answers so far.
    pub fn count(&self) -> usize {
        self.sent.lock().unwrap().len()
    }

    /// Stops the callers (each finishes the request it is in) and returns every answer.
    pub async fn stop(mut self) -> Vec<Sent> {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        std::mem::take(&mut *self.sent.lock().unwrap())
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for task in &self.tasks {
            task.abort();
        }
    }
}

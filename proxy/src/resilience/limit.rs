//! The concurrency limit of a destination: at most `maxConcurrent` attempts in flight, at most
//! `maxPending` waiting (each no longer than `queueTimeout`), everything beyond refused at once.
//!
//! Without a limit, a slow service makes its callers pile up requests (and memory, and
//! connections) until something else breaks; an unbounded queue only moves the pile. Refusing
//! early with `503 overloaded` is the answer a caller can act on. Every attempt takes a slot,
//! retries included, so retries cannot push a service past the limit either.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::policy::LimitsConfig;

#[derive(Debug)]
pub struct Limit {
    config: LimitsConfig,
    slots: Arc<Semaphore>,
    pending: AtomicU32,
}

/// Why a request got no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue was full.
    QueueFull,
    /// It waited `queueTimeout` in the queue.
    QueueTimeout,
}

impl Limit {
    pub fn new(config: LimitsConfig) -> Self {
        Self {
            config,
            slots: Arc::new(Semaphore::new(config.max_concurrent as usize)),
            pending: AtomicU32::new(0),
        }
    }

    pub fn config(&self) -> &LimitsConfig {
        &self.config
    }

    /// A slot for one attempt, held until the permit is dropped.
    pub async fn acquire(&self) -> Result<OwnedSemaphorePermit, Refused> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let waiting = self.pending.fetch_add(1, Ordering::Relaxed);
        let _pending = Pending(&self.pending);
        if waiting >= self.config.max_pending {
            return Err(Refused::QueueFull);
        }
        let wait = self.slots.clone().acquire_owned();
        match tokio::time::timeout(self.config.queue_timeout, wait).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; treat it as a full queue if it were.
            Ok(Err(_)) => Err(Refused::QueueFull),
            Err(_) => Err(Refused::QueueTimeout),
        }
    }

    pub fn in_flight(&self) -> usize {
        (self.config.max_concurrent as usize).saturating_sub(self.slots.available_permits())
    }

    pub fn pending(&self) -> u32 {
        self.pending.load(Ordering::Relaxed)
    }
}

/// Counts a request in the queue while it waits.
struct Pending<'a>(&'a AtomicU32);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limit(max_concurrent: u32, max_pending: u32) -> Arc<Limit> {
        Arc::new(Limit::new(LimitsConfig {
            max_concurrent,
            max_pending,
            queue_timeout: Duration::from_secs(1),
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn beyond_the_queue_requests_are_refused_at_once() {
        let l = limit(2, 1);
        let a = l.acquire().await.unwrap();
        let _b = l.acquire().await.unwrap();
        let waiter = tokio::spawn({
            let l = l.clone();
            async move { l.acquire().await.map(drop) }
        });
        tokio::task::yield_now().await;
        assert_eq!(l.pending(), 1);
        assert_eq!(l.acquire().await.unwrap_err(), Refused::QueueFull);
        drop(a);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        assert_eq!(l.in_flight(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_queued_request_gives_up_after_the_queue_timeout() {
        let l = limit(1, 4);
        let _held = l.acquire().await.unwrap();
        let started = tokio::time::Instant::now();
        assert_eq!(l.acquire().await.unwrap_err(), Refused::QueueTimeout);
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        assert_eq!(l.pending(), 0);
    }
}

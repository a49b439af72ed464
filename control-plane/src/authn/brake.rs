//! A brake on failed authentication, per source address.
//!
//! Every refused token costs a log line, and with TokenReview a request to the API server: a
//! caller that keeps guessing must not turn that into a flood. Each source IP address has an
//! allowance of failures, [`BURST`] at once and then one more every [`REFILL`]. A source that
//! has used it up is refused before its token is even looked at, with `RESOURCE_EXHAUSTED`
//! and the time until it may try again; those refusals are logged as one line when the brake
//! engages and then one line per source every [`LOG_INTERVAL`] (or when the source goes quiet)
//! with their count, instead of a line each.
//!
//! Sources are braked apart: one caller's failures never slow another's requests. An attempt
//! holds one unit of its source's allowance while it runs, so concurrent guesses count as well;
//! a success, or a failure that is not the caller's (the API server unreachable), gives the
//! unit back. The table is bounded by [`MAX_SOURCES`]: when it is full, sources that have
//! recovered their whole allowance are forgotten first, then the one idle the longest.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::IntGauge;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Failures a source may have at once (its full allowance) before the brake engages.
pub const BURST: u32 = 10;
/// While braked, a source gets one more try per this long.
pub const REFILL: Duration = Duration::from_secs(1);
/// How often the refusals of a source that keeps trying are logged, as one line with their count.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Sources tracked at once; past it the one idle the longest is forgotten.
pub const MAX_SOURCES: usize = 10_000;
/// How often the table is swept: quiet sources' counts logged, recovered ones forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

pub struct Brake {
    sources: Mutex<HashMap<IpAddr, Allowance>>,
    /// `weft_certify_braked_sources`: sources the brake has engaged for that have not recovered
    /// their whole allowance yet, as of the last sweep.
    braked_gauge: IntGauge,
}

/// One source's allowance and what is still to be logged about it.
struct Allowance {
    /// Failures it may still have now (fractions refill over time).
    tokens: f64,
    /// When `tokens` was last brought up to date: the source's last attempt.
    updated: Instant,
    /// Refusals not logged yet, and when the last one happened.
    unlogged: u64,
    last_refused: Option<Instant>,
    /// When its refusals were last logged; `None` until the brake engages (it stays set until
    /// the source is forgotten, so a source that keeps trying gets one line per interval).
    logged_at: Option<Instant>,
}

impl Allowance {
    fn full(now: Instant) -> Self {
        Self {
            tokens: f64::from(BURST),
            updated: now,
            unlogged: 0,
            last_refused: None,
            logged_at: None,
        }
    }

    /// What `tokens` has grown to by `now`.
    fn tokens_at(&self, now: Instant) -> f64 {
        let earned =
            now.saturating_duration_since(self.updated).as_secs_f64() / REFILL.as_secs_f64();
        (self.tokens + earned).min(f64::from(BURST))
    }

    fn refill(&mut self, now: Instant) {
        self.tokens = self.tokens_at(now);
        self.updated = now;
    }

    /// Back to a full allowance with nothing left to log by `now`: nothing to remember.
    fn recovered(&self, now: Instant) -> bool {
        self.tokens_at(now) >= f64::from(BURST) && self.unlogged == 0
    }

    fn retry_after(&self) -> Duration {
        REFILL.mul_f64((1.0 - self.tokens).max(0.0))
    }
}

/// A refusal by the brake: the source may try again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Braked {
    pub retry_after: Duration,
}

/// One admitted attempt. Dropped without [`Attempt::failed`], it gives its unit back.
pub struct Attempt<'a> {
    brake: &'a Brake,
    source: IpAddr,
    failed: bool,
}

impl Attempt<'_> {
    /// The caller failed to authenticate: the unit stays spent.
    pub fn failed(mut self) {
        self.failed = true;
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.failed {
            self.brake.give_back(self.source, Instant::now());
        }
    }
}

impl Brake {
    pub fn new(braked_gauge: IntGauge) -> Arc<Self> {
        Arc::new(Self {
            sources: Mutex::new(HashMap::new()),
            braked_gauge,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Allowance>> {
        // Nothing panics while holding the lock; a poisoned table is still a consistent one.
        self.sources.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lets an attempt from `source` go ahead, holding one unit of its allowance, or refuses it.
    pub fn admit(&self, source: IpAddr) -> Result<Attempt<'_>, Braked> {
        let now = Instant::now();
        let mut sources = self.lock();
        if !sources.contains_key(&source) && sources.len() >= MAX_SOURCES {
            make_room(&mut sources, now);
        }
        let allowance = sources
            .entry(source)
            .or_insert_with(|| Allowance::full(now));
        allowance.refill(now);
        if allowance.tokens < 1.0 {
            let braked = Braked {
                retry_after: allowance.retry_after(),
            };
            allowance.unlogged += 1;
            allowance.last_refused = Some(now);
            if allowance.logged_at.is_none() {
                allowance.logged_at = Some(now);
                allowance.unlogged = 0;
                tracing::warn!(
                    %source,
                    "too many failed authentications: refusing this address's certificate requests before checking their token, one try per {} from now on",
                    humantime::format_duration(REFILL)
                );
            }
            return Err(braked);
        }
        allowance.tokens -= 1.0;
        Ok(Attempt {
            brake: self,
            source,
            failed: false,
        })
    }

    fn give_back(&self, source: IpAddr, now: Instant) {
        let mut sources = self.lock();
        if let Some(allowance) = sources.get_mut(&source) {
            allowance.refill(now);
            allowance.tokens = (allowance.tokens + 1.0).min(f64::from(BURST));
            if allowance.recovered(now) {
                sources.remove(&source);
            }
        }
    }

    /// Logs what is due, forgets recovered sources and updates the gauge, every second until
    /// `stop`.
    pub fn keep_swept(self: &Arc<Self>, stop: CancellationToken) {
        let brake = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(SWEEP_EVERY);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = ticker.tick() => brake.sweep(Instant::now()),
                }
            }
        });
    }

    /// One line per source whose refusals are due to be logged: every [`LOG_INTERVAL`] while it
    /// keeps trying, and once it has been quiet for a sweep.
    pub fn sweep(&self, now: Instant) {
        let mut sources = self.lock();
        let mut braked = 0;
        sources.retain(|source, allowance| {
            if allowance.unlogged > 0 {
                let logged_at = allowance.logged_at.unwrap_or(now);
                let quiet = allowance
                    .last_refused
                    .is_none_or(|at| now.saturating_duration_since(at) >= SWEEP_EVERY);
                if quiet || now.saturating_duration_since(logged_at) >= LOG_INTERVAL {
                    let n = allowance.unlogged;
                    tracing::warn!(
                        %source,
                        refused = n,
                        "refused {n} certificate requests from this address in the last {}: too many failed authentications",
                        humantime::format_duration(seconds(now.saturating_duration_since(logged_at)))
                    );
                    allowance.unlogged = 0;
                    allowance.logged_at = Some(now);
                }
            }
            let recovered = allowance.recovered(now);
            if allowance.logged_at.is_some() && !recovered {
                braked += 1;
            }
            !recovered
        });
        self.braked_gauge.set(braked);
    }

    /// Sources tracked now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// Frees one slot in a full table: every recovered source goes, or else the one idle longest.
fn make_room(sources: &mut HashMap<IpAddr, Allowance>, now: Instant) {
    sources.retain(|_, allowance| !allowance.recovered(now));
    if sources.len() < MAX_SOURCES {
        return;
    }
    let idlest = sources
        .iter()
        .min_by_key(|(_, allowance)| allowance.updated)
        .map(|(source, _)| *source);
    if let Some(source) = idlest {
        sources.remove(&source);
    }
}

/// Whole seconds, at least one, for log lines.
fn seconds(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs().max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    fn brake() -> Arc<Brake> {
        Brake::new(IntGauge::new("braked", "test").unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn a_source_is_braked_after_its_burst_and_refills_one_try_per_interval() {
        let brake = brake();
        for _ in 0..BURST {
            brake.admit(ip(1)).unwrap().failed();
        }
        let braked = brake.admit(ip(1)).err().expect("braked");
        assert_eq!(braked.retry_after, REFILL);
        // Another source is not affected.
        drop(brake.admit(ip(2)).unwrap());
        tokio::time::advance(REFILL / 2).await;
        assert_eq!(brake.admit(ip(1)).err().unwrap().retry_after, REFILL / 2);
        tokio::time::advance(REFILL / 2).await;
        brake.admit(ip(1)).unwrap().failed();
        assert!(brake.admit(ip(1)).is_err());
        brake.sweep(Instant::now());
        assert_eq!(brake.braked_gauge.get(), 1);
        // Quiet for a whole allowance's refill: recovered, forgotten, no longer braked.
        tokio::time::advance(REFILL * BURST).await;
        brake.sweep(Instant::now());
        assert_eq!(brake.braked_gauge.get(), 0);
        assert!(brake.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn successes_give_their_unit_back_and_are_not_remembered() {
        let brake = brake();
        for _ in 0..3 * BURST {
            drop(brake.admit(ip(1)).unwrap());
        }
        assert!(brake.is_empty());
        // Attempts in flight hold their unit: concurrent guesses are braked too.
        let in_flight: Vec<_> = (0..BURST).map(|_| brake.admit(ip(1)).unwrap()).collect();
        assert!(brake.admit(ip(1)).is_err());
        drop(in_flight);
        assert!(brake.admit(ip(1)).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn the_table_is_bounded_and_recovered_sources_are_forgotten() {
        let brake = brake();
        for i in 0..MAX_SOURCES + 5 {
            let source = IpAddr::from(std::net::Ipv6Addr::from(i as u128));
            brake.admit(source).unwrap().failed();
        }
        assert_eq!(brake.len(), MAX_SOURCES);
        tokio::time::advance(REFILL).await;
        brake.sweep(Instant::now());
        assert!(
            brake.is_empty(),
            "each had one failure, refilled after {REFILL:?}"
        );
    }
}

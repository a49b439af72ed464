//! Choosing an endpoint for each request: power of two choices over a peak-EWMA latency.
//!
//! Round robin sends a slow endpoint its full share. Instead each endpoint keeps a moving average
//! of its response latency that jumps up at once when a slow response arrives and decays back
//! over about [`DECAY`] ("peak" EWMA), multiplied by the requests it has in flight. Failures are
//! not the balancer's business: an endpoint that keeps failing is ejected by its circuit breaker
//! ([`crate::resilience::breaker`]), which also finds out when it has recovered. (A balancer
//! penalty for failures would eject an endpoint for a minute without ever probing it.) Comparing
//! the cost of two endpoints picked at random (rather than all of them) is as good in practice
//! and keeps a herd of proxies from piling onto the single best endpoint at once.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How quickly a latency spike is forgotten.
const DECAY: Duration = Duration::from_secs(10);
/// What a new endpoint is assumed to cost until it has answered: little, so that it is tried.
const INITIAL_LATENCY: Duration = Duration::from_millis(1);

/// One endpoint's load, shared by every request to it (and kept across discovery updates).
#[derive(Debug)]
pub struct Load {
    in_flight: AtomicU32,
    latency: Mutex<Ewma>,
}

#[derive(Debug, Clone, Copy)]
struct Ewma {
    nanos: f64,
    at: Instant,
}

impl Default for Load {
    fn default() -> Self {
        Self {
            in_flight: AtomicU32::new(0),
            latency: Mutex::new(Ewma {
                nanos: INITIAL_LATENCY.as_nanos() as f64,
                at: Instant::now(),
            }),
        }
    }
}

impl Load {
    /// The cost of sending one more request here now.
    pub fn cost(&self, now: Instant) -> f64 {
        let latency = self.latency().decayed(now, 0.0);
        latency * f64::from(self.in_flight.load(Ordering::Relaxed) + 1)
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The moving average of latency now, in milliseconds (for the admin endpoint).
    pub fn latency_ms(&self, now: Instant) -> f64 {
        self.latency().decayed(now, 0.0) / 1e6
    }

    /// Counts a request as in flight until the returned guard is dropped.
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            load: self,
            started: Instant::now(),
        }
    }

    fn record(&self, sample: Duration, now: Instant) {
        let sample = sample.as_nanos() as f64;
        let mut latency = self
            .latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let decayed = latency.decayed(now, sample);
        *latency = Ewma {
            nanos: decayed.max(sample),
            at: now,
        };
    }

    fn latency(&self) -> Ewma {
        *self
            .latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Ewma {
    /// The average moved toward `toward` for the time since the last sample.
    fn decayed(&self, now: Instant, toward: f64) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        let keep = (-elapsed / DECAY.as_secs_f64()).exp();
        self.nanos * keep + toward * (1.0 - keep)
    }
}

/// A request in flight to an endpoint; [`InFlight::finished`] records its latency (dropping it
/// without that records nothing, as for a request cancelled by its caller).
pub struct InFlight<'a> {
    load: &'a Load,
    started: Instant,
}

impl InFlight<'_> {
    pub fn finished(self) {
        let now = Instant::now();
        self.load.record(now - self.started, now);
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.load.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The index of the endpoint to use among `loads`: the cheaper of two picked at random.
#[cfg(test)]
fn pick_index(loads: &[Load]) -> Option<usize> {
    pick_where(loads, |l| l, |_| true)
}

/// The index of the item to use among those of `items` that pass `keep`: the cheaper of two
/// picked at random. No allocation: the survivors are counted, and two of them found by rank.
pub fn pick_where<T>(
    items: &[T],
    load: impl Fn(&T) -> &Load,
    keep: impl Fn(&T) -> bool,
) -> Option<usize> {
    let n = items.iter().filter(|item| keep(item)).count();
    let nth = |rank: usize| {
        items
            .iter()
            .enumerate()
            .filter(|(_, item)| keep(item))
            .nth(rank)
            .map(|(i, _)| i)
    };
    match n {
        0 => None,
        1 => nth(0),
        _ => {
            let a = fastrand::usize(..n);
            let b = (a + 1 + fastrand::usize(..n - 1)) % n;
            let (a, b) = (nth(a)?, nth(b)?);
            let now = Instant::now();
            Some(if load(&items[a]).cost(now) <= load(&items[b]).cost(now) {
                a
            } else {
                b
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picks(loads: &[Load], rounds: usize) -> Vec<usize> {
        let mut counts = vec![0; loads.len()];
        for _ in 0..rounds {
            counts[pick_index(loads).unwrap()] += 1;
        }
        counts
    }

    #[test]
    fn spreads_concurrent_requests_over_equal_endpoints() {
        let loads = [Load::default(), Load::default(), Load::default()];
        let mut counts = [0; 3];
        let mut in_flight = std::collections::VecDeque::new();
        for _ in 0..3000 {
            let i = pick_index(&loads).unwrap();
            counts[i] += 1;
            in_flight.push_back(loads[i].start());
            if in_flight.len() > 8 {
                in_flight.pop_front().unwrap().finished();
            }
        }
        assert!(counts.iter().all(|&c| c > 600), "{counts:?}");
    }

    #[test]
    fn prefers_the_endpoint_with_fewer_requests_in_flight() {
        let loads = [Load::default(), Load::default()];
        let _busy: Vec<_> = (0..3).map(|_| loads[0].start()).collect();
        assert_eq!(picks(&loads, 100), [0, 100]);
        drop(_busy);
        assert!(picks(&loads, 1000)[0] > 300);
    }

    #[test]
    fn a_latency_spike_decays() {
        let load = Load::default();
        let start = Instant::now();
        load.record(Duration::from_secs(1), start);
        let spike = load.cost(start);
        let later = load.cost(start + DECAY * 3);
        assert!(spike > 0.99e9, "{spike}");
        assert!(later < spike * 0.06, "{later}");
    }

    #[test]
    fn picks_only_among_the_kept() {
        let loads = [Load::default(), Load::default(), Load::default()];
        for _ in 0..100 {
            assert_eq!(
                pick_where(&loads, |l| l, |l| !std::ptr::eq(l, &loads[1])).map(|i| i != 1),
                Some(true)
            );
        }
        assert_eq!(pick_where(&loads, |l| l, |_| false), None);
    }

    #[test]
    fn none_without_endpoints() {
        assert_eq!(pick_index(&[]), None);
        assert_eq!(pick_index(&[Load::default()]), Some(0));
    }
}

//! Rate limits on the server side: one bucket for the whole sidecar, one per caller identity
//! (unauthenticated callers share one), and a bucket of its own size for callers an override
//! names — the shape of Linkerd's `HTTPLocalRateLimitPolicy`. Limits are local: each sidecar
//! (each replica of the service) counts its own requests.
//!
//! Each bucket is a GCRA (generic cell rate algorithm): instead of a token count refilled by a
//! timer it keeps one instant, the *theoretical arrival time* (TAT) at which the bucket would be
//! full again. A request is admitted when pushing the TAT one interval (`1/rps`) further keeps
//! it within `burst` intervals of now. That is one number per bucket and no background work,
//! and a bucket whose TAT has passed is exactly a fresh one — which is what makes the
//! per-identity map cheap to bound: idle buckets can be forgotten without changing any answer.
//!
//! A request must fit every bucket it is counted in (its identity's and the total); it is
//! checked against all of them before any is charged, so a refused request uses no tokens.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus::IntGauge;
use tokio::time::Instant;
use weft_api::policy as proto;

use super::identity_pattern::IdentityPattern;

/// Per-identity buckets kept at most (per service port). Past it, idle buckets are forgotten
/// first (no answer changes), then the fullest ones (their callers get a fresh bucket early).
pub const MAX_IDENTITY_BUCKETS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    rps: u32,
    /// Time between two requests at the sustained rate.
    interval: Duration,
    burst: u32,
}

impl Rate {
    fn from_proto(bucket: proto::Bucket) -> Self {
        let rps = bucket.rps.max(1);
        Self {
            rps,
            interval: Duration::from_secs(1) / rps,
            burst: bucket.burst.max(1),
        }
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({"rps": self.rps, "burst": self.burst})
    }

    fn tolerance(&self) -> Duration {
        self.interval * self.burst
    }
}

/// The configured limits, compared to decide whether a policy edit keeps the buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    total: Option<Rate>,
    per_identity: Option<Rate>,
    overrides: Vec<(IdentityPattern, Rate)>,
}

impl Limits {
    pub fn from_proto(limit: proto::RateLimit) -> Self {
        Self {
            total: limit.total.map(Rate::from_proto),
            per_identity: limit.per_identity.map(Rate::from_proto),
            overrides: limit
                .overrides
                .into_iter()
                .filter_map(|o| {
                    Some((IdentityPattern::parse(&o.from), Rate::from_proto(o.bucket?)))
                })
                .collect(),
        }
    }

    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "total": self.total.as_ref().map(Rate::describe),
            "per_identity": self.per_identity.as_ref().map(Rate::describe),
            "overrides": self.overrides.iter().map(|(pattern, rate)| {
                let mut rate = rate.describe();
                rate["from"] = super::pattern_text(pattern).into();
                rate
            }).collect::<Vec<_>>(),
        })
    }

    /// The per-caller rate of `caller`: an override's, or `per_identity`.
    fn rate_of(&self, caller: Option<&str>) -> Option<(Rate, &'static str)> {
        let overridden = caller.and_then(|id| self.overrides.iter().find(|(p, _)| p.matches(id)));
        match overridden {
            Some((_, rate)) => Some((*rate, "override")),
            None => self.per_identity.map(|rate| (rate, "identity")),
        }
    }
}

/// Why a request was refused and when it would fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// `total`, `identity` or `override`: the bucket that was full.
    pub limit: &'static str,
    pub retry_after: Duration,
}

#[derive(Debug)]
pub struct RateLimiter {
    pub limits: Limits,
    state: Mutex<State>,
    buckets_gauge: IntGauge,
}

#[derive(Debug)]
struct State {
    total: Instant,
    /// The one bucket every unauthenticated caller shares.
    unauthenticated: Instant,
    /// By caller identity (the bounded map).
    callers: HashMap<String, Instant>,
}

impl RateLimiter {
    pub fn new(limits: Limits, buckets_gauge: IntGauge) -> Self {
        Self {
            limits,
            state: Mutex::new(State {
                total: Instant::now(),
                unauthenticated: Instant::now(),
                callers: HashMap::new(),
            }),
            buckets_gauge,
        }
    }

    /// Admits and charges a request of `caller`, or says which bucket is full.
    pub fn check(&self, caller: Option<&str>, now: Instant) -> Result<(), Limited> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let total = match self.limits.total {
            Some(rate) => Some(fit(state.total, now, rate).map_err(|retry_after| Limited {
                limit: "total",
                retry_after,
            })?),
            None => None,
        };
        let per_caller = match self.limits.rate_of(caller) {
            Some((rate, limit)) => {
                let tat = match caller {
                    None => state.unauthenticated,
                    Some(id) => state.callers.get(id).copied().unwrap_or(now),
                };
                Some(fit(tat, now, rate).map_err(|retry_after| Limited { limit, retry_after })?)
            }
            None => None,
        };
        if let Some(next) = total {
            state.total = next;
        }
        if let Some(next) = per_caller {
            self.charge(&mut state, caller, next, now);
        }
        Ok(())
    }

    /// Moves `caller`'s bucket to `next`, creating it (within the bound) if it is new.
    fn charge(&self, state: &mut State, caller: Option<&str>, next: Instant, now: Instant) {
        let Some(id) = caller else {
            state.unauthenticated = next;
            return;
        };
        if let Some(tat) = state.callers.get_mut(id) {
            *tat = next;
            return;
        }
        if state.callers.len() >= MAX_IDENTITY_BUCKETS {
            self.make_room(state, now);
        }
        state.callers.insert(id.to_owned(), next);
        self.buckets_gauge.inc();
    }

    /// Forgets every idle bucket (its TAT has passed: it is as good as new), and if none is
    /// idle, the one closest to full.
    fn make_room(&self, state: &mut State, now: Instant) {
        let before = state.callers.len();
        state.callers.retain(|_, tat| *tat > now);
        if state.callers.len() >= MAX_IDENTITY_BUCKETS
            && let Some(fullest) = state
                .callers
                .iter()
                .min_by_key(|(_, tat)| **tat)
                .map(|(k, _)| k.clone())
        {
            state.callers.remove(&fullest);
        }
        self.buckets_gauge
            .sub(before as i64 - state.callers.len() as i64);
    }

    pub fn buckets(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .callers
            .len()
    }
}

impl Drop for RateLimiter {
    fn drop(&mut self) {
        self.buckets_gauge.sub(self.buckets() as i64);
    }
}

/// The bucket's next TAT if one more request fits, or how long until it would.
fn fit(tat: Instant, now: Instant, rate: Rate) -> Result<Instant, Duration> {
    let next = tat.max(now) + rate.interval;
    let ahead = next - now;
    match ahead <= rate.tolerance() {
        true => Ok(next),
        false => Err(ahead - rate.tolerance()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(total: Option<(u32, u32)>, per: Option<(u32, u32)>) -> RateLimiter {
        let bucket = |(rps, burst)| proto::Bucket { rps, burst };
        RateLimiter::new(
            Limits::from_proto(proto::RateLimit {
                total: total.map(bucket),
                per_identity: per.map(bucket),
                overrides: vec![proto::IdentityBucket {
                    from: "spiffe://td/ns/batch/*".into(),
                    bucket: Some(bucket((100, 100))),
                }],
            }),
            IntGauge::new("buckets", "test").unwrap(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_the_sustained_rate() {
        let limiter = limiter(None, Some((10, 5)));
        let a = Some("spiffe://td/ns/web/sa/a");
        let now = Instant::now();
        for _ in 0..5 {
            assert_eq!(limiter.check(a, now), Ok(()));
        }
        let refused = limiter.check(a, now).unwrap_err();
        assert_eq!(refused.limit, "identity");
        assert_eq!(refused.retry_after, Duration::from_millis(100));
        // Another caller has its own bucket; unauthenticated callers share one.
        assert_eq!(limiter.check(Some("spiffe://td/ns/web/sa/b"), now), Ok(()));
        for _ in 0..5 {
            assert_eq!(limiter.check(None, now), Ok(()));
        }
        assert!(limiter.check(None, now).is_err());
        // 10 per second again after the burst: one every 100 ms.
        assert_eq!(limiter.check(a, now + Duration::from_millis(100)), Ok(()));
        assert!(limiter.check(a, now + Duration::from_millis(150)).is_err());
        // An override's callers get their own, larger bucket.
        for _ in 0..50 {
            assert_eq!(
                limiter.check(Some("spiffe://td/ns/batch/sa/recon"), now),
                Ok(())
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_request_charges_no_bucket() {
        let limiter = limiter(Some((1, 2)), Some((1, 1)));
        let now = Instant::now();
        let (a, b) = (Some("spiffe://td/ns/x/sa/a"), Some("spiffe://td/ns/x/sa/b"));
        assert_eq!(limiter.check(a, now), Ok(()));
        // a's own bucket is full: refused, and the total keeps its second token for b.
        assert_eq!(limiter.check(a, now).unwrap_err().limit, "identity");
        assert_eq!(limiter.check(b, now), Ok(()));
        let c = Some("spiffe://td/ns/x/sa/c");
        assert_eq!(limiter.check(c, now).unwrap_err().limit, "total");
        // c was refused by the total before its own bucket was charged.
        assert_eq!(limiter.check(c, now + Duration::from_secs(1)), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_identities_keeps_the_map_bounded() {
        let limiter = limiter(None, Some((1, 1)));
        let now = Instant::now();
        for i in 0..MAX_IDENTITY_BUCKETS + 500 {
            let id = format!("spiffe://td/ns/flood/sa/a{i}");
            assert_eq!(limiter.check(Some(&id), now), Ok(()));
        }
        assert_eq!(limiter.buckets(), MAX_IDENTITY_BUCKETS);
        assert_eq!(limiter.buckets_gauge.get(), MAX_IDENTITY_BUCKETS as i64);
        // Once they are idle, one sweep forgets them all.
        let later = now + Duration::from_secs(2);
        for i in 0..MAX_IDENTITY_BUCKETS {
            let id = format!("spiffe://td/ns/second/sa/b{i}");
            assert_eq!(limiter.check(Some(&id), later), Ok(()));
        }
        assert_eq!(limiter.buckets(), MAX_IDENTITY_BUCKETS);
        drop(limiter);
    }
}

//! Fault drills: abort or delay a share of a route's requests, optionally only for some callers,
//! until a fixed time. The expiry is checked here, on every request, against this machine's
//! clock: a forgotten drill stops by itself even when the control plane is away.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;
use weft_api::policy as proto;

use super::identity_pattern::{IdentityPattern, any_matches};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Empty: every route.
    pub routes: Vec<String>,
    /// Empty: every caller.
    pub from: Vec<IdentityPattern>,
    pub abort: Option<(Abort, u32)>,
    pub delay: Option<(Duration, u32)>,
    pub until: SystemTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abort {
    Http(StatusCode),
    /// A gRPC status code (never 0).
    Grpc(u32),
}

/// What to do to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Injection {
    pub delay: Option<Duration>,
    pub abort: Option<Abort>,
}

impl Fault {
    pub fn from_proto(f: proto::Fault) -> Self {
        let abort = match (f.abort_status, f.abort_grpc) {
            (0, 0) => None,
            (0, code) => Some(Abort::Grpc(code)),
            (status, _) => Some(Abort::Http(
                u16::try_from(status)
                    .ok()
                    .and_then(|s| StatusCode::from_u16(s).ok())
                    .unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            )),
        };
        Self {
            routes: f.routes,
            from: f.from.iter().map(|p| IdentityPattern::parse(p)).collect(),
            abort: abort.map(|a| (a, f.abort_percent.min(100))),
            delay: (f.delay_ms > 0)
                .then(|| (Duration::from_millis(f.delay_ms), f.delay_percent.min(100))),
            until: UNIX_EPOCH + Duration::from_millis(u64::try_from(f.until_unix_ms).unwrap_or(0)),
        }
    }

    pub fn active(&self, now: SystemTime) -> bool {
        now < self.until
    }

    fn applies(&self, route: &str, caller: Option<&str>, now: SystemTime) -> bool {
        self.active(now)
            && (self.routes.is_empty() || self.routes.iter().any(|r| r == route))
            && (self.from.is_empty() || caller.is_some_and(|c| any_matches(&self.from, c)))
    }
}

/// What the faults do to a request of `route` from `caller`. `roll()` draws a number in
/// [0, 100) for each percentage (the first fault that applies decides each of abort and delay).
pub fn inject(
    faults: &[Fault],
    route: &str,
    caller: Option<&str>,
    now: SystemTime,
    mut roll: impl FnMut() -> u32,
) -> Injection {
    let mut injection = Injection::default();
    for fault in faults.iter().filter(|f| f.applies(route, caller, now)) {
        if injection.delay.is_none()
            && let Some((delay, percent)) = fault.delay
            && roll() < percent
        {
            injection.delay = Some(delay);
        }
        if injection.abort.is_none()
            && let Some((abort, percent)) = fault.abort
            && roll() < percent
        {
            injection.abort = Some(abort);
        }
    }
    injection
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(until: SystemTime) -> Fault {
        Fault::from_proto(proto::Fault {
            routes: vec!["read".into()],
            from: vec!["spiffe://td/ns/web/*".into()],
            abort_status: 503,
            abort_grpc: 0,
            abort_percent: 50,
            delay_ms: 200,
            delay_percent: 100,
            until_unix_ms: until.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64,
        })
    }

    #[test]
    fn applies_to_its_routes_and_callers_until_it_expires() {
        let now = SystemTime::now();
        let faults = [fault(now + Duration::from_secs(60))];
        let web = Some("spiffe://td/ns/web/sa/a");
        let hit = inject(&faults, "read", web, now, || 0);
        assert_eq!(
            hit.abort,
            Some(Abort::Http(StatusCode::SERVICE_UNAVAILABLE))
        );
        assert_eq!(hit.delay, Some(Duration::from_millis(200)));
        // The roll decides the share: 50 is not below 50 percent.
        assert_eq!(inject(&faults, "read", web, now, || 50).abort, None);
        assert_eq!(
            inject(&faults, "write", web, now, || 0),
            Injection::default()
        );
        assert_eq!(
            inject(&faults, "read", None, now, || 0),
            Injection::default()
        );
        let other = Some("spiffe://td/ns/ops/sa/a");
        assert_eq!(
            inject(&faults, "read", other, now, || 0),
            Injection::default()
        );
        let later = now + Duration::from_secs(61);
        assert_eq!(
            inject(&faults, "read", web, later, || 0),
            Injection::default()
        );
    }
}

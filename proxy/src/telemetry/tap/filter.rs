//! What a tap session asks to see: `GET /tap?direction=…&from=…&to=…&path=…&method=…&status=…
//! &rate=…`, every parameter optional, all of them combined with AND. A query the sidecar cannot
//! read is refused with a message naming the parameter, rather than tapping more than was asked.

use super::event::TapEvent;
use super::rate::{DEFAULT_RATE, MAX_RATE};
use crate::telemetry::metrics::connections::Direction;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapFilter {
    pub direction: Option<Direction>,
    /// The source identity, exactly, or a prefix when it ends in `*`.
    pub from: Option<Pattern>,
    /// The destination identity (exactly or by prefix), or the service `name.namespace`.
    pub to: Option<Pattern>,
    /// A path prefix.
    pub path: Option<String>,
    pub method: Option<String>,
    pub status: Option<StatusFilter>,
    /// Events per second, at most [`MAX_RATE`].
    pub rate: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Exact(String),
    Prefix(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// One status code.
    Code(u16),
    /// A class: 5 for `5xx`.
    Class(u16),
}

impl Default for TapFilter {
    fn default() -> Self {
        Self {
            direction: None,
            from: None,
            to: None,
            path: None,
            method: None,
            status: None,
            rate: DEFAULT_RATE,
        }
    }
}

impl TapFilter {
    /// Reads a query string (without its `?`).
    pub fn parse(query: &str) -> Result<Self, String> {
        let mut filter = Self::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(raw).map_err(|e| format!("{name}: {e}"))?;
            let empty = || format!("{name}: empty value");
            if value.is_empty() {
                return Err(empty());
            }
            match name {
                "direction" => {
                    filter.direction = Some(match value.as_str() {
                        "inbound" => Direction::Inbound,
                        "outbound" => Direction::Outbound,
                        other => {
                            return Err(format!(
                                "direction: {other:?} is neither inbound nor outbound"
                            ));
                        }
                    });
                }
                "from" => filter.from = Some(Pattern::of(value)),
                "to" => filter.to = Some(Pattern::of(value)),
                "path" if value.starts_with('/') => filter.path = Some(value),
                "path" => return Err(format!("path: {value:?} does not start with /")),
                "method" if value.bytes().all(|b| b.is_ascii_alphabetic()) => {
                    filter.method = Some(value.to_ascii_uppercase());
                }
                "method" => return Err(format!("method: {value:?} is not an HTTP method")),
                "status" => filter.status = Some(StatusFilter::parse(&value)?),
                "rate" => {
                    let rate: u32 = value
                        .parse()
                        .ok()
                        .filter(|r| *r > 0)
                        .ok_or_else(|| format!("rate: {value:?} is not a positive integer"))?;
                    filter.rate = rate.min(MAX_RATE);
                }
                other => {
                    return Err(format!(
                        "unknown parameter {other:?} (direction, from, to, path, method, status \
                         and rate are known)"
                    ));
                }
            }
        }
        Ok(filter)
    }

    pub fn matches(&self, event: &TapEvent) -> bool {
        self.direction.is_none_or(|d| d == event.direction)
            && self
                .from
                .as_ref()
                .is_none_or(|p| p.matches(event.source.as_deref()))
            && self.to.as_ref().is_none_or(|p| {
                p.matches(event.destination.as_deref())
                    || matches!(p, Pattern::Exact(s) if event.service.as_deref() == Some(s))
            })
            && self
                .path
                .as_ref()
                .is_none_or(|prefix| event.path.starts_with(prefix.as_str()))
            && self.method.as_ref().is_none_or(|m| *m == event.method)
            && self.status.is_none_or(|s| s.matches(event.status))
    }
}

impl Pattern {
    fn of(value: String) -> Self {
        match value.strip_suffix('*') {
            Some(prefix) => Pattern::Prefix(prefix.to_owned()),
            None => Pattern::Exact(value),
        }
    }

    fn matches(&self, value: Option<&str>) -> bool {
        let Some(value) = value else {
            return false;
        };
        match self {
            Pattern::Exact(exact) => value == exact,
            Pattern::Prefix(prefix) => value.starts_with(prefix.as_str()),
        }
    }
}

impl StatusFilter {
    fn parse(value: &str) -> Result<Self, String> {
        let bad = || format!("status: {value:?} is neither a status code nor a class like 5xx");
        match value.to_ascii_lowercase().strip_suffix("xx") {
            Some(class) => match class.parse::<u16>() {
                Ok(c @ 1..=5) => Ok(StatusFilter::Class(c)),
                _ => Err(bad()),
            },
            None => match value.parse::<u16>() {
                Ok(code @ 100..=599) => Ok(StatusFilter::Code(code)),
                _ => Err(bad()),
            },
        }
    }

    fn matches(self, status: Option<u16>) -> bool {
        let Some(status) = status else {
            return false;
        };
        match self {
            StatusFilter::Code(code) => status == code,
            StatusFilter::Class(class) => status / 100 == class,
        }
    }
}

/// Percent-decoding of a query value (`+` is a space, as forms send it).
fn decode(raw: &str) -> Result<String, String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad percent escape at byte {i}"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "not UTF-8 once decoded".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> TapEvent {
        TapEvent {
            time: "2026-12-06T17:00:00.123Z".into(),
            direction: Direction::Outbound,
            method: "GET".into(),
            authority: Some("hello.demo:8080".into()),
            path: "/hello/world".into(),
            status: Some(503),
            grpc_status: None,
            latency_ms: 1.25,
            source: Some("spiffe://cluster.local/ns/demo/sa/client".into()),
            destination: Some("spiffe://cluster.local/ns/demo/sa/hello".into()),
            service: Some("hello.demo".into()),
            route: "default".into(),
            attempts: 1,
            weft_error: None,
            trace_id: None,
            headers: Vec::new(),
        }
    }

    fn matches(query: &str) -> bool {
        TapFilter::parse(query).unwrap().matches(&event())
    }

    #[test]
    fn each_parameter_narrows_and_they_combine_with_and() {
        assert!(matches(""));
        assert!(matches("direction=outbound"));
        assert!(!matches("direction=inbound"));
        assert!(matches(
            "from=spiffe%3A%2F%2Fcluster.local%2Fns%2Fdemo%2Fsa%2Fclient"
        ));
        assert!(matches("from=spiffe://cluster.local/ns/demo/*"));
        assert!(!matches("from=spiffe://cluster.local/ns/prod/*"));
        assert!(matches("to=hello.demo"));
        assert!(matches("to=spiffe://cluster.local/ns/demo/sa/hello"));
        assert!(!matches("to=hello.prod"));
        assert!(matches("path=/hello"));
        assert!(!matches("path=/world"));
        assert!(matches("method=get"));
        assert!(!matches("method=POST"));
        assert!(matches("status=503"));
        assert!(matches("status=5xx"));
        assert!(!matches("status=2xx"));
        assert!(matches(
            "direction=outbound&to=hello.demo&status=5xx&path=/hello"
        ));
        assert!(!matches(
            "direction=outbound&to=hello.demo&status=5xx&path=/x"
        ));
    }

    #[test]
    fn a_request_without_an_answer_matches_no_status() {
        let mut unanswered = event();
        unanswered.status = None;
        assert!(!TapFilter::parse("status=5xx").unwrap().matches(&unanswered));
    }

    #[test]
    fn the_rate_has_a_default_and_a_cap() {
        assert_eq!(TapFilter::parse("").unwrap().rate, DEFAULT_RATE);
        assert_eq!(TapFilter::parse("rate=5").unwrap().rate, 5);
        assert_eq!(TapFilter::parse("rate=999999").unwrap().rate, MAX_RATE);
    }

    #[test]
    fn bad_queries_name_their_parameter() {
        for (query, expected) in [
            ("direction=sideways", "direction: \"sideways\""),
            ("status=7xx", "status: \"7xx\""),
            ("status=42", "status: \"42\""),
            ("rate=0", "rate: \"0\""),
            ("rate=fast", "rate: \"fast\""),
            ("path=hello", "path: \"hello\""),
            ("method=GE%20T", "method: \"GE T\""),
            ("from=%zz", "from: bad percent escape"),
            ("to=", "to: empty value"),
            ("secret=1", "unknown parameter \"secret\""),
        ] {
            let error = TapFilter::parse(query).unwrap_err();
            assert!(error.starts_with(expected), "{query}: {error}");
        }
    }
}

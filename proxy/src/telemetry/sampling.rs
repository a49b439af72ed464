//! Which requests are traced, and the identifiers of this hop's span.
//!
//! Parent-based: a caller that decided is obeyed (a sampled parent is always recorded, an
//! unsampled one never), so every hop of a trace agrees and no trace is exported in pieces. Only
//! a request that arrives without a decision is sampled here, by `--trace-sampling`, from its
//! trace id the way OpenTelemetry's `TraceIdRatioBased` sampler does (so any hop that has to
//! decide for the same trace id decides the same).
//!
//! An unsampled hop still writes a context (flags `00`) into the request it forwards: the hops
//! after it then know the decision instead of sampling the request again, independently.

use http::HeaderMap;

use super::trace_context::{self, Formats, SpanId, TraceId};

#[derive(Debug, Clone, Copy)]
pub struct Sampler {
    /// A trace id whose low 63 bits are below this is sampled.
    threshold: u64,
}

impl Sampler {
    /// `ratio` of the traces started here are recorded (clamped to 0..=1).
    pub fn new(ratio: f64) -> Self {
        let ratio = ratio.clamp(0.0, 1.0);
        let threshold = if ratio >= 1.0 {
            u64::MAX
        } else {
            (ratio * (1u64 << 63) as f64) as u64
        };
        Self { threshold }
    }

    fn samples(&self, trace_id: &TraceId) -> bool {
        let mut low = [0; 8];
        low.copy_from_slice(&trace_id[8..]);
        (u64::from_be_bytes(low) >> 1) < self.threshold
    }

    /// This hop of the request with `headers`.
    pub fn hop(&self, headers: &HeaderMap) -> Hop {
        let incoming = trace_context::extract(headers);
        let (ids, decided, formats) = match incoming {
            Some(found) => (found.ids, found.sampled, found.formats),
            None => (None, None, Formats::default()),
        };
        let (trace_id, parent) = match ids {
            Some((trace, span)) => (trace, Some(span)),
            None => (new_trace_id(), None),
        };
        Hop {
            sampled: decided.unwrap_or_else(|| self.samples(&trace_id)),
            trace_id,
            span_id: new_span_id(),
            parent,
            formats,
        }
    }
}

/// This proxy's span for one request: recorded if `sampled`, propagated either way.
#[derive(Debug, Clone)]
pub struct Hop {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// The caller's span, if the request came with one.
    pub parent: Option<SpanId>,
    pub sampled: bool,
    formats: Formats,
}

impl Hop {
    /// Makes this hop's span the parent of the request's next hop.
    pub fn inject(&self, headers: &mut HeaderMap) {
        trace_context::inject(
            headers,
            self.formats,
            &self.trace_id,
            &self.span_id,
            self.sampled,
        );
    }
}

fn new_trace_id() -> TraceId {
    fastrand::u128(1..).to_be_bytes()
}

fn new_span_id() -> SpanId {
    fastrand::u64(1..).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with_traceparent(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn a_parents_decision_is_kept_whatever_the_ratio() {
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        let sampled = with_traceparent(&format!("00-{trace}-00f067aa0ba902b7-01"));
        let unsampled = with_traceparent(&format!("00-{trace}-00f067aa0ba902b7-00"));
        assert!(Sampler::new(0.0).hop(&sampled).sampled);
        assert!(!Sampler::new(1.0).hop(&unsampled).sampled);
        let hop = Sampler::new(0.0).hop(&sampled);
        assert_eq!(trace_context::hex(&hop.trace_id), trace);
        assert_eq!(
            hop.parent,
            Some([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7])
        );
        assert_ne!(hop.span_id, hop.parent.unwrap());
    }

    #[test]
    fn new_traces_follow_the_ratio() {
        let sampler = Sampler::new(0.25);
        let n = 20_000;
        let sampled = (0..n)
            .filter(|_| sampler.hop(&HeaderMap::new()).sampled)
            .count();
        // Binomial(20000, 0.25): the standard deviation is ~61.
        assert!((4_600..5_400).contains(&sampled), "{sampled} of {n}");
        assert!(!Sampler::new(0.0).hop(&HeaderMap::new()).sampled);
        assert!(Sampler::new(1.0).hop(&HeaderMap::new()).sampled);
    }

    #[test]
    fn the_decision_is_a_function_of_the_trace_id() {
        let sampler = Sampler::new(0.5);
        let low = [0u8; 16];
        let mut high = [0u8; 16];
        high[8] = 0xff;
        assert!(sampler.samples(&low));
        assert!(!sampler.samples(&high));
    }
}

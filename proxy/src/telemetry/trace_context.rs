//! Trace context on the wire: read W3C `traceparent`/`tracestate` and B3 (the multi-header
//! `X-B3-*` form and the single `b3` header) from a request, and write the context of this hop's
//! span back into it, so the next hop's span becomes its child.
//!
//! A request keeps the formats it came with (an app instrumented for Zipkin reads B3, not W3C)
//! and always gets `traceparent` too, so W3C apps further down join the same trace. When both
//! are present W3C wins, as the OpenTelemetry composite propagators order them.
//!
//! Specifications: <https://www.w3.org/TR/trace-context/> and
//! <https://github.com/openzipkin/b3-propagation>.

use http::{HeaderMap, HeaderName, HeaderValue};

pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const B3: HeaderName = HeaderName::from_static("b3");
pub const B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
pub const B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
pub const B3_PARENT_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
pub const B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
pub const B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");

pub type TraceId = [u8; 16];
pub type SpanId = [u8; 8];

/// The context a request arrived with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// `None` for B3's "sampling decision only" form (`b3: 0`): the caller decided, but started
    /// no trace.
    pub ids: Option<(TraceId, SpanId)>,
    /// The caller's decision; `None` when it deferred it (B3 without `X-B3-Sampled`).
    pub sampled: Option<bool>,
    pub formats: Formats,
}

/// Which formats a request carried, to write them all back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Formats {
    pub w3c: bool,
    pub b3_single: bool,
    pub b3_multi: bool,
}

/// Reads the request's trace context; `None` if it has none (or only malformed headers, which
/// the specifications say to ignore).
pub fn extract(headers: &HeaderMap) -> Option<Incoming> {
    // One pass over the names (a request has few headers) instead of four hashed lookups: this
    // runs on every request while tracing is on.
    let mut w3c = None;
    let mut b3 = None;
    let mut b3_multi = false;
    for (name, value) in headers {
        if name == TRACEPARENT {
            w3c.get_or_insert(value);
        } else if name == B3 {
            b3.get_or_insert(value);
        } else if name == B3_TRACE_ID || name == B3_SAMPLED {
            b3_multi = true;
        }
    }
    let formats = Formats {
        w3c: w3c.is_some(),
        b3_single: b3.is_some(),
        b3_multi,
    };
    let found = w3c
        .and_then(|v| parse_traceparent(v.as_bytes()))
        .or_else(|| b3.and_then(|v| parse_b3_single(v.as_bytes())))
        .or_else(|| b3_multi.then(|| parse_b3_multi(headers)).flatten())?;
    Some(Incoming { formats, ..found })
}

/// Writes this hop's span as the parent of the next: `traceparent` always (keeping
/// `tracestate`, which belongs to the vendors that wrote it), and the B3 forms the request came
/// with.
pub fn inject(
    headers: &mut HeaderMap,
    formats: Formats,
    trace_id: &TraceId,
    span_id: &SpanId,
    sampled: bool,
) {
    headers.insert(TRACEPARENT, traceparent(trace_id, span_id, sampled));
    if formats.b3_single {
        let mut value = [0u8; 32 + 1 + 16 + 2];
        write_hex(&mut value[..32], trace_id);
        value[32] = b'-';
        write_hex(&mut value[33..49], span_id);
        value[49] = b'-';
        value[50] = if sampled { b'1' } else { b'0' };
        headers.insert(B3, unique_value(&value));
    }
    if formats.b3_multi {
        // The caller's span is this span's parent; the next hop learns the new pair.
        if let Some(previous) = headers.remove(B3_SPAN_ID) {
            headers.insert(B3_PARENT_SPAN_ID, previous);
        }
        let mut trace = [0u8; 32];
        write_hex(&mut trace, trace_id);
        let mut span = [0u8; 16];
        write_hex(&mut span, span_id);
        headers.insert(B3_TRACE_ID, unique_value(&trace));
        headers.insert(B3_SPAN_ID, unique_value(&span));
        headers.insert(
            B3_SAMPLED,
            HeaderValue::from_static(if sampled { "1" } else { "0" }),
        );
        headers.remove(B3_FLAGS);
    }
}

/// `00-<trace id>-<span id>-<flags>`, written without formatting machinery: it is built for
/// every request while tracing is on, sampled or not.
fn traceparent(trace_id: &TraceId, span_id: &SpanId, sampled: bool) -> HeaderValue {
    let mut value = [0u8; 2 + 1 + 32 + 1 + 16 + 1 + 2];
    value[..3].copy_from_slice(b"00-");
    write_hex(&mut value[3..35], trace_id);
    value[35] = b'-';
    write_hex(&mut value[36..52], span_id);
    value[52..].copy_from_slice(if sampled { b"-01" } else { b"-00" });
    unique_value(&value)
}

/// A header value that differs on every request. Marked sensitive so HTTP/2 never adds it to
/// the HPACK table: indexing a value that never repeats only evicts the ones that do, and the
/// headers that repeat are then encoded in full on every request.
fn unique_value(text: &[u8]) -> HeaderValue {
    // Invariant: hex digits, dashes and flags only, always a valid header value.
    let mut value = HeaderValue::from_bytes(text).unwrap_or_else(|_| HeaderValue::from_static(""));
    value.set_sensitive(true);
    value
}

fn write_hex(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
}

/// `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`; a later version may append fields,
/// which the specification says to ignore.
fn parse_traceparent(value: &[u8]) -> Option<Incoming> {
    let text = value.trim_ascii();
    // Fixed positions: `vv-` trace `-` span `-` flags, 55 bytes in version 00.
    if text.len() < 55 || text[2] != b'-' || text[35] != b'-' || text[52] != b'-' {
        return None;
    }
    let version = &text[..2];
    let known_version = version == b"00";
    let valid_version = version != b"ff" && version.iter().all(u8::is_ascii_hexdigit);
    let valid_length = if known_version {
        text.len() == 55
    } else {
        text.len() == 55 || text[55] == b'-'
    };
    if !valid_version || !valid_length {
        return None;
    }
    let flags = (nibble(text[53])? << 4) | nibble(text[54])?;
    Some(Incoming {
        ids: Some((parse_id(&text[3..35])?, parse_id(&text[36..52])?)),
        sampled: Some(flags & 1 == 1),
        formats: Formats::default(),
    })
}

/// `b3: {TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]]` or just `{SamplingState}`.
fn parse_b3_single(value: &[u8]) -> Option<Incoming> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if let Some(sampled) = sampling_state(text) {
        return Some(Incoming {
            ids: None,
            sampled: Some(sampled),
            formats: Formats::default(),
        });
    }
    let mut parts = text.split('-');
    let trace = parse_b3_trace_id(parts.next()?)?;
    let span = parse_id(parts.next()?)?;
    let sampled = match parts.next() {
        None => None,
        Some(state) => Some(sampling_state(state)?),
    };
    Some(Incoming {
        ids: Some((trace, span)),
        sampled,
        formats: Formats::default(),
    })
}

fn parse_b3_multi(headers: &HeaderMap) -> Option<Incoming> {
    let text = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let debug = text(&B3_FLAGS) == Some("1");
    let sampled = match text(&B3_SAMPLED) {
        _ if debug => Some(true),
        None => None,
        Some(state) => Some(sampling_state(state)?),
    };
    let ids = match (text(&B3_TRACE_ID), text(&B3_SPAN_ID)) {
        (Some(trace), Some(span)) => Some((parse_b3_trace_id(trace)?, parse_id(span)?)),
        _ => None,
    };
    if ids.is_none() && sampled.is_none() {
        return None;
    }
    Some(Incoming {
        ids,
        sampled,
        formats: Formats::default(),
    })
}

/// B3 sampling states: `1`/`d` (debug) record, `0` does not; `true`/`false` from old tracers.
fn sampling_state(text: &str) -> Option<bool> {
    match text {
        "1" | "d" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

/// B3 trace ids are 128 or 64 bits; a 64-bit one is the low half of a 128-bit one.
fn parse_b3_trace_id(text: &str) -> Option<TraceId> {
    if text.len() == 16 {
        let low: SpanId = parse_id(text)?;
        let mut id = [0; 16];
        id[8..].copy_from_slice(&low);
        return Some(id);
    }
    parse_id(text)
}

/// Lower-case (or, leniently, upper-case) hex of exactly `N` bytes, not all zero (an invalid
/// id in both specifications).
fn parse_id<const N: usize>(text: impl AsRef<[u8]>) -> Option<[u8; N]> {
    let bytes = text.as_ref();
    if bytes.len() != N * 2 {
        return None;
    }
    let mut id = [0; N];
    for (out, pair) in id.iter_mut().zip(bytes.chunks_exact(2)) {
        *out = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    (id != [0; N]).then_some(id)
}

fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

pub fn hex(bytes: &[u8]) -> String {
    let mut out = vec![0; bytes.len() * 2];
    write_hex(&mut out, bytes);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn ids(trace: &str, span: &str) -> Option<(TraceId, SpanId)> {
        Some((parse_id(trace).unwrap(), parse_id(span).unwrap()))
    }

    #[test]
    fn reads_w3c() {
        let found = extract(&headers(&[(
            "traceparent",
            &format!("00-{TRACE}-{SPAN}-01"),
        )]))
        .unwrap();
        assert_eq!(found.ids, ids(TRACE, SPAN));
        assert_eq!(found.sampled, Some(true));
        assert!(found.formats.w3c && !found.formats.b3_single);
        let unsampled = extract(&headers(&[(
            "traceparent",
            &format!("00-{TRACE}-{SPAN}-00"),
        )]))
        .unwrap();
        assert_eq!(unsampled.sampled, Some(false));
    }

    #[test]
    fn ignores_malformed_w3c() {
        for bad in [
            format!("00-{TRACE}-{SPAN}"),
            format!("00-{}-{SPAN}-01", "0".repeat(32)),
            format!("00-{TRACE}-{}-01", "0".repeat(16)),
            format!("ff-{TRACE}-{SPAN}-01"),
            format!("00-{TRACE}-{SPAN}-01-extra"),
            format!("00-{}-{SPAN}-01", &TRACE[1..]),
            format!("00-{TRACE}-{SPAN}-zz"),
        ] {
            assert_eq!(extract(&headers(&[("traceparent", &bad)])), None, "{bad}");
        }
        // A future version may add fields.
        let future = format!("01-{TRACE}-{SPAN}-01-more");
        assert!(extract(&headers(&[("traceparent", &future)])).is_some());
    }

    #[test]
    fn reads_b3_single_in_all_its_forms() {
        let full = extract(&headers(&[("b3", &format!("{TRACE}-{SPAN}-1-{SPAN}"))])).unwrap();
        assert_eq!((full.ids, full.sampled), (ids(TRACE, SPAN), Some(true)));
        assert!(full.formats.b3_single);
        let deferred = extract(&headers(&[("b3", &format!("{TRACE}-{SPAN}"))])).unwrap();
        assert_eq!(deferred.sampled, None);
        let only_decision = extract(&headers(&[("b3", "0")])).unwrap();
        assert_eq!(
            (only_decision.ids, only_decision.sampled),
            (None, Some(false))
        );
        let short = extract(&headers(&[("b3", &format!("{SPAN}-{SPAN}-d"))])).unwrap();
        let mut padded = [0u8; 16];
        padded[8..].copy_from_slice(&parse_id::<8>(SPAN).unwrap());
        assert_eq!(short.ids.unwrap().0, padded);
        assert_eq!(short.sampled, Some(true));
    }

    #[test]
    fn reads_b3_multi() {
        let found = extract(&headers(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "0"),
        ]))
        .unwrap();
        assert_eq!((found.ids, found.sampled), (ids(TRACE, SPAN), Some(false)));
        assert!(found.formats.b3_multi);
        let debug = extract(&headers(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-flags", "1"),
        ]))
        .unwrap();
        assert_eq!(debug.sampled, Some(true));
    }

    #[test]
    fn w3c_wins_over_b3() {
        let other = "11111111111111111111111111111111";
        let found = extract(&headers(&[
            ("traceparent", &format!("00-{TRACE}-{SPAN}-01")),
            ("b3", &format!("{other}-{SPAN}-0")),
        ]))
        .unwrap();
        assert_eq!(found.ids, ids(TRACE, SPAN));
        assert!(found.formats.w3c && found.formats.b3_single);
    }

    #[test]
    fn writes_back_every_format_it_read() {
        let mut map = headers(&[
            ("traceparent", &format!("00-{TRACE}-{SPAN}-01")),
            ("tracestate", "vendor=x"),
            ("b3", &format!("{TRACE}-{SPAN}-1")),
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "1"),
        ]);
        let formats = extract(&map).unwrap().formats;
        let trace = parse_id::<16>(TRACE).unwrap();
        let new_span = [1, 2, 3, 4, 5, 6, 7, 8];
        inject(&mut map, formats, &trace, &new_span, true);
        let get = |k: &str| map.get(k).unwrap().to_str().unwrap().to_owned();
        assert_eq!(
            get("traceparent"),
            format!("00-{TRACE}-0102030405060708-01")
        );
        assert_eq!(get("tracestate"), "vendor=x");
        assert_eq!(get("b3"), format!("{TRACE}-0102030405060708-1"));
        assert_eq!(get("x-b3-spanid"), "0102030405060708");
        assert_eq!(get("x-b3-parentspanid"), SPAN);
        assert_eq!(get("x-b3-traceid"), TRACE);
    }

    #[test]
    fn writes_w3c_alone_for_a_new_trace() {
        let mut map = HeaderMap::new();
        inject(&mut map, Formats::default(), &[7; 16], &[9; 8], false);
        assert_eq!(map.len(), 1);
        assert_eq!(
            map.get("traceparent").unwrap(),
            &format!("00-{}-{}-00", "07".repeat(16), "09".repeat(8))
        );
    }
}

//! `weft_proxy::telemetry::trace_context`: W3C `traceparent` and B3 (single `b3` and the
//! `X-B3-*` headers) as a request carries them.
//!
//! The input is one header value per line, given in turn to `traceparent`, `b3`,
//! `x-b3-traceid`, `x-b3-spanid`, `x-b3-sampled` and `x-b3-flags` (lines that are not valid
//! header values are left out). Checks: no panic; after this hop writes its span into the
//! request (`inject`), reading the request again finds exactly that span, the sampling decision
//! and the formats the request came with (plus W3C, always written).

#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use weft_proxy::telemetry::trace_context::{
    B3, B3_FLAGS, B3_SAMPLED, B3_SPAN_ID, B3_TRACE_ID, Formats, TRACEPARENT, extract, inject,
};

const NAMES: [HeaderName; 6] = [
    TRACEPARENT,
    B3,
    B3_TRACE_ID,
    B3_SPAN_ID,
    B3_SAMPLED,
    B3_FLAGS,
];

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for (name, line) in NAMES.iter().zip(data.split(|&b| b == b'\n')) {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(name, value);
        }
    }
    let Some(incoming) = extract(&headers) else {
        return;
    };
    let trace_id = match incoming.ids {
        Some((trace_id, _)) => trace_id,
        None => [0x5a; 16],
    };
    let span_id = [0xa5; 8];
    let sampled = incoming.sampled.unwrap_or(true);
    inject(&mut headers, incoming.formats, &trace_id, &span_id, sampled);
    let again = extract(&headers).expect("the context just written");
    assert_eq!(again.ids, Some((trace_id, span_id)));
    assert_eq!(again.sampled, Some(sampled));
    let expected = Formats {
        w3c: true,
        ..incoming.formats
    };
    assert_eq!(again.formats, expected);
});

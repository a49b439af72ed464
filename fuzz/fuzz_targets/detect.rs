//! `weft_proxy::transport::detect::classify`: what a connection speaks (HTTP/1, HTTP/2's
//! preface, a TLS ClientHello and its ALPN, or opaque TCP), from its first bytes.
//!
//! `detect` decides as soon as `classify` does, on whatever prefix the network delivered, so
//! the decision must not depend on where the bytes were cut. Checks: no panic; once a prefix is
//! decided, every longer prefix and the whole input get the same decision.

#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_proxy::transport::detect::classify;

/// Every prefix up to this length is classified; beyond it, every 64th.
const EVERY_PREFIX_UP_TO: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let whole = classify(data);
    let mut decided = None;
    let cuts =
        (1..data.len().min(EVERY_PREFIX_UP_TO)).chain((EVERY_PREFIX_UP_TO..data.len()).step_by(64));
    for cut in cuts {
        let now = classify(&data[..cut]);
        match (&decided, &now) {
            (None, Some(_)) => decided = Some((cut, now)),
            (Some((at, before)), now) => {
                assert_eq!(before, now, "decided after {at} bytes, changed after {cut}");
            }
            (None, None) => {}
        }
    }
    if let Some((at, before)) = decided {
        assert_eq!(
            before, whole,
            "decided after {at} bytes, changed at the end"
        );
    }
});

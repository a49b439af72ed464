//! `weft_api::duration`: the one duration grammar of every flag and document.
//!
//! Checks: no panic; an accepted text is read back from its canonical spelling (`format_ms`)
//! as the same number of milliseconds; a refusal's suggestion is itself accepted, and differs
//! from the text refused.

#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_api::duration::{format_ms, parse, parse_ms};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_ms(text) {
        Ok(ms) => {
            let canonical = format_ms(ms);
            assert_eq!(parse_ms(&canonical), Ok(ms), "{text:?} → {canonical:?}");
            assert_eq!(parse(text).map(|d| d.as_millis()), Ok(u128::from(ms)));
        }
        Err(error) => {
            let _ = error.to_string();
            if let Some(suggestion) = &error.suggestion {
                assert_ne!(suggestion, text);
                assert!(
                    parse_ms(suggestion).is_ok(),
                    "{text:?}: suggestion {suggestion:?} is refused"
                );
            }
        }
    }
});

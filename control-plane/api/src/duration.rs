//! The one way weft spells a duration, in every flag of `weft-proxy`, `weft-control-plane` and
//! `weft`, and in every duration field of a document: one or more parts, each an integer and a
//! unit, without spaces, fractions or signs, the units from the largest to the smallest, each
//! at most once: `300ms`, `10s`, `2m`, `1h30m`, `365d`.
//!
//! It is the Gateway API's duration (GEP-2257: `1h`, `10m`, `500ms`, compound, no fractions)
//! plus `d` for certificate lifetimes. One grammar means a value that works in a flag works in a
//! document and the other way round; `1.5h` and `10 sec` are refused everywhere, with the
//! spelling that was probably meant (`1.5h`: `did you mean 90m?`).
//!
//! It lives in the contract crate because both the proxy and the control plane read it, and the
//! control plane writes durations for the proxy (the flags of injected and demo proxies).

use std::fmt;
use std::time::Duration;

/// The units, largest first, with their length in milliseconds.
const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// What every refusal says first.
pub const GRAMMAR: &str = "expected a number and a unit (ms, s, m, h, d), like 300ms or 1h30m";

/// A text that is not a duration, with the spelling that was probably meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError {
    /// What to write instead, when the text says it clearly enough (`1.5h` → `90m`).
    pub suggestion: Option<String>,
    /// The whole text was a number: `25ms` or `25s`?
    pub no_unit: Option<String>,
    /// Too long to count in milliseconds.
    pub too_long: bool,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.too_long {
            return write!(f, "too long (at most about 584 million years)");
        }
        f.write_str(GRAMMAR)?;
        if let Some(n) = &self.no_unit {
            write!(f, "; did you mean {n}ms or {n}s?")?;
        } else if let Some(s) = &self.suggestion {
            write!(f, "; did you mean {s}?")?;
        }
        Ok(())
    }
}

impl std::error::Error for DurationError {}

/// Parses a duration (see the module doc).
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    parse_ms(text).map(Duration::from_millis)
}

/// [`parse`], in milliseconds.
pub fn parse_ms(text: &str) -> Result<u64, DurationError> {
    strict(text).map_err(|too_long| DurationError {
        suggestion: if too_long { None } else { lenient(text) },
        no_unit: (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.to_owned()),
        too_long,
    })
}

/// The grammar itself. `Err(true)`: well written, but too long.
fn strict(text: &str) -> Result<u64, bool> {
    if text.is_empty() {
        return Err(false);
    }
    let mut rest = text;
    let mut total: u64 = 0;
    // Index in UNITS of the previous part's unit: the next one must come after it.
    let mut previous: Option<usize> = None;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let letters = rest[digits..]
            .bytes()
            .take_while(u8::is_ascii_alphabetic)
            .count();
        if digits == 0 || letters == 0 {
            return Err(false);
        }
        let unit = &rest[digits..digits + letters];
        let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(false);
        };
        if previous.is_some_and(|p| p >= index) {
            return Err(false);
        }
        previous = Some(index);
        let part = rest[..digits]
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(UNITS[index].1))
            .ok_or(true)?;
        total = total.checked_add(part).ok_or(true)?;
        rest = &rest[digits + letters..];
    }
    Ok(total)
}

/// What a person probably meant by a text the grammar refuses: spaces, fractions, long unit
/// names and any order are read, and the result is written in the grammar.
fn lenient(text: &str) -> Option<String> {
    let mut rest = text.trim();
    let mut total = 0.0_f64;
    let mut parts = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = rest[number_len..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let scale = long_unit(&rest[..unit_len])?;
        rest = rest[unit_len..].trim_start();
        total += number * scale as f64;
        parts += 1;
    }
    let ms = total.round();
    if parts == 0 || (total - ms).abs() > 1e-6 || ms >= u64::MAX as f64 {
        return None;
    }
    let suggestion = format_ms(ms as u64);
    (suggestion != text).then_some(suggestion)
}

/// A unit as people write it out, in milliseconds.
fn long_unit(unit: &str) -> Option<u64> {
    let ms = match unit.to_ascii_lowercase().as_str() {
        "ms" | "msec" | "msecs" | "millis" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        _ => return None,
    };
    Some(ms)
}

/// Milliseconds in the grammar, in the largest unit that counts them exactly: `0s`, `250ms`,
/// `90s`, `1m`, `36h`.
pub fn format_ms(ms: u64) -> String {
    if ms == 0 {
        return "0s".to_owned();
    }
    for (unit, scale) in UNITS {
        if ms.is_multiple_of(scale) {
            return format!("{}{unit}", ms / scale);
        }
    }
    unreachable!("every count of milliseconds is a multiple of 1ms")
}

/// A [`Duration`] in the grammar (below a millisecond is dropped).
pub fn format(duration: Duration) -> String {
    format_ms(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_integers_with_units_largest_first() {
        let cases = [
            ("0s", 0),
            ("300ms", 300),
            ("10s", 10_000),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("1h30m", 5_400_000),
            ("1m30s", 90_000),
            ("1s500ms", 1_500),
            ("365d", 31_536_000_000),
            ("1d2h3m4s5ms", 93_784_005),
        ];
        for (text, ms) in cases {
            assert_eq!(parse_ms(text), Ok(ms), "{text}");
        }
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
    }

    #[test]
    fn refuses_everything_else_and_says_what_was_meant() {
        let cases = [
            ("10 sec", Some("10s")),
            ("1.5h", Some("90m")),
            ("1.5s", Some("1500ms")),
            ("365days", Some("365d")),
            ("30m1h", Some("90m")),
            ("1h1h", Some("2h")),
            ("1m 30s", Some("90s")),
            ("2 minutes", Some("2m")),
            ("10sec", Some("10s")),
            ("0.0001ms", None),
            ("-1s", None),
            ("s", None),
            ("", None),
            ("1x", None),
            ("1h30", None),
            ("+5s", None),
            ("1S", Some("1s")),
        ];
        for (text, meant) in cases {
            let error = parse_ms(text).expect_err(text);
            assert_eq!(error.suggestion.as_deref(), meant, "{text}");
            let message = error.to_string();
            assert!(message.starts_with(GRAMMAR), "{text}: {message}");
        }
        assert_eq!(
            parse_ms("10 sec").unwrap_err().to_string(),
            "expected a number and a unit (ms, s, m, h, d), like 300ms or 1h30m; did you mean 10s?"
        );
        assert_eq!(
            parse_ms("25").unwrap_err().to_string(),
            "expected a number and a unit (ms, s, m, h, d), like 300ms or 1h30m; did you mean 25ms or 25s?"
        );
        assert_eq!(
            parse_ms("99999999999999999999d").unwrap_err().to_string(),
            "too long (at most about 584 million years)"
        );
        assert!(parse_ms("213503982335d").unwrap_err().too_long);
    }

    #[test]
    fn formats_in_the_grammar() {
        for (ms, text) in [
            (0, "0s"),
            (250, "250ms"),
            (1_500, "1500ms"),
            (90_000, "90s"),
            (60_000, "1m"),
            (5_400_000, "90m"),
            (129_600_000, "36h"),
            (31_536_000_000, "365d"),
        ] {
            assert_eq!(format_ms(ms), text);
            assert_eq!(parse_ms(text), Ok(ms));
        }
        assert_eq!(format(Duration::from_micros(1_500_700)), "1500ms");
    }
}

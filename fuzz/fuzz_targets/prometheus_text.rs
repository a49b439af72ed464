//! `weft_cli::prometheus_text`: the reader of a proxy's `GET /metrics` used by `weft demo`,
//! `weft check --proxy` and the tests.
//!
//! Checks: no panic on any text, for any name and labels asked for; every series it returns has
//! the labels asked for; and a series written the simple way (a name and labels without
//! quotes, commas, braces, `=` or whitespace, which is all the reader promises to handle) is
//! read back with the same name, labels and value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_cli::prometheus_text::{Labels, label, label_value, series, split, sum, value};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for line in text.lines().take(16) {
        let (name, labels) = split(line.split(' ').next().unwrap_or_default());
        let wanted: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        for (found, _) in series(text, name, &wanted) {
            for (k, v) in &wanted {
                assert!(found.iter().any(|(fk, fv)| fk == k && fv == v));
            }
        }
        let _ = sum(text, name, &wanted);
        let _ = value(text, name, &wanted);
        for (k, _) in &labels {
            let _ = label(text, name, k);
        }
        written_simply_reads_back(name, &labels, line.len() as f64);
    }
});

/// Writes `name{k="v",…} value` from the plain parts of `name` and `labels` and reads it back.
fn written_simply_reads_back(name: &str, labels: &Labels, number: f64) {
    let plain = |s: &str| {
        !s.is_empty()
            && !s.starts_with('#')
            && !s.contains(|c: char| c.is_whitespace() || "\"{},=".contains(c))
    };
    if !plain(name) {
        return;
    }
    let labels: Labels = labels
        .iter()
        .filter(|(k, v)| plain(k) && plain(v) && label_value(labels, k) == Some(v.as_str()))
        .cloned()
        .collect();
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    let written = if pairs.is_empty() {
        format!("{name} {number}\n")
    } else {
        format!("{name}{{{}}} {number}\n", pairs.join(","))
    };
    let read: Vec<(Labels, f64)> = series(&written, name, &[]).collect();
    assert_eq!(read, [(labels, number)], "{written:?}");
}

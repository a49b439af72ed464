//! The numbers the demo's report reads from the sidecars' `GET /metrics`: whole counts (counters
//! and histogram counts), parsed by [`crate::prometheus_text`].

use std::collections::BTreeMap;

use crate::prometheus_text::{label_value, series};

/// The sum of every series of `name` whose labels include `wanted` (0 when none).
pub fn sum(text: &str, name: &str, wanted: &[(&str, &str)]) -> u64 {
    crate::prometheus_text::sum(text, name, wanted).round() as u64
}

/// The series of `name` matching `wanted`, added up by the value of `label`.
pub fn by_label(
    text: &str,
    name: &str,
    wanted: &[(&str, &str)],
    label: &str,
) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (labels, value) in series(text, name, wanted) {
        let key = label_value(&labels, label).unwrap_or_default().to_owned();
        *out.entry(key).or_default() += value.round() as u64;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_and_groups_matching_series() {
        let text = "# HELP x\nx{d=\"a\",r=\"http_503\"} 3\nx{d=\"a\",r=\"connect_failure\"} 2\nx{d=\"b\",r=\"http_503\"} 7\ny 1\n";
        assert_eq!(sum(text, "x", &[("d", "a")]), 5);
        assert_eq!(sum(text, "y", &[]), 1);
        assert_eq!(sum(text, "z", &[]), 0);
        let by = by_label(text, "x", &[("d", "a")], "r");
        assert_eq!(by.get("http_503"), Some(&3));
        assert_eq!(by.get("connect_failure"), Some(&2));
    }
}

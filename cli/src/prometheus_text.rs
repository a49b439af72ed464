//! Reading Prometheus text (a proxy's `GET /metrics`) the simple way: enough for `weft demo`'s
//! report, `weft check --proxy` and the tests, which read counters, gauges, histogram counts and
//! labels of weft's own metrics. Not a general parser: weft's label values hold no quotes, commas
//! or escapes.

/// A series' labels, in the order written.
pub type Labels = Vec<(String, String)>;

/// Every series of `name` whose labels include all of `wanted`, with its value.
pub fn series<'a>(
    text: &'a str,
    name: &'a str,
    wanted: &'a [(&str, &str)],
) -> impl Iterator<Item = (Labels, f64)> + 'a {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(move |line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (n, labels) = split(series.trim());
            let matches = n == name
                && wanted
                    .iter()
                    .all(|(k, v)| label_value(&labels, k) == Some(*v));
            let value = value.trim().parse::<f64>().ok()?;
            matches.then_some((labels, value))
        })
}

/// The sum of every series of `name` matching `wanted` (0 when none).
pub fn sum(text: &str, name: &str, wanted: &[(&str, &str)]) -> f64 {
    series(text, name, wanted).map(|(_, value)| value).sum()
}

/// The value of the first series of `name` matching `wanted`, if there is one.
pub fn value(text: &str, name: &str, wanted: &[(&str, &str)]) -> Option<f64> {
    series(text, name, wanted).next().map(|(_, value)| value)
}

/// The value of label `label` on the first series of `name` that has it.
pub fn label(text: &str, name: &str, label: &str) -> Option<String> {
    series(text, name, &[]).find_map(|(labels, _)| label_value(&labels, label).map(str::to_owned))
}

/// The value of `label` among `labels`.
pub fn label_value<'a>(labels: &'a Labels, label: &str) -> Option<&'a str> {
    labels
        .iter()
        .find(|(k, _)| k == label)
        .map(|(_, v)| v.as_str())
}

/// `name{a="b",c="d"}` → `("name", [("a","b"), ("c","d")])`.
pub fn split(series: &str) -> (&str, Labels) {
    let Some((name, rest)) = series.split_once('{') else {
        return (series, Vec::new());
    };
    let labels = rest
        .trim_end_matches('}')
        .split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        })
        .collect();
    (name, labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_matching_series_and_splits_labels() {
        let text = "# HELP x\nx{d=\"a\",r=\"http_503\"} 3\nx{d=\"a\",r=\"reset\"} 2.5\nx{d=\"b\"} 7\ny 1\n";
        assert_eq!(sum(text, "x", &[("d", "a")]), 5.5);
        assert_eq!(sum(text, "y", &[]), 1.0);
        assert_eq!(sum(text, "z", &[]), 0.0);
        let (name, labels) = split("x{d=\"a\",r=\"reset\"}");
        assert_eq!(name, "x");
        assert_eq!(
            labels,
            [("d".into(), "a".into()), ("r".into(), "reset".into())]
        );
    }

    #[test]
    fn reads_one_value_or_label_and_says_when_it_is_absent() {
        let text = "# HELP x\nweft_build_info_other 1\nweft_build_info{revision=\"abc\",version=\"0.1.0\"} 1\nweft_identity_certificate_expiry_timestamp_seconds 1780000000\n";
        assert_eq!(
            label(text, "weft_build_info", "version").as_deref(),
            Some("0.1.0")
        );
        assert_eq!(label(text, "weft_build_info", "missing"), None);
        assert_eq!(
            value(
                text,
                "weft_identity_certificate_expiry_timestamp_seconds",
                &[]
            ),
            Some(1.78e9)
        );
        assert_eq!(
            value(text, "weft_build_info", &[("version", "0.1.0")]),
            Some(1.0)
        );
        assert_eq!(value(text, "weft_missing", &[]), None);
    }
}

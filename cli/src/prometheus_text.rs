//! Reading Prometheus text (a proxy's `GET /metrics`) the simple way: enough for `weft demo`'s
//! report and the tests, which read counters, gauges and histogram counts of weft's own metrics.
//! Not a general parser: weft's label values hold no quotes, commas or escapes.

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
                    .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v));
            let value = value.trim().parse::<f64>().ok()?;
            matches.then_some((labels, value))
        })
}

/// The sum of every series of `name` matching `wanted` (0 when none).
pub fn sum(text: &str, name: &str, wanted: &[(&str, &str)]) -> f64 {
    series(text, name, wanted).map(|(_, value)| value).sum()
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
}

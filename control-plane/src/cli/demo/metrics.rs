//! Reading the sidecars' Prometheus text (`GET /metrics`): enough for the demo's report, which
//! reads counters and histogram counts and sums only (whole numbers).

use std::collections::BTreeMap;

/// The sum of every series of `name` whose labels include `wanted` (0 when none).
pub fn sum(text: &str, name: &str, wanted: &[(&str, &str)]) -> u64 {
    series(text, name, wanted).map(|(_, value)| value).sum()
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
        let key = labels
            .iter()
            .find(|(k, _)| k == label)
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        *out.entry(key).or_default() += value;
    }
    out
}

type Labels = Vec<(String, String)>;

fn series<'a>(
    text: &'a str,
    name: &'a str,
    wanted: &'a [(&str, &str)],
) -> impl Iterator<Item = (Labels, u64)> + 'a {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(move |line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (n, labels) = split(series.trim());
            let matches = n == name
                && wanted
                    .iter()
                    .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v));
            let value = value.trim().parse::<f64>().ok()?.round() as u64;
            matches.then_some((labels, value))
        })
}

/// `name{a="b",c="d"}` → `("name", [("a","b"), ("c","d")])` (weft's label values hold no
/// quotes or commas).
fn split(series: &str) -> (&str, Labels) {
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

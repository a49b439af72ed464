//! Series grouped once by the labels a view's rows are keyed on, so building a snapshot reads
//! every series a few times in all rather than once per row: with fifty sidecars of a hundred
//! destinations each, a row-by-row scan would be millions of comparisons per refresh.

use std::collections::HashMap;

use crate::views::golden::{Golden, add_bucket};
use crate::views::window::{Sample, Window};

/// The most labels a group is keyed on.
const MAX_KEY: usize = 3;

/// A group's label values, unused places empty (an array: no allocation per series).
type Key<'a> = [&'a str; MAX_KEY];

fn key<'a>(values: impl IntoIterator<Item = &'a str>) -> Key<'a> {
    let mut key = [""; MAX_KEY];
    for (place, value) in key.iter_mut().zip(values) {
        *place = value;
    }
    key
}

/// Series by the values of some labels (at most [`MAX_KEY`]), in the order the labels were given.
pub struct Grouped<'a> {
    groups: HashMap<Key<'a>, Vec<&'a Sample>>,
}

impl<'a> Grouped<'a> {
    pub fn by(samples: &'a [Sample], labels: &[&str]) -> Self {
        debug_assert!(labels.len() <= MAX_KEY);
        let mut groups: HashMap<Key<'a>, Vec<&'a Sample>> = HashMap::new();
        for sample in samples {
            let values = labels.iter().map(|l| sample.label(l));
            groups.entry(key(values)).or_default().push(sample);
        }
        Self { groups }
    }

    /// The series whose labels have the values `values`.
    pub fn get(&self, values: &[&'a str]) -> &[&'a Sample] {
        self.groups
            .get(&key(values.iter().copied()))
            .map_or(&[], Vec::as_slice)
    }

    /// Their values added up (`0.0` when there are none).
    pub fn sum(&self, values: &[&'a str]) -> f64 {
        self.get(values)
            .iter()
            .fold(0.0, |total, s| total + s.value)
    }
}

/// Requests, and their latency histograms, grouped alike: the golden signals of one group.
/// The histograms of a group are added into one.
pub struct Signals<'a> {
    requests: Grouped<'a>,
    histograms: HashMap<Key<'a>, Vec<(f64, f64)>>,
    seconds: f64,
}

impl<'a> Signals<'a> {
    pub fn by(window: &'a Window, labels: &[&str]) -> Self {
        let mut histograms: HashMap<Key<'a>, Vec<(f64, f64)>> = HashMap::new();
        for series in &window.latency {
            let values = labels.iter().map(|l| series.label(l));
            let histogram = histograms.entry(key(values)).or_default();
            for &(bound, count) in &series.buckets {
                add_bucket(histogram, bound, count);
            }
        }
        Self {
            requests: Grouped::by(&window.requests, labels),
            histograms,
            seconds: window.seconds,
        }
    }

    pub fn of(&self, values: &[&'a str]) -> Golden {
        let histogram = self.histograms.get(&key(values.iter().copied()));
        Golden::of(
            self.requests.get(values).iter().copied(),
            histogram.map_or(&[], Vec::as_slice),
            self.seconds,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_by_label_values_in_order() {
        let sample = |d: &str, r: &str, v: f64| Sample {
            labels: [("direction", d), ("route", r)]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>()
                .into(),
            value: v,
        };
        let samples = [
            sample("in", "a", 1.0),
            sample("in", "a", 2.0),
            sample("out", "a", 4.0),
        ];
        let grouped = Grouped::by(&samples, &["direction", "route"]);
        assert_eq!(grouped.get(&["in", "a"]).len(), 2);
        assert_eq!(grouped.sum(&["in", "a"]), 3.0);
        assert_eq!(grouped.sum(&["out", "b"]), 0.0);
        assert!(grouped.sum(&["none", "x"]).is_sign_positive());
    }
}

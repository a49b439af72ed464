//! The `weft.dev/opaque-ports` annotation: ports whose traffic the proxy must not try to detect.
//!
//! A server-first protocol (MySQL, SMTP) never sends the first bytes detection waits for, so a
//! client on such a port would stall for the detection timeout on every connection. The
//! annotation says "carry this port as TCP from the first byte". Its value is a comma-separated
//! list of ports and inclusive ranges: `"3306, 5432, 9000-9010"`.
//!
//! It can sit on a Pod, a Service or a Namespace. The most specific one present decides, on its
//! own (they override, never merge): pod, then service, then namespace. An annotation present
//! but empty (`""`) is a decision too: nothing is opaque, whatever the wider ones say. The ports
//! are the ones the destination address carries: on a service's virtual address the Service's
//! `port`, on a pod's address the pod's (target) port.

use std::fmt;

/// The annotation's key.
pub const ANNOTATION: &str = "weft.dev/opaque-ports";

/// One parsed annotation value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpaquePorts {
    /// Inclusive ranges; a single port is `(p, p)`.
    ranges: Vec<(u16, u16)>,
}

/// An entry of the annotation that is not a port or a range; the rest of the value still counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEntry(pub String);

impl fmt::Display for BadEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{ANNOTATION}: {:?} is not a port (1-65535) or a range like 9000-9010; ignoring it",
            self.0
        )
    }
}

impl OpaquePorts {
    /// Parses a value, keeping every good entry and returning the bad ones for the caller to log
    /// with the object's name.
    pub fn parse(value: &str) -> (Self, Vec<BadEntry>) {
        let mut ranges = Vec::new();
        let mut bad = Vec::new();
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match parse_entry(entry) {
                Some(range) => ranges.push(range),
                None => bad.push(BadEntry(entry.to_owned())),
            }
        }
        (Self { ranges }, bad)
    }

    pub fn contains(&self, port: u16) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= port && port <= hi)
    }
}

fn parse_entry(entry: &str) -> Option<(u16, u16)> {
    let port = |text: &str| text.trim().parse::<u16>().ok().filter(|p| *p != 0);
    match entry.split_once('-') {
        Some((lo, hi)) => {
            let (lo, hi) = (port(lo)?, port(hi)?);
            (lo <= hi).then_some((lo, hi))
        }
        None => port(entry).map(|p| (p, p)),
    }
}

/// Whether `port` is opaque, given the annotations from most to least specific (pod, service,
/// namespace; `None` where absent): the first present one decides.
pub fn is_opaque(port: u16, annotations: &[Option<&OpaquePorts>]) -> bool {
    annotations
        .iter()
        .find_map(|a| *a)
        .is_some_and(|a| a.contains(port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_ranges_with_spaces_parse_and_bad_entries_are_reported_alone() {
        let (ports, bad) = OpaquePorts::parse(" 3306,5432 , 9000-9010,, http, 0, 20-10");
        for p in [3306, 5432, 9000, 9005, 9010] {
            assert!(ports.contains(p), "{p}");
        }
        for p in [80, 8999, 9011, 10, 20] {
            assert!(!ports.contains(p), "{p}");
        }
        assert_eq!(
            bad,
            vec![
                BadEntry("http".into()),
                BadEntry("0".into()),
                BadEntry("20-10".into())
            ]
        );
        assert_eq!(
            bad[0].to_string(),
            "weft.dev/opaque-ports: \"http\" is not a port (1-65535) or a range like 9000-9010; ignoring it"
        );
    }

    #[test]
    fn the_most_specific_annotation_present_decides_alone() {
        let pod = OpaquePorts::parse("5432").0;
        let service = OpaquePorts::parse("3306").0;
        let empty = OpaquePorts::parse("").0;
        assert!(is_opaque(5432, &[Some(&pod), Some(&service), None]));
        // No merging: the pod's list overrides the service's.
        assert!(!is_opaque(3306, &[Some(&pod), Some(&service), None]));
        assert!(is_opaque(3306, &[None, Some(&service), Some(&pod)]));
        assert!(is_opaque(5432, &[None, None, Some(&pod)]));
        // Present but empty: nothing is opaque here.
        assert!(!is_opaque(3306, &[Some(&empty), Some(&service), None]));
        assert!(!is_opaque(3306, &[None, None, None]));
    }
}

//! The `weft.dev/opaque-ports` annotation: ports whose traffic the proxy must not try to detect.
//!
//! A server-first protocol (MySQL, SMTP) never sends the first bytes detection waits for, so a
//! client on such a port would stall for the detection timeout on every connection. The
//! annotation says "carry this port as TCP from the first byte". Its value is a comma-separated
//! list of ports and inclusive ranges: `"3306, 5432, 9000-9010"`.
//!
//! It can sit on a Pod, a Service or a Namespace. The most specific one present decides, on its
//! own (they override, never merge): pod, then service, then namespace. An annotation present
//! but empty (`""`) is a decision too: nothing is opaque, whatever the wider ones say.
//!
//! Each lists the ports of the object it sits on: a Pod its own ports (container/target ports),
//! a Service its `port`s (what its clients connect to; it decides for the target ports they lead
//! to as well), a Namespace whichever the address carries (it stands in for the annotation of
//! each pod and service in it). So on a service's virtual address: service, else namespace, on
//! the service port. On a pod's address: pod (on the pod port), else service (on the service
//! port leading there), else namespace (on the pod port).

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

/// The annotations that apply to one destination (`None` where absent).
#[derive(Debug, Clone, Copy, Default)]
pub struct Annotations<'a> {
    pub pod: Option<&'a OpaquePorts>,
    pub service: Option<&'a OpaquePorts>,
    pub namespace: Option<&'a OpaquePorts>,
}

impl Annotations<'_> {
    /// On a service's virtual address, for its `service_port`.
    pub fn on_service(&self, service_port: u16) -> bool {
        match (self.service, self.namespace) {
            (Some(service), _) => service.contains(service_port),
            (None, Some(namespace)) => namespace.contains(service_port),
            (None, None) => false,
        }
    }

    /// On a pod's address, for its `pod_port`, which `service_port` of its service leads to.
    pub fn on_pod(&self, pod_port: u16, service_port: u16) -> bool {
        match (self.pod, self.service, self.namespace) {
            (Some(pod), _, _) => pod.contains(pod_port),
            (None, Some(service), _) => service.contains(service_port),
            (None, None, Some(namespace)) => namespace.contains(pod_port),
            (None, None, None) => false,
        }
    }
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
    fn the_most_specific_annotation_present_decides_alone_on_its_own_ports() {
        let p5432 = OpaquePorts::parse("5432").0;
        let p3306 = OpaquePorts::parse("3306").0;
        let empty = OpaquePorts::parse("").0;
        let all = Annotations {
            pod: Some(&p5432),
            service: Some(&p3306),
            namespace: Some(&p3306),
        };
        assert!(all.on_pod(5432, 80));
        // No merging: the pod's list overrides the service's.
        assert!(!all.on_pod(3306, 3306));
        // The pod's annotation does not speak for the service address.
        assert!(!all.on_service(5432));
        assert!(all.on_service(3306));

        // The service's lists service ports, and decides for the pod port they lead to.
        let service = Annotations {
            service: Some(&p3306),
            namespace: Some(&p5432),
            ..Default::default()
        };
        assert!(service.on_pod(13306, 3306));
        assert!(!service.on_pod(5432, 5432));
        assert!(!service.on_service(5432));

        // The namespace's, alone, reads the port the address carries.
        let namespace = Annotations {
            namespace: Some(&p5432),
            ..Default::default()
        };
        assert!(namespace.on_pod(5432, 80));
        assert!(!namespace.on_pod(8080, 5432));
        assert!(namespace.on_service(5432));

        // Present but empty: nothing is opaque here.
        let emptied = Annotations {
            pod: Some(&empty),
            service: Some(&p3306),
            namespace: None,
        };
        assert!(!emptied.on_pod(3306, 3306));
        assert!(!Annotations::default().on_pod(3306, 3306));
    }
}

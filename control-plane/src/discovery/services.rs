//! The services file: `kind: MeshService` documents, checked all the way down before anything
//! is served from them.
//!
//! ```yaml
//! apiVersion: weft.dev/v1alpha1
//! kind: MeshService
//! metadata:
//!   name: hello
//!   namespace: demo
//! spec:
//!   addresses: [10.96.0.10]        # virtual addresses naming the service; optional
//!   ports:
//!     - port: 8080                 # what clients connect to
//!       targetPort: 8080           # the endpoints' port; defaults to port
//!       protocol: http             # detect (default) | http (always parsed)
//!                                  # | opaque (never sniffed)
//!   endpoints:
//!     - address: 10.200.0.2
//!       serviceAccount: hello      # spiffe://<trust-domain>/ns/demo/sa/hello
//!     - address: 10.200.0.3
//!       identity: spiffe://cluster.local/ns/demo/sa/hello
//!     - address: 10.200.0.9
//!       meshed: false              # no sidecar: no identity, no mTLS
//! ```
//!
//! Syntax and type errors stop at the first one (that is what the YAML parser reports); every
//! other mistake is collected over all documents and reported at once, one `file:line: what` per
//! line, so an operator fixes a file in one pass. The check that matters most is that no
//! `ip:port` is claimed twice: a destination that two services claim would be answered by
//! whichever happened to come first, silently sending traffic to the wrong place.
//!
//! A file with no documents (empty, or only comments) is refused: it is most likely caught
//! half-written. `[]` as its only content means no services, on purpose ([`crate::empty_file`]).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt::Display;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use serde::Deserialize;
use serde_saphyr::Spanned;
use weft_certs::SpiffeId;

use crate::empty_file::{self, Contents, EmptyFile};
use crate::yaml;

/// The `kind` of a service document.
pub const KIND: &str = "MeshService";

/// A checked `MeshService`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// `<name>.<namespace>`
    pub name: String,
    /// Virtual addresses; a destination `address:port` for any of `ports` means the whole service.
    pub addresses: Vec<IpAddr>,
    pub ports: Vec<Port>,
    pub endpoints: Vec<ServiceEndpoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port {
    /// The port clients connect to on a service address.
    pub port: u16,
    /// The port the endpoints listen on.
    pub target_port: u16,
    pub protocol: Protocol,
}

/// What a port carries, as declared. It decides what a proxy may do with bytes it cannot parse
/// as HTTP: only an undeclared port may fall back to opaque TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Not declared: HTTP/1 and HTTP/2 detected from the first bytes, anything else (or nothing
    /// in time) carried as opaque TCP. A service with a ServicePolicy is HTTP instead.
    Detect,
    /// HTTP/1 or HTTP/2, always parsed: never spliced to the app as raw bytes.
    Http,
    /// Server-first or not to be sniffed: carried as TCP without waiting for the client.
    Opaque,
}

impl Protocol {
    /// The value of a MeshService port's `protocol` field.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "detect" => Some(Protocol::Detect),
            "http" => Some(Protocol::Http),
            "opaque" => Some(Protocol::Opaque),
            _ => None,
        }
    }
}

impl From<Protocol> for weft_api::discovery::PortProtocol {
    fn from(protocol: Protocol) -> Self {
        match protocol {
            Protocol::Detect => Self::Detect,
            Protocol::Http => Self::Http,
            Protocol::Opaque => Self::Opaque,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEndpoint {
    pub ip: IpAddr,
    /// The identity its sidecar must prove; `None` for an endpoint without a sidecar.
    pub identity: Option<SpiffeId>,
    /// How this endpoint serves each of the service's ports (same order as [`Service::ports`];
    /// `None` in it: not served here), when that differs per endpoint. Kubernetes needs it: a
    /// named target port can be a different number on different pods, and a pod's own
    /// opaque-ports annotation overrides its service's. `None`: every port as declared (a file).
    pub ports: Option<Vec<Option<EndpointPort>>>,
}

/// One endpoint's own target port and protocol for one service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointPort {
    pub target_port: u16,
    pub protocol: Protocol,
}

// The file as written. Every field that can be wrong on its own is `Spanned` so the error can
// point at its line.

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Document {
    api_version: Spanned<String>,
    kind: Spanned<String>,
    metadata: Metadata,
    spec: Spec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    name: Spanned<String>,
    namespace: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    #[serde(default)]
    addresses: Vec<Spanned<String>>,
    ports: Spanned<Vec<PortEntry>>,
    #[serde(default)]
    endpoints: Vec<EndpointEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PortEntry {
    // Read as text so that `80x` gets a message about ports, not about integer syntax.
    port: Spanned<String>,
    target_port: Option<Spanned<String>>,
    protocol: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EndpointEntry {
    address: Spanned<String>,
    service_account: Option<Spanned<String>>,
    identity: Option<Spanned<String>>,
    meshed: Option<Spanned<bool>>,
}

/// Parses and checks a services file. The error lists every problem found, one per line.
pub fn parse(text: &[u8], path: &Path, trust_domain: &str) -> anyhow::Result<Vec<Service>> {
    match empty_file::contents(text) {
        Contents::Documents => {}
        Contents::NoneOnPurpose => return Ok(Vec::new()),
        Contents::Nothing => {
            return Err(EmptyFile {
                file: path.display().to_string(),
            }
            .into());
        }
    }
    let documents: Vec<Document> = yaml::parse_multiple(text, path)?;
    let mut check = Checker {
        path,
        problems: Vec::new(),
    };
    let mut services = Vec::with_capacity(documents.len());
    let mut defined: HashMap<String, u64> = HashMap::new();
    let mut claims: HashMap<SocketAddr, Claim> = HashMap::new();
    for document in documents {
        let Some((service, lines)) = check.document(document, trust_domain) else {
            continue;
        };
        match defined.entry(service.name.clone()) {
            Entry::Occupied(first) => {
                check.problem(
                    lines.name,
                    format!(
                        "service {} is already defined at line {}",
                        service.name,
                        first.get()
                    ),
                );
                continue;
            }
            Entry::Vacant(slot) => {
                slot.insert(lines.name);
            }
        }
        check.claims(&service, &lines, &mut claims);
        services.push(service);
    }
    if check.problems.is_empty() {
        Ok(services)
    } else {
        Err(anyhow::anyhow!(check.problems.join("\n")))
    }
}

/// Where the parts of a checked service were written, for errors that involve several of them.
struct Lines {
    name: u64,
    addresses: Vec<u64>,
    endpoints: Vec<u64>,
}

/// Who answers for an `ip:port`: a service through one of its addresses, or one endpoint.
struct Claim {
    service: String,
    line: u64,
    endpoint: bool,
}

struct Checker<'a> {
    path: &'a Path,
    problems: Vec<String>,
}

impl Checker<'_> {
    fn problem(&mut self, line: u64, what: impl Display) {
        self.problems
            .push(format!("{}:{line}: {what}", self.path.display()));
    }

    /// Checks one document; `None` when it has a problem (already recorded).
    fn document(&mut self, doc: Document, trust_domain: &str) -> Option<(Service, Lines)> {
        let before = self.problems.len();
        if let Err(e) = yaml::check_header(self.path, &doc.api_version, &doc.kind, KIND) {
            // Already `file:line: what`.
            self.problems.push(e.to_string());
        }
        let Metadata { name, namespace } = doc.metadata;
        self.dns_label("name", &name);
        self.dns_label("namespace", &namespace);
        let full_name = format!("{}.{}", name.value, namespace.value);

        let mut addresses = Vec::new();
        let mut address_lines = Vec::new();
        for address in &doc.spec.addresses {
            let line = address.referenced.line();
            let Some(ip) = self.ip(address) else { continue };
            if let Some(i) = addresses.iter().position(|a| *a == ip) {
                self.problem(
                    line,
                    format!(
                        "address {ip} is already listed at line {}",
                        address_lines[i]
                    ),
                );
                continue;
            }
            addresses.push(ip);
            address_lines.push(line);
        }

        let ports = self.ports(&doc.spec.ports);

        let mut endpoints: Vec<ServiceEndpoint> = Vec::new();
        let mut endpoint_lines = Vec::new();
        for entry in &doc.spec.endpoints {
            let line = entry.address.referenced.line();
            let Some(endpoint) = self.endpoint(entry, &namespace.value, trust_domain) else {
                continue;
            };
            if let Some(i) = endpoints.iter().position(|e| e.ip == endpoint.ip) {
                self.problem(
                    line,
                    format!(
                        "endpoint {} is already listed at line {}",
                        endpoint.ip, endpoint_lines[i]
                    ),
                );
                continue;
            }
            endpoints.push(endpoint);
            endpoint_lines.push(line);
        }

        if self.problems.len() > before {
            return None;
        }
        Some((
            Service {
                name: full_name,
                addresses,
                ports,
                endpoints,
            },
            Lines {
                name: name.referenced.line(),
                addresses: address_lines,
                endpoints: endpoint_lines,
            },
        ))
    }

    /// Kubernetes names: lowercase letters, digits and '-', at most 63, alphanumeric at both ends.
    fn dns_label(&mut self, what: &str, value: &Spanned<String>) {
        let text = &value.value;
        let line = value.referenced.line();
        if text.is_empty() {
            self.problem(line, format!("{what} is empty"));
        } else if text.len() > 63 {
            self.problem(
                line,
                format!("{what} \"{text}\" is longer than 63 characters"),
            );
        } else if let Some(c) = text
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            self.problem(
                line,
                format!("{what} \"{text}\" contains '{c}' (use lowercase letters, digits and '-')"),
            );
        } else if text.starts_with('-') || text.ends_with('-') {
            self.problem(
                line,
                format!("{what} \"{text}\" must start and end with a letter or digit"),
            );
        }
    }

    fn ip(&mut self, address: &Spanned<String>) -> Option<IpAddr> {
        match address.value.parse::<IpAddr>() {
            // An IPv4 address written as IPv4-mapped IPv6 is the same destination.
            Ok(ip) => Some(ip.to_canonical()),
            Err(_) => {
                self.problem(
                    address.referenced.line(),
                    format!(
                        "\"{}\" is not an IP address (write 10.96.0.10 or fd00::10, no port)",
                        address.value
                    ),
                );
                None
            }
        }
    }

    fn port_number(&mut self, what: &str, value: &Spanned<String>) -> Option<u16> {
        let line = value.referenced.line();
        let Ok(number) = value.value.parse::<i64>() else {
            self.problem(
                line,
                format!("{what} {:?} is not a port number (1-65535)", value.value),
            );
            return None;
        };
        match u16::try_from(number) {
            Ok(port) if port != 0 => Some(port),
            _ => {
                self.problem(line, format!("{what} {number} is out of range (1-65535)"));
                None
            }
        }
    }

    fn ports(&mut self, entries: &Spanned<Vec<PortEntry>>) -> Vec<Port> {
        if entries.value.is_empty() {
            self.problem(
                entries.referenced.line(),
                "ports is empty: a service needs at least one port",
            );
        }
        let mut ports: Vec<Port> = Vec::new();
        let mut lines: Vec<u64> = Vec::new();
        for entry in &entries.value {
            let line = entry.port.referenced.line();
            let port = self.port_number("port", &entry.port);
            let target_port = match &entry.target_port {
                Some(target) => self.port_number("targetPort", target),
                None => port,
            };
            let protocol = match &entry.protocol {
                None => Some(Protocol::Detect),
                Some(p) => Protocol::parse(&p.value).or_else(|| {
                    self.problem(
                        p.referenced.line(),
                        format!(
                            "unknown protocol \"{}\" (expected detect, http or opaque)",
                            p.value
                        ),
                    );
                    None
                }),
            };
            let (Some(port), Some(target_port), Some(protocol)) = (port, target_port, protocol)
            else {
                continue;
            };
            if let Some(i) = ports.iter().position(|p| p.port == port) {
                self.problem(
                    line,
                    format!("port {port} is already listed at line {}", lines[i]),
                );
                continue;
            }
            // An endpoint's ip:targetPort must mean one protocol, whichever port led there.
            if let Some(i) = ports
                .iter()
                .position(|p| p.target_port == target_port && p.protocol != protocol)
            {
                self.problem(
                    line,
                    format!(
                        "targetPort {target_port} is also the target of the port at line {} with another protocol",
                        lines[i]
                    ),
                );
                continue;
            }
            ports.push(Port {
                port,
                target_port,
                protocol,
            });
            lines.push(line);
        }
        ports
    }

    fn endpoint(
        &mut self,
        entry: &EndpointEntry,
        namespace: &str,
        trust_domain: &str,
    ) -> Option<ServiceEndpoint> {
        let line = entry.address.referenced.line();
        let ip = self.ip(&entry.address);
        let meshed = entry.meshed.as_ref().is_none_or(|m| m.value);
        let identity = match (meshed, &entry.service_account, &entry.identity) {
            (false, None, None) => None,
            (false, Some(given), _) | (false, None, Some(given)) => {
                self.problem(
                    given.referenced.line(),
                    "an endpoint with meshed: false has no identity; remove serviceAccount/identity or meshed: false",
                );
                return None;
            }
            (true, None, None) => {
                self.problem(
                    line,
                    "a meshed endpoint needs serviceAccount or identity (or meshed: false if it has no sidecar)",
                );
                return None;
            }
            (true, Some(_), Some(identity)) => {
                self.problem(
                    identity.referenced.line(),
                    "give serviceAccount or identity, not both",
                );
                return None;
            }
            (true, Some(account), None) => {
                match SpiffeId::new(trust_domain, namespace, &account.value) {
                    Ok(id) => Some(id),
                    Err(e) => {
                        self.problem(account.referenced.line(), format!("serviceAccount: {e}"));
                        return None;
                    }
                }
            }
            (true, None, Some(identity)) => match identity.value.parse::<SpiffeId>() {
                Ok(id) => Some(id),
                Err(e) => {
                    self.problem(identity.referenced.line(), format!("identity: {e}"));
                    return None;
                }
            },
        };
        Some(ServiceEndpoint {
            ip: ip?,
            identity,
            ports: None,
        })
    }

    /// Records which `ip:port` destinations `service` answers for, refusing any that another
    /// service (or another part of this one) already answers for.
    fn claims(
        &mut self,
        service: &Service,
        lines: &Lines,
        claims: &mut HashMap<SocketAddr, Claim>,
    ) {
        let mut wanted: Vec<(SocketAddr, u64, bool)> = Vec::new();
        for (ip, line) in service.addresses.iter().zip(&lines.addresses) {
            for port in &service.ports {
                wanted.push((SocketAddr::new(*ip, port.port), *line, false));
            }
        }
        let mut target_ports: Vec<u16> = service.ports.iter().map(|p| p.target_port).collect();
        // Several ports may lead to the same targetPort: one claim.
        target_ports.sort_unstable();
        target_ports.dedup();
        for (endpoint, line) in service.endpoints.iter().zip(&lines.endpoints) {
            for port in &target_ports {
                wanted.push((SocketAddr::new(endpoint.ip, *port), *line, true));
            }
        }
        for (addr, line, endpoint) in wanted {
            match claims.entry(addr) {
                Entry::Occupied(first) => {
                    let first = first.get();
                    let (what, first_what) = (role(endpoint), role(first.endpoint));
                    if first.service == service.name {
                        self.problem(
                            line,
                            format!(
                                "{addr} is both {first_what} (line {}) and {what} of {}",
                                first.line, service.name
                            ),
                        );
                    } else {
                        self.problem(
                            line,
                            format!(
                                "{addr} is claimed by two services: {} ({first_what}, line {}) and {} ({what})",
                                first.service, first.line, service.name
                            ),
                        );
                    }
                }
                Entry::Vacant(slot) => {
                    slot.insert(Claim {
                        service: service.name.clone(),
                        line,
                        endpoint,
                    });
                }
            }
        }
    }
}

fn role(endpoint: bool) -> &'static str {
    if endpoint {
        "an endpoint"
    } else {
        "a service address"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field, every default; line numbers matter to the error tests below.
    const GOOD: &str = "\
apiVersion: weft.dev/v1alpha1
kind: MeshService
metadata:
  name: hello
  namespace: demo
spec:
  addresses: [10.96.0.10, \"fd00::10\"]
  ports:
    - port: 80
      targetPort: 8080
      protocol: http
    - port: 5432
      protocol: opaque
  endpoints:
    - address: 10.200.0.2
      serviceAccount: hello
    - address: 10.200.0.3
      identity: spiffe://other.example/ns/demo/sa/hello-v2
    - address: 10.200.0.9
      meshed: false
---
apiVersion: weft.dev/v1alpha1
kind: MeshService
metadata:
  name: db
  namespace: data
spec:
  ports:
    - port: 9090
";

    fn path() -> &'static Path {
        Path::new("/etc/weft/services.yaml")
    }

    fn parse_ok(text: &str) -> Vec<Service> {
        parse(text.as_bytes(), path(), "cluster.local").unwrap()
    }

    fn error(text: &str) -> String {
        format!(
            "{:#}",
            parse(text.as_bytes(), path(), "cluster.local").unwrap_err()
        )
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn reads_every_field_and_default() {
        let services = parse_ok(GOOD);
        assert_eq!(
            services[0],
            Service {
                name: "hello.demo".to_owned(),
                addresses: vec![ip("10.96.0.10"), ip("fd00::10")],
                ports: vec![
                    Port {
                        port: 80,
                        target_port: 8080,
                        protocol: Protocol::Http
                    },
                    Port {
                        port: 5432,
                        target_port: 5432,
                        protocol: Protocol::Opaque
                    },
                ],
                endpoints: vec![
                    ServiceEndpoint {
                        ip: ip("10.200.0.2"),
                        identity: Some(SpiffeId::new("cluster.local", "demo", "hello").unwrap()),
                        ports: None,
                    },
                    ServiceEndpoint {
                        ip: ip("10.200.0.3"),
                        identity: Some(
                            "spiffe://other.example/ns/demo/sa/hello-v2"
                                .parse()
                                .unwrap()
                        ),
                        ports: None,
                    },
                    ServiceEndpoint {
                        ip: ip("10.200.0.9"),
                        identity: None,
                        ports: None,
                    },
                ],
            }
        );
        assert_eq!(
            services[1],
            Service {
                name: "db.data".to_owned(),
                addresses: vec![],
                ports: vec![Port {
                    port: 9090,
                    target_port: 9090,
                    protocol: Protocol::Detect
                }],
                endpoints: vec![],
            }
        );
    }

    #[test]
    fn the_trust_domain_comes_from_the_control_plane() {
        let services = parse(GOOD.as_bytes(), path(), "prod.example").unwrap();
        assert_eq!(
            services[0].endpoints[0]
                .identity
                .as_ref()
                .unwrap()
                .to_string(),
            "spiffe://prod.example/ns/demo/sa/hello"
        );
    }

    #[test]
    fn an_empty_file_is_refused_and_an_empty_list_is_no_services() {
        for empty in ["", "---\n# nothing yet\n"] {
            let err = parse(empty.as_bytes(), path(), "cluster.local").unwrap_err();
            assert!(err.is::<EmptyFile>(), "{err:#}");
            assert!(
                err.to_string()
                    .starts_with("/etc/weft/services.yaml: the file is empty"),
                "{err}"
            );
        }
        assert_eq!(parse_ok("# no services yet\n[]\n"), vec![]);
        assert_eq!(parse_ok(&format!("---\n{GOOD}---\n")).len(), 2);
    }

    /// Each mistake, and the start of its message: `file:line: what`.
    #[test]
    fn each_mistake_is_reported_at_its_line() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "apiVersion: weft.dev/v1alpha1\nkind: MeshService\nmetadata:\n  name: db",
                "apiVersion: weft.dev/v1\nkind: MeshService\nmetadata:\n  name: db",
                ":22: apiVersion is weft.dev/v1, expected weft.dev/v1alpha1",
            ),
            (
                "kind: MeshService\nmetadata:\n  name: db",
                "kind: Service\nmetadata:\n  name: db",
                ":23: kind is Service, expected MeshService",
            ),
            ("  name: db\n", "", ":25:3: missing field `name`"),
            (
                "  namespace: data\n",
                "",
                ":25:3: missing field `namespace`",
            ),
            (
                "  name: db",
                "  name: DB",
                ":25: name \"DB\" contains 'D' (use lowercase letters, digits and '-')",
            ),
            (
                "  namespace: demo",
                "  namespace: demo-",
                ":5: namespace \"demo-\" must start and end with a letter or digit",
            ),
            (
                "10.96.0.10,",
                "10.96.0.300,",
                ":7: \"10.96.0.300\" is not an IP address",
            ),
            (
                "address: 10.200.0.3",
                "address: 10.200.0.3:8080",
                ":17: \"10.200.0.3:8080\" is not an IP address",
            ),
            (
                "- port: 9090",
                "- port: 0",
                ":29: port 0 is out of range (1-65535)",
            ),
            (
                "- port: 9090",
                "- port: 90x",
                ":29: port \"90x\" is not a port number (1-65535)",
            ),
            (
                "targetPort: 8080",
                "targetPort: 65536",
                ":10: targetPort 65536 is out of range (1-65535)",
            ),
            (
                "protocol: opaque",
                "protocol: tcp",
                ":13: unknown protocol \"tcp\" (expected detect, http or opaque)",
            ),
            (
                "      serviceAccount: hello\n",
                "",
                ":15: a meshed endpoint needs serviceAccount or identity",
            ),
            (
                "      serviceAccount: hello\n",
                "      serviceAccount: hello\n      identity: spiffe://cluster.local/ns/demo/sa/hello\n",
                ":17: give serviceAccount or identity, not both",
            ),
            (
                "      meshed: false\n",
                "      meshed: false\n      serviceAccount: hello\n",
                ":21: an endpoint with meshed: false has no identity",
            ),
            (
                "serviceAccount: hello",
                "serviceAccount: Hello",
                ":16: serviceAccount: service account \"Hello\" contains 'H'",
            ),
            (
                "identity: spiffe://other.example/ns/demo/sa/hello-v2",
                "identity: spiffe://other.example/hello",
                ":18: identity: path \"/hello\" is not /ns/<namespace>/sa/<service-account>",
            ),
            (
                "      meshed: false\n",
                "      meshed: false\n      weight: 3\n",
                ":21:7: unknown field `weight`",
            ),
            (
                "  ports:\n    - port: 9090\n",
                "  ports: []\n",
                ":28: ports is empty: a service needs at least one port",
            ),
            (
                "  ports:\n    - port: 9090\n",
                "  addresses: [10.96.0.30]\n",
                ":28:3: missing field `ports`",
            ),
            (
                "    - port: 5432\n",
                "    - port: 80\n",
                ":12: port 80 is already listed at line 9",
            ),
            (
                "    - port: 5432\n      protocol: opaque\n",
                "    - port: 8080\n      protocol: opaque\n",
                ":12: targetPort 8080 is also the target of the port at line 9 with another protocol",
            ),
            (
                "address: 10.200.0.9",
                "address: 10.200.0.2",
                ":19: endpoint 10.200.0.2 is already listed at line 15",
            ),
            (
                "  name: db\n  namespace: data\n",
                "  name: hello\n  namespace: demo\n",
                ":25: service hello.demo is already defined at line 4",
            ),
            (
                "  ports:\n    - port: 9090\n",
                "  addresses: [10.96.0.10]\n  ports:\n    - port: 80\n",
                ":28: 10.96.0.10:80 is claimed by two services: hello.demo (a service address, line 7) and db.data (a service address)",
            ),
            (
                "  ports:\n    - port: 9090\n",
                "  addresses: [10.200.0.2]\n  ports:\n    - port: 8080\n",
                ":28: 10.200.0.2:8080 is claimed by two services: hello.demo (an endpoint, line 15) and db.data (a service address)",
            ),
            (
                "  ports:\n    - port: 9090\n",
                "  ports:\n    - port: 5432\n  endpoints:\n    - {address: 10.200.0.9, meshed: false}\n",
                ":31: 10.200.0.9:5432 is claimed by two services: hello.demo (an endpoint, line 19) and db.data (an endpoint)",
            ),
            (
                "address: 10.200.0.9",
                "address: 10.96.0.10",
                ":19: 10.96.0.10:5432 is both a service address (line 7) and an endpoint of hello.demo",
            ),
        ];
        let mut wrong = Vec::new();
        for (from, to, expected) in cases {
            assert!(GOOD.contains(from), "{from:?} is not in the good file");
            let err = error(&GOOD.replacen(from, to, 1));
            let expected = format!("/etc/weft/services.yaml{expected}");
            if !err.starts_with(&expected) {
                wrong.push(format!("expected {expected:?}\n     got {err:?}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn every_problem_in_every_document_is_reported_at_once() {
        let broken = GOOD
            .replace("- port: 9090", "- port: 0")
            .replace("serviceAccount: hello", "serviceAccount: Hello")
            .replace("kind: MeshService", "kind: MeshServic");
        let err = error(&broken);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 4, "{err}");
        assert!(lines[0].starts_with("/etc/weft/services.yaml:2: kind is MeshServic,"));
        assert!(lines[1].starts_with("/etc/weft/services.yaml:16: serviceAccount:"));
        assert!(lines[2].starts_with("/etc/weft/services.yaml:23: kind is MeshServic,"));
        assert!(lines[3].starts_with("/etc/weft/services.yaml:29: port 0"));
    }

    #[test]
    fn syntax_errors_quote_the_line() {
        let err = error(&GOOD.replace("[10.96.0.10,", "10.96.0.10,]"));
        assert!(err.starts_with("/etc/weft/services.yaml:7:"), "{err}");
        assert!(err.contains("7 |   addresses: 10.96.0.10,"), "{err}");
    }
}

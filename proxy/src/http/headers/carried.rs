//! Which of the names weft removes from the heads it forwards a head carries, found in one pass
//! over its names.
//!
//! A sidecar strips a dozen names from what it forwards (hop-by-hop fields, HTTP/2's forbidden
//! ones, the `weft-*` fields only a proxy may set), and most heads carry none of them, or one
//! (an app's `Connection: keep-alive`). Removing each by name costs a lookup whether it is there
//! or not (hash the name, probe the map): about 150 instructions each, 2k a request on the
//! server sidecar. One pass over the head's names, each matched against the whole set at once,
//! finds the few that are there, and only those are looked up to be removed.

use http::{HeaderMap, HeaderName, header};

use super::{CLIENT_IDENTITY, ERROR, ORIG_PROTO};

/// A set of the names weft strips, as bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Carried(u16);

/// The names, in the order of their bits.
const NAMES: [HeaderName; 10] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    ORIG_PROTO,
    CLIENT_IDENTITY,
    ERROR,
];

impl Carried {
    pub const NONE: Carried = Carried(0);
    pub const CONNECTION: Carried = Carried(1);
    pub const TE: Carried = Carried(1 << 6);
    pub const ORIG_PROTO: Carried = Carried(1 << 7);
    pub const CLIENT_IDENTITY: Carried = Carried(1 << 8);
    pub const ERROR: Carried = Carried(1 << 9);
    /// What HTTP/2 forbids (RFC 9113 8.2.2): `Connection`, `Keep-Alive`, `Proxy-Connection`,
    /// `Transfer-Encoding`, `Upgrade`.
    pub const CONNECTION_SPECIFIC: Carried = Carried(0b1_1111);
    /// Hop-by-hop fields (RFC 9110 7.6.1): the connection-specific ones, `Proxy-Authorization`
    /// and `TE`.
    pub const HOP_BY_HOP: Carried = Carried(0b111_1111);

    /// Which of the names `headers` carries.
    pub fn scan(headers: &HeaderMap) -> Carried {
        Carried(
            headers
                .keys()
                .fold(0, |bits, name| bits | bit(name.as_str())),
        )
    }

    /// The one name of the set that `name` is (in lower case, as a map's names are), or none.
    pub fn named(name: &str) -> Carried {
        Carried(bit(name))
    }

    /// Whether any of `names` is carried.
    pub fn any(self, names: Carried) -> bool {
        self.0 & names.0 != 0
    }

    /// This set less `names`.
    pub const fn without(self, names: Carried) -> Carried {
        Carried(self.0 & !names.0)
    }

    /// Removes those of `names` that are carried from `headers` (every value of each).
    pub fn remove(self, names: Carried, headers: &mut HeaderMap) {
        let mut bits = self.0 & names.0;
        while bits != 0 {
            headers.remove(&NAMES[bits.trailing_zeros() as usize]);
            bits &= bits - 1;
        }
    }
}

/// `name`'s bit, or 0: one `match` on the name (the compiler compares lengths first), not a
/// comparison per name of the set.
fn bit(name: &str) -> u16 {
    match name {
        "connection" => 1,
        "keep-alive" => 1 << 1,
        "proxy-connection" => 1 << 2,
        "transfer-encoding" => 1 << 3,
        "upgrade" => 1 << 4,
        "proxy-authorization" => 1 << 5,
        "te" => 1 << 6,
        "weft-orig-proto" => 1 << 7,
        "weft-client-identity" => 1 << 8,
        "weft-error" => 1 << 9,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn each_name_is_found_by_its_bit() {
        for (i, name) in NAMES.iter().enumerate() {
            let mut headers = HeaderMap::new();
            headers.insert("accept", HeaderValue::from_static("*/*"));
            headers.insert(name, HeaderValue::from_static("x"));
            assert_eq!(Carried::scan(&headers), Carried(1 << i), "{name}");
            Carried::scan(&headers).remove(Carried(u16::MAX), &mut headers);
            assert_eq!(headers.len(), 1, "{name} removed, the rest kept");
        }
    }

    #[test]
    fn only_the_names_asked_for_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        headers.append(ERROR, HeaderValue::from_static("timeout"));
        headers.append(ERROR, HeaderValue::from_static("again"));
        let carried = Carried::scan(&headers);
        assert!(carried.any(Carried::ERROR) && carried.any(Carried::HOP_BY_HOP));
        assert!(!carried.any(Carried::TE));
        carried.remove(Carried::ERROR, &mut headers);
        assert!(!headers.contains_key(ERROR), "every value goes");
        assert!(headers.contains_key(header::CONNECTION));
    }
}

//! The static table (RFC 7541 Appendix A): 61 fields every HPACK peer knows, indexes 1 to 61.
//!
//! The decoder looks entries up by index ([`get`]); the encoder by name and value ([`find`]), a
//! `match` on the name's bytes that the compiler turns into a switch on the length and a few
//! comparisons, with the values the table holds for `:method`, `:path`, `:scheme`, `:status` and
//! `accept-encoding` matched inside. A test checks that [`find`] agrees with the table.

/// The entries, in order: index `i` is `STATIC[i - 1]`.
pub(super) const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// The number of entries: dynamic-table indexes start after it.
pub(super) const LEN: usize = STATIC.len();

/// The entry at `index` (1 to 61).
pub(super) fn get(index: usize) -> Option<(&'static str, &'static str)> {
    STATIC.get(index.checked_sub(1)?).copied()
}

/// What a table holds of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Match {
    /// The field itself, at this index.
    Field(usize),
    /// Only its name, at this index (the first entry with it).
    Name(usize),
}

/// Where the static table holds `name` and `value`, or just `name`.
pub(super) fn find(name: &[u8], value: &[u8]) -> Option<Match> {
    use Match::{Field, Name};
    let index = match name {
        b":authority" => 1,
        b":method" => {
            return Some(match value {
                b"GET" => Field(2),
                b"POST" => Field(3),
                _ => Name(2),
            });
        }
        b":path" => {
            return Some(match value {
                b"/" => Field(4),
                b"/index.html" => Field(5),
                _ => Name(4),
            });
        }
        b":scheme" => {
            return Some(match value {
                b"http" => Field(6),
                b"https" => Field(7),
                _ => Name(6),
            });
        }
        b":status" => {
            return Some(match value {
                b"200" => Field(8),
                b"204" => Field(9),
                b"206" => Field(10),
                b"304" => Field(11),
                b"400" => Field(12),
                b"404" => Field(13),
                b"500" => Field(14),
                _ => Name(8),
            });
        }
        b"accept-charset" => 15,
        b"accept-encoding" => {
            return Some(if value == b"gzip, deflate" {
                Field(16)
            } else {
                Name(16)
            });
        }
        b"accept-language" => 17,
        b"accept-ranges" => 18,
        b"accept" => 19,
        b"access-control-allow-origin" => 20,
        b"age" => 21,
        b"allow" => 22,
        b"authorization" => 23,
        b"cache-control" => 24,
        b"content-disposition" => 25,
        b"content-encoding" => 26,
        b"content-language" => 27,
        b"content-length" => 28,
        b"content-location" => 29,
        b"content-range" => 30,
        b"content-type" => 31,
        b"cookie" => 32,
        b"date" => 33,
        b"etag" => 34,
        b"expect" => 35,
        b"expires" => 36,
        b"from" => 37,
        b"host" => 38,
        b"if-match" => 39,
        b"if-modified-since" => 40,
        b"if-none-match" => 41,
        b"if-range" => 42,
        b"if-unmodified-since" => 43,
        b"last-modified" => 44,
        b"link" => 45,
        b"location" => 46,
        b"max-forwards" => 47,
        b"proxy-authenticate" => 48,
        b"proxy-authorization" => 49,
        b"range" => 50,
        b"referer" => 51,
        b"refresh" => 52,
        b"retry-after" => 53,
        b"server" => 54,
        b"set-cookie" => 55,
        b"strict-transport-security" => 56,
        b"transfer-encoding" => 57,
        b"user-agent" => 58,
        b"vary" => 59,
        b"via" => 60,
        b"www-authenticate" => 61,
        _ => return None,
    };
    // Every other entry has an empty value.
    Some(if value.is_empty() {
        Field(index)
    } else {
        Name(index)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_agrees_with_the_table() {
        for (i, (name, value)) in STATIC.iter().enumerate() {
            let index = i + 1;
            let first = STATIC
                .iter()
                .position(|e| e.0 == *name)
                .expect("its own name")
                + 1;
            assert_eq!(
                find(name.as_bytes(), value.as_bytes()),
                Some(Match::Field(index))
            );
            assert_eq!(
                find(name.as_bytes(), b"other"),
                Some(Match::Name(first)),
                "{name}"
            );
            assert_eq!(get(index), Some((*name, *value)));
        }
        assert_eq!(find(b"x-unknown", b""), None);
        assert_eq!(find(b":Method", b"GET"), None);
        assert_eq!(get(0), None);
        assert_eq!(get(62), None);
    }
}

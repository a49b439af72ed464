//! The walker's toolbox: visiting a map of known fields and reading typed scalars, each
//! recording a problem (and returning `None`) instead of stopping.
//!
//! Every value has one spelling, so that two policies that mean the same thing look the same:
//! durations are integers and units, the flags' grammar ([`weft_api::duration`]: `250ms`, `10s`,
//! `1h30m`), sizes an integer and `B`, `KiB` or `MiB`, percentages integers, ratios decimals
//! from 0.0 to 1.0.

use std::fmt;

use super::node::{Node, Pos, Value};

/// One thing wrong with a document.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub at: Pos,
    /// Dotted field path (`spec.routes[2].match.path`); empty for the file as a whole.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.at, self.message)
        } else {
            write!(f, "{}: {}: {}", self.at, self.path, self.message)
        }
    }
}

/// Collects problems while the walker visits a document.
#[derive(Debug, Default)]
pub struct Cx {
    pub problems: Vec<Problem>,
}

/// The fields of a map the walker knows, by name.
pub struct Fields<'n> {
    entries: Vec<(&'n str, &'n Node, &'n Node)>,
}

impl<'n> Fields<'n> {
    /// The value of `name`, if written.
    pub fn get(&self, name: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == name)
            .map(|(_, _, v)| *v)
    }

    /// Where the key `name` was written.
    pub fn key_at(&self, name: &str) -> Option<Pos> {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == name)
            .map(|(_, k, _)| k.at)
    }
}

pub fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

pub fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

impl Cx {
    pub fn problem(&mut self, at: Pos, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            at,
            path: path.to_owned(),
            message: message.into(),
        });
    }

    fn expected(&mut self, node: &Node, path: &str, what: &str) {
        let found = match node.text() {
            Some(text) if !node.is_null() => format!("{} `{text}`", node.kind()),
            _ => node.kind().to_owned(),
        };
        self.problem(node.at, path, format!("expected {what}, found {found}"));
    }

    /// A map whose keys must be among `allowed` (nothing written counts as an empty map).
    /// Unknown and repeated keys are problems; the others are returned.
    pub fn map<'n>(&mut self, node: &'n Node, path: &str, allowed: &[&str]) -> Option<Fields<'n>> {
        if node.is_null() {
            return Some(Fields {
                entries: Vec::new(),
            });
        }
        let Value::Map(entries) = &node.value else {
            self.expected(node, path, "a map");
            return None;
        };
        let mut fields = Fields {
            entries: Vec::new(),
        };
        for (key, value) in entries {
            let Some(name) = key.text() else {
                self.problem(key.at, path, "map keys must be plain names");
                continue;
            };
            let here = join(path, name);
            if !allowed.contains(&name) {
                let message = match did_you_mean(name, allowed) {
                    Some(close) => format!("unknown field; did you mean `{close}`?"),
                    None => format!("unknown field (expected one of: {})", allowed.join(", ")),
                };
                self.problem(key.at, &here, message);
                continue;
            }
            if fields.get(name).is_some() {
                self.problem(key.at, &here, "written twice");
                continue;
            }
            fields.entries.push((name, key, value));
        }
        Some(fields)
    }

    pub fn list<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n [Node]> {
        match &node.value {
            Value::Seq(items) => Some(items),
            _ => {
                self.expected(node, path, "a list");
                None
            }
        }
    }

    /// Any scalar other than nothing, quoted or not.
    pub fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match node.text() {
            Some(text) if !node.is_null() => Some(text.to_owned()),
            _ => {
                self.expected(node, path, "a string");
                None
            }
        }
    }

    /// A list of strings.
    pub fn strings(&mut self, node: &Node, path: &str) -> Option<Vec<(String, Pos, String)>> {
        let items = self.list(node, path)?;
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let here = index(path, i);
            if let Some(text) = self.string(item, &here) {
                out.push((text, item.at, here));
            }
        }
        Some(out)
    }

    pub fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        match &node.value {
            Value::Scalar {
                text,
                quoted: false,
            } if text == "true" => Some(true),
            Value::Scalar {
                text,
                quoted: false,
            } if text == "false" => Some(false),
            _ => {
                self.expected(node, path, "true or false");
                None
            }
        }
    }

    /// An unquoted integer in `min..=max`.
    pub fn integer(&mut self, node: &Node, path: &str, min: u64, max: u64) -> Option<u64> {
        let parsed = match &node.value {
            Value::Scalar {
                text,
                quoted: false,
            } => text.parse::<i128>().ok(),
            _ => None,
        };
        let Some(value) = parsed else {
            self.expected(node, path, "an integer");
            return None;
        };
        if value < i128::from(min) || value > i128::from(max) {
            let message = if max >= u64::from(u32::MAX) {
                format!("{value} is out of range (at least {min})")
            } else {
                format!("{value} is out of range ({min}-{max})")
            };
            self.problem(node.at, path, message);
            return None;
        }
        u64::try_from(value).ok()
    }

    pub fn integer_u32(&mut self, node: &Node, path: &str, min: u32, max: u32) -> Option<u32> {
        self.integer(node, path, min.into(), max.into())
            .and_then(|v| u32::try_from(v).ok())
    }

    /// A percentage: an integer from 0 to 100.
    pub fn percent(&mut self, node: &Node, path: &str) -> Option<u32> {
        self.integer_u32(node, path, 0, 100)
    }

    /// A ratio: a decimal from 0.0 to 1.0.
    pub fn ratio(&mut self, node: &Node, path: &str) -> Option<f64> {
        let parsed = match &node.value {
            Value::Scalar {
                text,
                quoted: false,
            } => text.parse::<f64>().ok().filter(|v| v.is_finite()),
            _ => None,
        };
        let Some(value) = parsed else {
            self.expected(node, path, "a decimal number from 0.0 to 1.0");
            return None;
        };
        if !(0.0..=1.0).contains(&value) {
            self.problem(node.at, path, format!("{value} is out of range (0.0-1.0)"));
            return None;
        }
        Some(value)
    }

    /// A duration in milliseconds; `allow_zero` for fields where 0 means "none".
    pub fn duration(&mut self, node: &Node, path: &str, allow_zero: bool) -> Option<u64> {
        let text = match &node.value {
            Value::Scalar { text, .. } if !node.is_null() => text.as_str(),
            _ => {
                self.expected(
                    node,
                    path,
                    "a duration (a number and a unit: 300ms, 10s, 5m, 1h30m)",
                );
                return None;
            }
        };
        match parse_duration(text) {
            Ok(0) if !allow_zero => {
                self.problem(node.at, path, "must be longer than 0");
                None
            }
            Ok(ms) => Some(ms),
            Err(why) => {
                self.problem(node.at, path, why);
                None
            }
        }
    }

    /// A size in bytes.
    pub fn size(&mut self, node: &Node, path: &str) -> Option<u64> {
        let text = node.text().filter(|_| !node.is_null()).unwrap_or_default();
        match parse_size(text) {
            Ok(bytes) => Some(bytes),
            Err(why) => {
                self.problem(node.at, path, why);
                None
            }
        }
    }

    /// One of `choices`.
    pub fn choice<T: Copy>(&mut self, node: &Node, path: &str, choices: &[(&str, T)]) -> Option<T> {
        let text = node.text().unwrap_or_default();
        if let Some((_, value)) = choices.iter().find(|(name, _)| *name == text) {
            return Some(*value);
        }
        let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
        let found = if node.is_null() {
            "nothing".to_owned()
        } else {
            format!("`{text}`")
        };
        self.problem(
            node.at,
            path,
            format!("expected one of {}, found {found}", names.join(", ")),
        );
        None
    }
}

/// A duration in weft's one grammar ([`weft_api::duration`], the flags' too) → milliseconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    weft_api::duration::parse_ms(text).map_err(|e| format!("`{text}` is not a duration: {e}"))
}

/// `512B`, `64KiB`, `1MiB` → bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let digits = text.chars().take_while(char::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let scale = match unit {
        "B" => 1,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        _ => {
            return Err(format!(
                "`{text}` is not a size: write an integer and B, KiB or MiB (e.g. 64KiB)"
            ));
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("`{text}` is not a size: write an integer and B, KiB or MiB"))
}

/// The allowed name closest to `name`: equal ignoring case, or at most 2 edits away.
pub fn did_you_mean<'a>(name: &str, allowed: &[&'a str]) -> Option<&'a str> {
    if let Some(same) = allowed.iter().find(|a| a.eq_ignore_ascii_case(name)) {
        return Some(same);
    }
    allowed
        .iter()
        .map(|a| (edit_distance(name, a), *a))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_the_flags_grammar() {
        assert_eq!(parse_duration("250ms"), Ok(250));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(
            parse_duration("1.5s").unwrap_err(),
            "`1.5s` is not a duration: expected a number and a unit (ms, s, m, h, d), like 300ms or 1h30m; did you mean 1500ms?"
        );
        for bad in ["10", "s", "", "10 s", "-1s", "10sec"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_have_one_spelling() {
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("1MiB"), Ok(1_048_576));
        assert_eq!(parse_size("10B"), Ok(10));
        for bad in ["64kb", "64KB", "1.5MiB", "64", ""] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn close_names_are_suggested() {
        let allowed = ["request", "perTry", "idle"];
        assert_eq!(did_you_mean("pertry", &allowed), Some("perTry"));
        assert_eq!(did_you_mean("perTyr", &allowed), Some("perTry"));
        assert_eq!(did_you_mean("requests", &allowed), Some("request"));
        assert_eq!(did_you_mean("deadline", &allowed), None);
    }
}

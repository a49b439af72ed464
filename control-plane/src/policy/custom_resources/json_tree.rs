//! An object from the API server as the checker's tree ([`crate::policy::node`]), so a
//! ServicePolicy custom resource is checked by the very walker that checks the files.
//!
//! JSON has no positions worth reporting (the API server re-encodes what `kubectl` sent), so
//! every node is at `0:0` and messages carry only the field path. Keys become plain scalars (as
//! `name:` is in YAML), JSON strings quoted
//! scalars and numbers, booleans and null plain ones: exactly what the YAML parser produces for
//! `"503"`, `503`, `true` and `~`, so the checker's rules about quoting hold unchanged.

use serde_json::Value as Json;

use crate::policy::node::{Node, Pos, Value};

/// The tree of `json`.
pub fn tree(json: &Json) -> Node {
    let value = match json {
        Json::Object(fields) => Value::Map(
            fields
                .iter()
                .map(|(key, value)| (scalar(key.clone(), false), tree(value)))
                .collect(),
        ),
        Json::Array(items) => Value::Seq(items.iter().map(tree).collect()),
        Json::String(text) => return scalar(text.clone(), true),
        Json::Number(number) => return scalar(number.to_string(), false),
        Json::Bool(b) => return scalar(b.to_string(), false),
        Json::Null => return scalar("null".to_owned(), false),
    };
    Node {
        at: Pos::default(),
        value,
    }
}

fn scalar(text: String, quoted: bool) -> Node {
    Node {
        at: Pos::default(),
        value: Value::Scalar { text, quoted },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::node;

    #[test]
    fn json_reads_like_the_same_yaml() {
        let json = serde_json::json!({"a": [1, "503", true, null, 0.25], "b": {"c": "10s"}});
        let yaml = node::parse("a: [1, \"503\", true, null, 0.25]\nb: {c: \"10s\"}\n").unwrap();
        assert_eq!(tree(&json).canonical(), yaml[0].canonical());
    }
}

//! JSON Patch (RFC 6902) operations, as the webhook sends them, and an applier of the `add`
//! operations injection produces, so `weft inject` applies exactly the webhook's patch.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchOp {
    pub op: String,
    pub path: String,
    pub value: Value,
}

impl PatchOp {
    pub fn add(path: impl Into<String>, value: Value) -> Self {
        Self {
            op: "add".to_owned(),
            path: path.into(),
            value,
        }
    }
}

/// `~` and `/` escaped for a JSON Pointer segment (`weft.dev/injected` → `weft.dev~1injected`).
pub fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Applies `add` operations to `doc`: into an object by key, into an array at an index or at its
/// end (`-`).
pub fn apply(doc: &mut Value, ops: &[PatchOp]) -> anyhow::Result<()> {
    for op in ops {
        anyhow::ensure!(op.op == "add", "unsupported JSON Patch op {:?}", op.op);
        let (parent, last) = op
            .path
            .rsplit_once('/')
            .ok_or_else(|| anyhow::anyhow!("JSON Patch path {:?} is not a pointer", op.path))?;
        let target = doc
            .pointer_mut(parent)
            .ok_or_else(|| anyhow::anyhow!("JSON Patch path {:?}: no parent", op.path))?;
        let key = last.replace("~1", "/").replace("~0", "~");
        match target {
            Value::Object(map) => {
                map.insert(key, op.value.clone());
            }
            Value::Array(list) if key == "-" => list.push(op.value.clone()),
            Value::Array(list) => {
                let index: usize = key
                    .parse()
                    .map_err(|_| anyhow::anyhow!("JSON Patch path {:?}: bad index", op.path))?;
                anyhow::ensure!(
                    index <= list.len(),
                    "JSON Patch path {:?}: out of range",
                    op.path
                );
                list.insert(index, op.value.clone());
            }
            _ => anyhow::bail!("JSON Patch path {:?}: parent is not a container", op.path),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn adds_by_key_index_and_end() {
        let mut doc = json!({"metadata": {}, "list": [1, 3]});
        apply(
            &mut doc,
            &[
                PatchOp::add(
                    format!("/metadata/{}", escape("weft.dev/injected")),
                    json!("x"),
                ),
                PatchOp::add("/list/1", json!(2)),
                PatchOp::add("/list/-", json!(4)),
            ],
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({"metadata": {"weft.dev/injected": "x"}, "list": [1, 2, 3, 4]})
        );
        assert!(apply(&mut doc, &[PatchOp::add("/missing/x", json!(1))]).is_err());
    }
}

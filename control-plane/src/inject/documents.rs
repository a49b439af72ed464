//! YAML streams as `weft inject` and `weft uninject` read them: several documents separated by
//! `---`, `List`s, every kind that carries a pod template. A document without a pod template (or
//! whose pods are not injected) is copied byte for byte; a changed one is printed again from its
//! parsed form (keys sorted), preceded by comment lines `# weft-original: <base64>` holding the
//! original document, so `weft uninject` can print the original bytes again. Comments are
//! ignored by `kubectl apply`; when they are gone (a pod read back from the cluster), uninject
//! removes what the `weft.dev/injected` annotation lists.

use anyhow::Context;
use base64::Engine;
use serde_json::Value;

use super::decision::{Decision, decide};
use super::patch::apply;
use super::pod::{inject, uninject};
use super::settings::InjectSettings;

const ORIGINAL_PREFIX: &str = "# weft-original: ";
const ORIGINAL_LINE_CHARS: usize = 100;

/// Where the pod template of a kind lives.
pub fn template_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some(""),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "ReplicationController" => Some("/spec/template"),
        "CronJob" => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

/// One document of a stream: the separator line before it (empty for the first) and its text.
struct Document<'a> {
    separator: &'a str,
    body: &'a str,
}

fn split(text: &str) -> Vec<Document<'_>> {
    let mut documents = Vec::new();
    let (mut separator, mut start, mut at) = ("", 0, 0);
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_end();
        let is_separator = trimmed == "---" || trimmed.starts_with("--- ");
        if is_separator {
            documents.push(Document {
                separator,
                body: &text[start..at],
            });
            separator = &text[at..at + line.len()];
            start = at + line.len();
        }
        at += line.len();
    }
    documents.push(Document {
        separator,
        body: &text[start..],
    });
    documents
}

fn is_empty(body: &str) -> bool {
    body.lines()
        .map(str::trim)
        .all(|l| l.is_empty() || l.starts_with('#') || l == "...")
}

/// Injects every pod template in `text` (`name` is for error messages).
pub fn inject_stream(text: &str, name: &str, settings: &InjectSettings) -> anyhow::Result<String> {
    transform(
        text,
        name,
        |value| inject_document(value, settings),
        |original, value| {
            let encoded = base64::engine::general_purpose::STANDARD.encode(original);
            let mut out = String::new();
            for chunk in encoded.as_bytes().chunks(ORIGINAL_LINE_CHARS) {
                out.push_str(ORIGINAL_PREFIX);
                out.push_str(&String::from_utf8_lossy(chunk));
                out.push('\n');
            }
            Ok(out + &to_yaml(value)?)
        },
    )
}

/// Removes what `weft inject` added from every pod template in `text`.
pub fn uninject_stream(text: &str, name: &str) -> anyhow::Result<String> {
    transform(text, name, uninject_document, |body, value| {
        if let Some(original) = original_of(body) {
            // The recorded original, if the document still says the same thing.
            let parsed: Option<Value> = serde_saphyr::from_str(&original).ok();
            if parsed.as_ref() == Some(value) {
                return Ok(original);
            }
        }
        to_yaml(value)
    })
}

fn original_of(body: &str) -> Option<String> {
    let encoded: String = body
        .lines()
        .take_while(|l| l.starts_with(ORIGINAL_PREFIX))
        .map(|l| &l[ORIGINAL_PREFIX.len()..])
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    String::from_utf8(bytes).ok().filter(|s| !s.is_empty())
}

fn to_yaml(value: &Value) -> anyhow::Result<String> {
    let mut text = serde_saphyr::to_string(value).context("cannot print the document as YAML")?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// Runs `change` on each parsed document; prints the changed ones with `print(original, value)`.
fn transform(
    text: &str,
    name: &str,
    change: impl Fn(&mut Value) -> anyhow::Result<bool>,
    print: impl Fn(&str, &Value) -> anyhow::Result<String>,
) -> anyhow::Result<String> {
    let mut out = String::with_capacity(text.len() * 2);
    for (index, document) in split(text).iter().enumerate() {
        out.push_str(document.separator);
        if is_empty(document.body) {
            out.push_str(document.body);
            continue;
        }
        let what = || format!("{name}: document {}", index + 1);
        let mut value: Value =
            crate::yaml::parse(document.body.as_bytes(), std::path::Path::new(&what()))?;
        if change(&mut value).with_context(what)? {
            out.push_str(&print(document.body, &value).with_context(what)?);
        } else {
            out.push_str(document.body);
        }
    }
    Ok(out)
}

/// The document itself, or each item of a `List`.
fn for_each_object(
    value: &mut Value,
    mut each: impl FnMut(&mut Value) -> anyhow::Result<bool>,
) -> anyhow::Result<bool> {
    let is_list = value
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"))
        && value.get("items").is_some_and(Value::is_array);
    if !is_list {
        return each(value);
    }
    let mut changed = false;
    for (i, item) in value["items"]
        .as_array_mut()
        .into_iter()
        .flatten()
        .enumerate()
    {
        changed |= each(item).with_context(|| format!("items[{i}]"))?;
    }
    Ok(changed)
}

fn template_of(object: &mut Value) -> Option<(Option<String>, &mut Value)> {
    let kind = object.get("kind")?.as_str()?;
    let pointer = template_pointer(kind)?;
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let template = match pointer {
        "" => object,
        pointer => object.pointer_mut(pointer)?,
    };
    Some((namespace, template))
}

fn inject_document(value: &mut Value, settings: &InjectSettings) -> anyhow::Result<bool> {
    for_each_object(value, |object| {
        let Some((namespace, template)) = template_of(object) else {
            return Ok(false);
        };
        if decide(template, namespace.as_deref(), true) != Decision::Inject {
            return Ok(false);
        }
        let injection = inject(template, settings)?;
        for warning in &injection.warnings {
            eprintln!("{warning}");
        }
        apply(template, &injection.ops)?;
        Ok(true)
    })
}

fn uninject_document(value: &mut Value) -> anyhow::Result<bool> {
    for_each_object(value, |object| match template_of(object) {
        Some((_, template)) => Ok(uninject(template)?),
        None => Ok(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "# a comment kept as is\napiVersion: v1\nkind: Service\nmetadata: {name: web}   # odd spacing\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: web\n    image: \"nginx:1.27\"\n    ports:\n    - containerPort: 80\n--- # a separator comment\napiVersion: v1\nkind: ConfigMap\ndata: {port: \"8080\", on: \"true\"}\n";

    #[test]
    fn other_documents_are_copied_and_uninject_restores_the_bytes() {
        let settings = InjectSettings::default();
        let injected = inject_stream(STREAM, "stream", &settings).unwrap();
        assert!(injected.starts_with("# a comment kept as is\napiVersion: v1\nkind: Service\nmetadata: {name: web}   # odd spacing\n---\n# weft-original: "), "{injected}");
        assert!(injected.ends_with("--- # a separator comment\napiVersion: v1\nkind: ConfigMap\ndata: {port: \"8080\", on: \"true\"}\n"), "{injected}");
        assert!(injected.contains("weft-proxy"));
        assert_eq!(uninject_stream(&injected, "stream").unwrap(), STREAM);
        // Injecting again changes nothing.
        assert_eq!(
            inject_stream(&injected, "stream", &settings).unwrap(),
            injected
        );

        // Without the recorded original, uninject still removes exactly what was added.
        let stripped: String = injected
            .lines()
            .filter(|l| !l.starts_with(ORIGINAL_PREFIX))
            .map(|l| format!("{l}\n"))
            .collect();
        let restored = uninject_stream(&stripped, "stream").unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&restored).unwrap();
        let originals: Vec<Value> = serde_saphyr::from_multiple(STREAM).unwrap();
        assert_eq!(docs, originals);
    }

    #[test]
    fn lists_and_every_workload_kind_are_walked() {
        for kind in [
            "Deployment",
            "StatefulSet",
            "DaemonSet",
            "ReplicaSet",
            "Job",
        ] {
            let text = format!(
                "apiVersion: apps/v1\nkind: {kind}\nmetadata: {{name: x}}\nspec:\n  template:\n    spec:\n      containers: [{{name: x, image: x}}]\n"
            );
            let injected = inject_stream(&text, "x", &InjectSettings::default()).unwrap();
            assert!(injected.contains("weft-proxy"), "{kind}: {injected}");
        }
        let list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: a}\n  spec: {containers: [{name: a, image: a}]}\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: s}\n";
        let injected = inject_stream(list, "x", &InjectSettings::default()).unwrap();
        let value: Value = serde_saphyr::from_str(&injected).unwrap();
        assert_eq!(
            value["items"][0]["spec"]["initContainers"][1]["name"],
            "weft-proxy"
        );
        assert_eq!(value["items"][1]["kind"], "Secret");
        assert_eq!(uninject_stream(&injected, "x").unwrap(), list);
    }
}

//! A YAML document as a tree of nodes that remember where they were written.
//!
//! serde's derive stops at the first problem (an unknown field, a wrong type), but an operator
//! fixing a policy wants every problem of the file at once. So policies are read in two steps:
//! the YAML parser's events become this small tree (maps, sequences and scalars, each with its
//! line and column), and a hand-written walker that knows the schema ([`super::check`]) visits
//! all of it, collecting problems as it goes. Only broken YAML syntax stops early: there is no
//! tree to walk then.

use std::collections::HashMap;
use std::fmt;

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span};

/// Where a node starts: line and column, both counting from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub at: Pos,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Keys in the order written (duplicates included, so the walker can report them).
    Map(Vec<(Node, Node)>),
    Seq(Vec<Node>),
    Scalar {
        text: String,
        /// Quoted (or block) scalars are always strings; plain ones may be numbers, booleans or
        /// null.
        quoted: bool,
    },
}

impl Node {
    /// The text of a plain or quoted scalar.
    pub fn text(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The value of `key` if this is a map that has it (nothing is checked).
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.text() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Whether this is `~`, `null` or nothing at all (`key:` with no value).
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, quoted: false }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// What kind of node this is, for "expected a map, found a list".
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Map(_) => "a map",
            Value::Seq(_) => "a list",
            Value::Scalar { .. } if self.is_null() => "nothing",
            Value::Scalar { quoted: true, .. } => "a string",
            Value::Scalar { text, .. } => {
                if text.parse::<i64>().is_ok() {
                    "a number"
                } else if text.parse::<f64>().is_ok() {
                    "a decimal number"
                } else if matches!(text.as_str(), "true" | "false") {
                    "a boolean"
                } else {
                    "a string"
                }
            }
        }
    }

    /// A canonical rendering (JSON-like, map keys sorted, no comments, no layout), so that a
    /// version hash changes with the meaning of a document and not with its formatting.
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        self.write_canonical(&mut out);
        out
    }

    fn write_canonical(&self, out: &mut String) {
        match &self.value {
            Value::Map(entries) => {
                let mut sorted: Vec<(String, &Node)> =
                    entries.iter().map(|(k, v)| (k.canonical(), v)).collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                out.push('{');
                for (i, (key, value)) in sorted.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&key);
                    out.push(':');
                    value.write_canonical(out);
                }
                out.push('}');
            }
            Value::Seq(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_canonical(out);
                }
                out.push(']');
            }
            Value::Scalar { text, quoted } => {
                if *quoted {
                    out.push_str(&format!("{text:?}"));
                } else {
                    out.push_str(text);
                }
            }
        }
    }
}

/// Broken YAML syntax, where the parser noticed it.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub at: Pos,
    pub message: String,
}

/// The documents of one file (empty documents, such as a trailing `---`, are dropped).
pub fn parse(text: &str) -> Result<Vec<Node>, SyntaxError> {
    let mut builder = Builder::default();
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| SyntaxError {
            at: Pos {
                line: e.marker().line(),
                column: e.marker().col() + 1,
            },
            message: e.info(),
        })?;
        builder.event(event, span)?;
    }
    Ok(builder.documents)
}

/// A collection being filled.
enum Open {
    Map(Pos, usize, Vec<(Node, Node)>, Option<Node>),
    Seq(Pos, usize, Vec<Node>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    anchors: HashMap<usize, Node>,
    documents: Vec<Node>,
}

fn pos(span: &Span) -> Pos {
    Pos {
        line: span.start.line(),
        column: span.start.col() + 1,
    }
}

impl Builder {
    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), SyntaxError> {
        match event {
            Event::Scalar(text, style, anchor, _) => {
                let node = Node {
                    at: pos(&span),
                    value: Value::Scalar {
                        text: text.into_owned(),
                        quoted: style != ScalarStyle::Plain,
                    },
                };
                if anchor != 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.add(node);
            }
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().ok_or_else(|| SyntaxError {
                    at: pos(&span),
                    message: "alias to an unknown anchor".to_owned(),
                })?;
                self.add(node);
            }
            Event::SequenceStart(_, anchor, _) => {
                self.stack.push(Open::Seq(pos(&span), anchor, Vec::new()));
            }
            Event::MappingStart(_, anchor, _) => {
                self.stack
                    .push(Open::Map(pos(&span), anchor, Vec::new(), None));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Open::Seq(at, anchor, items)) => (
                        Node {
                            at,
                            value: Value::Seq(items),
                        },
                        anchor,
                    ),
                    Some(Open::Map(at, anchor, entries, _)) => (
                        Node {
                            at,
                            value: Value::Map(entries),
                        },
                        anchor,
                    ),
                    None => {
                        return Err(SyntaxError {
                            at: pos(&span),
                            message: "unbalanced collection".to_owned(),
                        });
                    }
                };
                if anchor != 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.add(node);
            }
            Event::DocumentStart(..) => self.anchors.clear(),
            _ => {}
        }
        Ok(())
    }

    fn add(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => {
                if !node.is_null() {
                    self.documents.push(node);
                }
            }
            Some(Open::Seq(_, _, items)) => items.push(node),
            Some(Open::Map(_, _, entries, key)) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_know_their_line_and_column() {
        let docs = parse("a: 1\nb:\n  - x\n  - 'y'\n---\n---\nc: {d: e}\n").unwrap();
        assert_eq!(docs.len(), 2);
        let Value::Map(entries) = &docs[0].value else {
            panic!("a map");
        };
        assert_eq!(entries[0].0.text(), Some("a"));
        assert_eq!(entries[0].1.at, Pos { line: 1, column: 4 });
        let Value::Seq(items) = &entries[1].1.value else {
            panic!("a list");
        };
        assert_eq!(items[1].at, Pos { line: 4, column: 5 });
        assert_eq!(
            items[1].value,
            Value::Scalar {
                text: "y".to_owned(),
                quoted: true
            }
        );
        assert_eq!(docs[1].canonical(), "{c:{d:e}}");
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.at.line >= 1, "{err:?}");
        assert!(!err.message.is_empty());
    }

    #[test]
    fn aliases_copy_their_anchor() {
        let docs = parse("a: &x {b: 1}\nc: *x\n").unwrap();
        let Value::Map(entries) = &docs[0].value else {
            panic!("a map");
        };
        assert_eq!(entries[1].1.canonical(), "{b:1}");
    }
}

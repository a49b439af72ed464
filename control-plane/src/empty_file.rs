//! Telling a file caught half-written from one that is empty on purpose.
//!
//! Editors truncate a file before writing its new contents, and so does `>` in a shell, so a
//! watcher can read a file with nothing in it while it is being replaced. Applied, that version
//! would drop every policy or service at once. So a watched file with no content (nothing,
//! blank lines, comments, `---` markers) is refused like a broken one and the last good version
//! stays in force; a file that is meant to hold no documents says so with `[]` (an empty list)
//! as its only content, which no prefix of a real file of documents can be.

/// What a file holds, as far as emptiness goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contents {
    /// Something other than blanks, comments and `---`: the parser decides what.
    Documents,
    /// Only `[]` (besides blanks, comments and markers): no documents, on purpose.
    NoneOnPurpose,
    /// Nothing at all: most likely caught while being written.
    Nothing,
}

/// What `text` holds, line by line: blank lines, comments, and the document markers `---` and
/// `...` say nothing; `[]` says "none"; anything else is content.
pub fn contents(text: &[u8]) -> Contents {
    let Ok(text) = std::str::from_utf8(text) else {
        return Contents::Documents;
    };
    let mut none = false;
    for line in text.lines() {
        match without_comment(line).trim() {
            "" | "---" | "..." => {}
            "[]" => none = true,
            _ => return Contents::Documents,
        }
    }
    if none {
        Contents::NoneOnPurpose
    } else {
        Contents::Nothing
    }
}

/// `line` up to a YAML comment: a `#` at its start or after a blank. (A `#` inside quotes is
/// cut too, but such a line has content before it either way.)
fn without_comment(line: &str) -> &str {
    let mut previous_blank = true;
    for (i, c) in line.char_indices() {
        if c == '#' && previous_blank {
            return &line[..i];
        }
        previous_blank = c == ' ' || c == '\t';
    }
    line
}

/// A watched file with no content: refused, counted as `empty`.
#[derive(Debug, thiserror::Error)]
#[error(
    "{file}: the file is empty (no documents, only blanks or comments): refused, since that is what a file looks like while an editor rewrites it; write `[]` as its only content to mean none on purpose"
)]
pub struct EmptyFile {
    pub file: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blanks_comments_and_markers_are_nothing_and_an_empty_list_is_none_on_purpose() {
        for nothing in [
            "",
            "\n\n",
            "# only a comment\n",
            "---\n# x\n...\n",
            "  \t\n---",
        ] {
            assert_eq!(
                contents(nothing.as_bytes()),
                Contents::Nothing,
                "{nothing:?}"
            );
        }
        for none in ["[]", "[]\n", "# no services yet\n[]  # none\n", "---\n[]\n"] {
            assert_eq!(
                contents(none.as_bytes()),
                Contents::NoneOnPurpose,
                "{none:?}"
            );
        }
        for content in [
            "apiVersion: weft.dev/v1alpha1\n",
            "# header\napiVersion: x\n",
            "[] x\n",
            "key: \"a #b\"\n",
            "[]#x\n",
        ] {
            assert_eq!(
                contents(content.as_bytes()),
                Contents::Documents,
                "{content:?}"
            );
        }
        assert_eq!(contents(&[0xff, 0xfe]), Contents::Documents);
    }
}

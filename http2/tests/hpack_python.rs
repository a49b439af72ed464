//! weft's HPACK against a real peer's: python-hyper's `hpack` package, which Huffman-codes every
//! literal (as the `h2` crate and curl do).
//!
//! Recorded: `data/hpack_python_vectors.txt` holds blocks python's encoder wrote (the script
//! beside it writes them again), and weft's decoder must read the same fields back. No python is
//! needed for that. Live: weft's encoder writes blocks that python's decoder reads, through a
//! `python3` subprocess; without python3 or the module the test says it is skipped, unless
//! `WEFT_REQUIRE_PEERS=1`, which makes that a failure.

use std::io::Write;
use std::process::{Command, Stdio};

use bytes::{Bytes, BytesMut};
use weft_http2::hpack::{Decoder, Encoder, Field, Indexing, default_indexing};

/// A field as the tests compare it: name, value, sent never indexed.
type Expected = (Vec<u8>, Vec<u8>, bool);

/// Reads a `%XX`-escaped string of the vectors' format.
fn unescape(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
            out.push(u8::from_str_radix(hex, 16).expect("%XX"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

fn escape(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if (0x21..=0x7e).contains(&b) && b != b'%' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Reads a `field NAME VALUE` or `never NAME VALUE` line.
fn expected_field(line: &str) -> Option<Expected> {
    let mut parts = line.split(' ');
    let never = match parts.next()? {
        "field" => false,
        "never" => true,
        _ => return None,
    };
    let name = unescape(parts.next().expect("a name"));
    let value = unescape(parts.next().unwrap_or(""));
    Some((name, value, never))
}

fn fields_of(decoder: &mut Decoder, block: Vec<u8>) -> Vec<Expected> {
    let mut fields = Vec::new();
    decoder
        .decode(&Bytes::from(block), usize::MAX, |f: Field| {
            fields.push((f.name.to_vec(), f.value.to_vec(), f.never_index))
        })
        .expect("python's block decodes");
    fields
}

#[test]
fn decodes_blocks_recorded_from_python_hpack() {
    let text = include_str!("data/hpack_python_vectors.txt");
    let mut decoder = Decoder::new(4096);
    let mut session = "";
    // The block being read and the fields it should hold.
    let mut pending: Option<(Vec<u8>, Vec<Expected>)> = None;
    let mut blocks = 0;
    let mut check =
        |decoder: &mut Decoder, pending: Option<(Vec<u8>, Vec<Expected>)>, session: &str| {
            if let Some((block, expected)) = pending {
                assert_eq!(fields_of(decoder, block), expected, "session {session}");
                blocks += 1;
            }
        };
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some(name) = line.strip_prefix("session ") {
            check(&mut decoder, pending.take(), session);
            decoder = Decoder::new(4096);
            session = name;
        } else if let Some(hex) = line.strip_prefix("block ") {
            check(&mut decoder, pending.take(), session);
            pending = Some((unhex(hex), Vec::new()));
        } else {
            let field = expected_field(line).unwrap_or_else(|| panic!("not a vector line: {line}"));
            pending
                .as_mut()
                .expect("a field after a block")
                .1
                .push(field);
        }
    }
    check(&mut decoder, pending.take(), session);
    assert_eq!(blocks, 14, "the blocks of hpack_python_vectors.txt");
}

/// Decodes blocks with python's `hpack.Decoder` (one for all), printing each block's fields in
/// the vectors' format and `end` after each.
const PYTHON_DECODER: &str = r#"
import sys, hpack
from hpack import NeverIndexedHeaderTuple
def esc(b):
    return "".join(chr(c) if 0x21 <= c <= 0x7E and c != 0x25 else "%{:02X}".format(c) for c in b)
d = hpack.Decoder()
d.max_header_list_size = 1 << 30
for line in sys.stdin:
    for h in d.decode(bytes.fromhex(line.strip()), raw=True):
        kind = "never" if isinstance(h, NeverIndexedHeaderTuple) else "field"
        print(kind, esc(h[0]), esc(h[1]))
    print("end")
"#;

/// Whether python3 with `hpack` is here; if not, says why the test is skipped (or fails with
/// `WEFT_REQUIRE_PEERS=1`).
fn python_hpack() -> bool {
    let why = match Command::new("python3")
        .args(["-c", "import hpack"])
        .output()
    {
        Ok(out) if out.status.success() => return true,
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            format!(
                "python3 could not import hpack ({})",
                stderr.lines().last().unwrap_or("").trim()
            )
        }
        Err(error) => format!("python3 did not start ({error})"),
    };
    if std::env::var("WEFT_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!("WEFT_REQUIRE_PEERS=1 but {why}: pip install hpack");
    }
    eprintln!("hpack_python live test skipped: {why} (pip install hpack to run it)");
    false
}

/// A table size to set before a block, and the block's fields.
type Block<'a> = (Option<usize>, Vec<(&'a str, &'a str)>);

#[test]
fn python_hpack_decodes_our_blocks() {
    if !python_hpack() {
        return;
    }
    let long = "y".repeat(300);
    let huge = "z".repeat(5000);
    // (table size to set before the block, the fields).
    let lists: Vec<Block> = vec![
        (
            None,
            vec![
                (":method", "POST"),
                (":scheme", "http"),
                (":path", "/weft.Echo/Say"),
                (":authority", "echo:8080"),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
                ("grpc-timeout", "1S"),
                ("authorization", "Bearer abc"),
            ],
        ),
        (
            None,
            vec![
                (":method", "POST"),
                (":scheme", "http"),
                (":path", "/weft.Echo/Say"),
                (":authority", "echo:8080"),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
                ("cookie", "a=b"),
            ],
        ),
        (
            None,
            vec![
                (":status", "200"),
                ("content-type", "application/grpc"),
                ("x-long", &long),
                ("x-huge", &huge),
            ],
        ),
        (
            Some(128),
            vec![
                (":status", "200"),
                ("content-type", "application/grpc"),
                ("grpc-status", "0"),
                ("grpc-message", ""),
            ],
        ),
        (Some(0), vec![(":status", "404"), ("server", "weft")]),
        (
            Some(4096),
            vec![
                (":status", "404"),
                ("server", "weft"),
                ("x-bytes", "\u{7f}~ %\t"),
            ],
        ),
        (
            None,
            vec![
                (":status", "404"),
                ("server", "weft"),
                ("set-cookie", "id=1"),
            ],
        ),
    ];
    let mut encoder = Encoder::new();
    let mut input = String::new();
    let mut expected = Vec::new();
    for (i, (size, fields)) in lists.iter().enumerate() {
        if let Some(size) = size {
            encoder.set_max_table_size(*size);
            // The down-then-up pair, once.
            if i == 5 {
                encoder.set_max_table_size(64);
                encoder.set_max_table_size(*size);
            }
        }
        let mut block = BytesMut::new();
        encoder.begin_block(&mut block);
        let mut list = Vec::new();
        for (name, value) in fields {
            let indexing = default_indexing(name.as_bytes(), value.as_bytes());
            encoder.field(name.as_bytes(), value.as_bytes(), indexing, &mut block);
            let kind = if indexing == Indexing::Never {
                "never"
            } else {
                "field"
            };
            let line = format!(
                "{kind} {} {}",
                escape(name.as_bytes()),
                escape(value.as_bytes())
            );
            list.push(line.trim_end().to_string());
        }
        input.extend(block.iter().map(|b| format!("{b:02x}")));
        input.push('\n');
        expected.push(list);
    }
    let mut child = Command::new("python3")
        .args(["-c", PYTHON_DECODER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes())
        .expect("python3 reads");
    let out = child.wait_with_output().expect("python3 ends");
    assert!(
        out.status.success(),
        "python's decoder failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("ascii");
    let decoded: Vec<Vec<String>> = text
        .split_terminator("end\n")
        .map(|block| block.lines().map(|l| l.trim_end().to_string()).collect())
        .collect();
    assert_eq!(decoded, expected);
}

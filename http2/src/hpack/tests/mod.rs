//! Tests of the codec as a whole: RFC 7541 Appendix C ([`rfc`]), the limits a hostile peer meets
//! ([`limits`]) and the encoder's choices ([`encoder`]).

mod encoder;
mod limits;
mod rfc;

use bytes::{Bytes, BytesMut};

use super::{DecodeError, Decoder, Encoder, Field, Indexing};

/// The bytes of a hex string; spaces are skipped.
pub(crate) fn unhex(hex: &str) -> Vec<u8> {
    let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).expect("ascii"), 16).expect("hex"))
        .collect()
}

/// Decodes `block` with no list limit, returning the fields as (name, value) strings.
fn decode(decoder: &mut Decoder, block: &[u8]) -> Result<Vec<(String, String)>, DecodeError> {
    decode_fields(decoder, block, usize::MAX).map(|fields| {
        fields
            .into_iter()
            .map(|f| (text(&f.name), text(&f.value)))
            .collect()
    })
}

fn decode_fields(
    decoder: &mut Decoder,
    block: &[u8],
    max: usize,
) -> Result<Vec<Field>, DecodeError> {
    let mut fields = Vec::new();
    decoder.decode(&Bytes::copy_from_slice(block), max, |f| fields.push(f))?;
    Ok(fields)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("test fields are UTF-8")
}

/// A (name, value) list as owned strings, for comparing.
fn list(fields: &[(&str, &str)]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// A table's contents as strings, newest first.
fn entries(table: (Vec<(Bytes, Bytes)>, usize)) -> (Vec<(String, String)>, usize) {
    (
        table.0.iter().map(|(n, v)| (text(n), text(v))).collect(),
        table.1,
    )
}

/// Encodes one block with `indexing` for every field.
fn encode(encoder: &mut Encoder, fields: &[(&str, &str)], indexing: Indexing) -> Vec<u8> {
    let mut dst = BytesMut::new();
    encoder.begin_block(&mut dst);
    for (name, value) in fields {
        encoder.field(name.as_bytes(), value.as_bytes(), indexing, &mut dst);
    }
    dst.to_vec()
}

//! HPACK (RFC 7541): header compression for HTTP/2.
//!
//! A header block is a list of representations, each either an index into the tables (one byte
//! for a field seen before) or a literal, which may add the field to the dynamic table. Both sides
//! keep the same dynamic table: the [`Encoder`] decides what goes in, the [`Decoder`] repeats each
//! insertion as it reads the block. A decoder that misses one block is out of step for the rest
//! of the connection, which is why every decoding error but [`DecodeError::ListTooLarge`] is a
//! connection error.
//!
//! The files, one concept each: `static_table` (RFC 7541 Appendix A), `dynamic_table`
//! (section 2.3.2 and 4, shared by both sides), `integer` (section 5.1), `huffman` and
//! `huffman_code` (section 5.2 and Appendix B), `decoder`, `encoder`.
//!
//! The encoder never Huffman-codes: between two sidecars CPU matters more than a few bytes, and a
//! repeated field is indexed to one byte anyway. The decoder reads Huffman-coded strings, which
//! other peers (the `h2` crate, curl, browsers) send for nearly every literal.

mod decoder;
mod dynamic_table;
mod encoder;
mod huffman;
mod huffman_code;
mod integer;
mod static_table;

pub use decoder::{DecodeError, Decoder, Field};
pub use encoder::{Encoder, Indexing, default_indexing};

#[cfg(test)]
mod tests;

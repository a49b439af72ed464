//! HTTP/1.1 as the app speaks it, read and written by weft itself.
//!
//! A sidecar's HTTP/1.1 work is narrow: read a head, decide, write it on. A general-purpose
//! library pays per request for what a proxy never needs (a channel and a task per connection,
//! buffers held by idle connections, a header map rebuilt at each hop); this codec does only the
//! proxy's part, on top of `httparse` for the head's syntax.
//!
//! It is strict where RFC 9112 says a recipient must be, because a proxy that reads a message's
//! length differently from the app behind it lets a caller smuggle a second request past every
//! check (request smuggling): a message with both `Content-Length` and `Transfer-Encoding`, with
//! two different lengths, with a folded header line (obs-fold), a bare CR, a transfer coding other
//! than a final `chunked`, or a malformed chunk is refused ([`H1Error`]) and never forwarded.
//!
//! - [`buffers`]: the buffers a connection holds only while it carries a message.
//! - [`head`]: request and response heads, and how long their bodies are ([`Framing`]).
//! - [`packed`]: where a head's bytes and small body chunks live while their message is in
//!   flight.
//! - [`chunked`]: the chunked transfer coding, read incrementally, trailers included.
//! - [`encode`]: heads and chunks written for the other side.

pub mod buffers;
pub mod chunked;
pub mod encode;
pub mod error;
pub mod head;
pub mod packed;

pub use chunked::{Chunk, ChunkedDecoder};
pub use encode::{encode_chunk, encode_last_chunk, encode_request_head, encode_response_head};
pub use error::H1Error;
pub use head::{
    Framing, RequestHead, ResponseHead, parse_request, parse_response, read_request, read_response,
};

//! Why an HTTP/1.1 message was refused: one variant per rule, each with the `reason` label its
//! refusal is counted under.

/// A message weft refuses to read (and so never forwards).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H1Error {
    /// The head is not HTTP/1.x: request or status line, a header name or value.
    MalformedHead,
    /// A header line starts with a space or tab (obs-fold, RFC 9112 5.2).
    ObsFold,
    /// A CR not followed by LF (RFC 9112 2.2).
    BareCr,
    /// The head is larger than the limit, or has more header fields than the limit.
    HeadTooLarge,
    /// Both `Content-Length` and `Transfer-Encoding` (RFC 9112 6.1).
    ContentLengthWithTransferEncoding,
    /// `Content-Length` values that differ, or are not a decimal number (RFC 9112 6.3).
    InvalidContentLength,
    /// A transfer coding other than a single, final `chunked`, or any in an HTTP/1.0 request.
    UnsupportedTransferEncoding,
    /// An HTTP/1.1 request with no `Host`, or with several (RFC 9112 3.2).
    InvalidHost,
    /// A chunk size that is not 1 to 16 hex digits, or chunk framing without CRLF.
    InvalidChunk,
    /// A chunk extension longer than [`crate::http::h1::chunked::MAX_CHUNK_EXTENSION`].
    ChunkExtensionTooLong,
    /// A trailer section that does not parse, or over its limit.
    InvalidTrailers,
    /// The connection ended before the message did.
    Truncated,
}

impl H1Error {
    /// The `reason` label a refusal is counted under.
    pub fn reason(self) -> &'static str {
        match self {
            H1Error::MalformedHead => "malformed_request_head",
            H1Error::ObsFold => "obs_fold",
            H1Error::BareCr => "bare_cr",
            H1Error::HeadTooLarge => "request_head_too_large",
            H1Error::ContentLengthWithTransferEncoding => "content_length_with_transfer_encoding",
            H1Error::InvalidContentLength => "invalid_content_length",
            H1Error::UnsupportedTransferEncoding => "unsupported_transfer_encoding",
            H1Error::InvalidHost => "invalid_host",
            H1Error::InvalidChunk => "invalid_chunk",
            H1Error::ChunkExtensionTooLong => "chunk_extension_too_long",
            H1Error::InvalidTrailers => "invalid_trailers",
            H1Error::Truncated => "truncated_message",
        }
    }
}

impl std::fmt::Display for H1Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            H1Error::MalformedHead => "the message head is not valid HTTP/1.1",
            H1Error::ObsFold => "a header line is folded (obs-fold), which RFC 9112 forbids",
            H1Error::BareCr => "a CR is not followed by LF",
            H1Error::HeadTooLarge => "the message head is over its size or field-count limit",
            H1Error::ContentLengthWithTransferEncoding => {
                "the message has both Content-Length and Transfer-Encoding"
            }
            H1Error::InvalidContentLength => {
                "Content-Length is not one decimal number (different values, or not a number)"
            }
            H1Error::UnsupportedTransferEncoding => {
                "Transfer-Encoding is not a single, final chunked"
            }
            H1Error::InvalidHost => "an HTTP/1.1 request needs exactly one Host header",
            H1Error::InvalidChunk => "a chunk size or chunk framing is invalid",
            H1Error::ChunkExtensionTooLong => "a chunk extension is over its limit",
            H1Error::InvalidTrailers => "the trailer section is invalid or over its limit",
            H1Error::Truncated => "the connection ended in the middle of the message",
        })
    }
}

impl std::error::Error for H1Error {}

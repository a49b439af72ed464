//! A failed call to the control plane, as one line a person can read.
//!
//! tonic's own `Display` of a `Status` quotes the message and appends the `Debug` dump of its
//! source (`source: tonic::transport::Error(Transport, ConnectError(…))`). What a person needs is
//! the chain of causes in words, once each: `unavailable: cannot connect to the control plane at
//! 10.0.0.1:15010: 10.0.0.1:15010 (10.0.0.1:15010): connection refused (os error 111)`.

use std::error::Error;

use weft_api::policy_defaults::GRPC_CODES;

/// `code: message: cause: cause…`, each part once.
pub fn describe(status: &tonic::Status) -> String {
    let mut parts = vec![code_name(status.code()).to_owned()];
    if !status.message().is_empty() {
        parts.push(status.message().to_owned());
    }
    let mut source = status.source();
    while let Some(e) = source {
        parts.push(e.to_string());
        source = e.source();
    }
    join_causes(&parts)
}

/// The name policy documents and the docs use for a gRPC code (`permission-denied`).
pub fn code_name(code: tonic::Code) -> &'static str {
    GRPC_CODES
        .iter()
        .find(|(_, c)| *c == code as u32)
        .map_or("unknown", |(name, _)| name)
}

/// Joins causes with `: `, leaving out one a previous part already says (wrappers often repeat
/// their source's text: `transport error`, then `error trying to connect: …`).
fn join_causes(parts: &[String]) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for part in parts {
        let part = part.trim();
        if part.is_empty() || kept.iter().any(|k| k.contains(part)) {
            continue;
        }
        kept.push(part);
    }
    kept.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapper(&'static str, Option<Box<dyn Error + Send + Sync>>);
    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl Error for Wrapper {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|e| e as &(dyn Error + 'static))
        }
    }

    #[test]
    fn a_status_is_its_code_and_causes_once_each() {
        let io = std::io::Error::other("cannot connect to the control plane at cp:15010: refused");
        let chain = Wrapper(
            "transport error",
            Some(Box::new(Wrapper(
                "client error (Connect)",
                Some(Box::new(io)),
            ))),
        );
        let mut status = tonic::Status::from_error(Box::new(chain));
        assert_eq!(
            describe(&status),
            "unknown: transport error: client error (Connect): cannot connect to the control plane at cp:15010: refused"
        );
        status = tonic::Status::permission_denied("token not valid");
        assert_eq!(describe(&status), "permission-denied: token not valid");
        assert!(!describe(&status).contains("Some("));
    }
}

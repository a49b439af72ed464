//! Naming TLS handshake failures.
//!
//! A refused handshake is a security event: the operator needs to know whether the peer had no
//! certificate, a certificate from another CA, an expired one, or the wrong identity. Each
//! failure gets a short stable `reason` (a metric label) and a sentence for the log.

use std::io;

use rustls::{AlertDescription, CertificateError};

use super::verify::{ForeignTrustDomain, IdentityMismatch};

/// A failed handshake, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeFailure {
    /// Stable label for metrics: `no_client_certificate`, `unknown_ca`, `certificate_expired`…
    pub reason: &'static str,
    pub detail: String,
}

impl std::fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

/// Classifies an error returned by a tokio-rustls handshake.
pub fn classify(err: &io::Error) -> HandshakeFailure {
    if let Some(tls) = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return classify_rustls(tls);
    }
    let reason = match err.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => "closed_by_peer",
        io::ErrorKind::TimedOut => "timeout",
        _ => "io_error",
    };
    HandshakeFailure {
        reason,
        detail: err.to_string(),
    }
}

pub fn classify_rustls(err: &rustls::Error) -> HandshakeFailure {
    use rustls::Error as E;
    let (reason, detail) = match err {
        E::NoCertificatesPresented => (
            "no_client_certificate",
            "the client presented no certificate".to_owned(),
        ),
        E::InvalidCertificate(cert) => classify_certificate(cert),
        E::AlertReceived(alert) => (
            "refused_by_peer",
            format!("the peer refused the handshake: {}", describe_alert(*alert)),
        ),
        E::PeerIncompatible(why) => ("incompatible_peer", format!("incompatible peer: {why:?}")),
        E::NoApplicationProtocol => (
            "no_application_protocol",
            "the peer offered no protocol (ALPN) this side speaks".to_owned(),
        ),
        E::InvalidMessage(_)
        | E::InappropriateMessage { .. }
        | E::InappropriateHandshakeMessage { .. } => {
            ("malformed", format!("not a valid TLS 1.3 handshake: {err}"))
        }
        other => ("other", other.to_string()),
    };
    HandshakeFailure { reason, detail }
}

fn classify_certificate(err: &CertificateError) -> (&'static str, String) {
    use CertificateError as C;
    match err {
        C::UnknownIssuer => (
            "unknown_ca",
            "the peer's certificate is not signed by a trusted root (unknown CA)".to_owned(),
        ),
        C::Expired | C::ExpiredContext { .. } => (
            "certificate_expired",
            format!("the peer's certificate has expired ({err})"),
        ),
        C::NotValidYet | C::NotValidYetContext { .. } => (
            "certificate_not_yet_valid",
            format!("the peer's certificate is not valid yet ({err})"),
        ),
        C::Other(other) => {
            if let Some(mismatch) = other.0.downcast_ref::<IdentityMismatch>() {
                ("identity_mismatch", mismatch.to_string())
            } else if let Some(foreign) = other.0.downcast_ref::<ForeignTrustDomain>() {
                ("foreign_trust_domain", foreign.to_string())
            } else {
                ("bad_certificate", format!("bad peer certificate: {other}"))
            }
        }
        other => ("bad_certificate", format!("bad peer certificate: {other}")),
    }
}

fn describe_alert(alert: AlertDescription) -> String {
    match alert {
        AlertDescription::CertificateRequired => {
            "certificate required (this side presented no certificate)".to_owned()
        }
        AlertDescription::UnknownCA => "unknown CA (it does not trust our certificate)".to_owned(),
        AlertDescription::CertificateExpired => {
            "certificate expired (it says our certificate has expired)".to_owned()
        }
        AlertDescription::BadCertificate => "bad certificate".to_owned(),
        AlertDescription::NoApplicationProtocol => "no common application protocol".to_owned(),
        AlertDescription::ProtocolVersion => {
            "protocol version (it does not speak TLS 1.3)".to_owned()
        }
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn wrap(e: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn each_refusal_has_its_own_reason() {
        let cases = [
            (
                rustls::Error::NoCertificatesPresented,
                "no_client_certificate",
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
                "unknown_ca",
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::Expired),
                "certificate_expired",
            ),
            (
                rustls::Error::AlertReceived(AlertDescription::CertificateRequired),
                "refused_by_peer",
            ),
        ];
        for (err, reason) in cases {
            assert_eq!(classify(&wrap(err)).reason, reason);
        }
        let mismatch = IdentityMismatch {
            expected: "spiffe://td/ns/a/sa/b".parse().unwrap(),
            presented: "spiffe://td/ns/a/sa/c".to_owned(),
        };
        let err = rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
            Arc::new(mismatch),
        )));
        let failure = classify(&wrap(err));
        assert_eq!(failure.reason, "identity_mismatch");
        assert_eq!(
            failure.detail,
            "peer presented identity spiffe://td/ns/a/sa/c, expected spiffe://td/ns/a/sa/b"
        );
        assert_eq!(
            classify(&io::Error::from(io::ErrorKind::UnexpectedEof)).reason,
            "closed_by_peer"
        );
    }
}

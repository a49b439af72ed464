//! Who is watching: the mesh identity of a discovery caller, from its TLS client certificate.
//!
//! Discovery answers say which endpoints stand behind every service and which identities they
//! must prove, and carry each service's policy: that is a map of the mesh, so only the mesh may
//! read it. A proxy asks for its certificate with a token (Identity/Certify, no certificate
//! needed) and then watches with that certificate. The TLS handshake already checked the chain
//! against the CA's trust bundle (every root, so both sides of a root rotation pass); here the
//! leaf must name a SPIFFE identity of this trust domain and still be valid. The identity keys
//! the per-caller stream limit ([`super::stream_limit`]).

use std::time::SystemTime;

use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use weft_certs::SpiffeId;

/// An authenticated discovery caller, put in the request's extensions by the gRPC router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub identity: SpiffeId,
    /// When the certificate the connection was opened with expires: its watches end then.
    pub not_after: SystemTime,
}

/// Why a discovery call was refused as unauthenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unauthenticated {
    #[error(
        "discovery needs the caller's mesh certificate: this connection presented none (a proxy watches with the certificate it got from Identity/Certify)"
    )]
    NoCertificate,
    #[error("the client certificate names no SPIFFE identity: {0}")]
    NoIdentity(String),
    #[error("the client certificate names {0}, which is not of trust domain {1}")]
    ForeignTrustDomain(SpiffeId, String),
    #[error("the client certificate of {0} expired at {1}; reconnect with the current one")]
    Expired(SpiffeId, String),
}

impl Unauthenticated {
    /// The `reason` label of `weft_discovery_refusals_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Unauthenticated::NoCertificate => "no_client_certificate",
            Unauthenticated::NoIdentity(_) => "no_identity",
            Unauthenticated::ForeignTrustDomain(..) => "foreign_trust_domain",
            Unauthenticated::Expired(..) => "expired_certificate",
        }
    }
}

/// The caller of a request that arrived on the gRPC port, from its connection's certificate.
pub fn authenticate(
    extensions: &http::Extensions,
    trust_domain: &str,
    now: SystemTime,
) -> Result<Caller, Unauthenticated> {
    let certs = extensions
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(TlsConnectInfo::peer_certs)
        .ok_or(Unauthenticated::NoCertificate)?;
    let leaf = certs.first().ok_or(Unauthenticated::NoCertificate)?;
    let info = weft_certs::inspect(leaf).map_err(|e| Unauthenticated::NoIdentity(e.to_string()))?;
    let identity = info.identity.ok_or_else(|| {
        Unauthenticated::NoIdentity(format!(
            "subject {:?}, URIs {:?}",
            info.subject, info.uri_sans
        ))
    })?;
    if identity.trust_domain() != trust_domain {
        return Err(Unauthenticated::ForeignTrustDomain(
            identity,
            trust_domain.to_owned(),
        ));
    }
    if info.not_after <= now {
        return Err(Unauthenticated::Expired(
            identity,
            weft_certs::format_time(info.not_after),
        ));
    }
    Ok(Caller {
        identity,
        not_after: info.not_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_without_tls_connect_info_has_no_certificate() {
        let err =
            authenticate(&http::Extensions::new(), "cluster.local", SystemTime::now()).unwrap_err();
        assert_eq!(err, Unauthenticated::NoCertificate);
        assert_eq!(err.reason(), "no_client_certificate");
        assert!(err.to_string().contains("presented none"), "{err}");
    }
}

//! The cryptography of every weft TLS connection, in one place.
//!
//! Between sidecars and to the control plane, weft offers and prefers the hybrid post-quantum key
//! exchange `X25519MLKEM768` (X25519 combined with ML-KEM-768, draft-ietf-tls-ecdhe-mlkem): a
//! recording of today's mesh traffic cannot be decrypted later by a quantum computer ("harvest
//! now, decrypt later"). Linkerd does the same by default since 2.19. Peers that do not speak it
//! (an older weft, `curl`, an app's own client) negotiate X25519 or a NIST curve as before, at the
//! cost of one extra round trip only when the client guessed a group the server does not have.
//!
//! Only the key exchange comes from aws-lc-rs (ring has no ML-KEM); signatures, certificate
//! verification and the record layer stay on ring, which the rest of weft (rcgen, the CA) uses,
//! so the data path is unchanged. aws-lc-rs builds with the C compiler alone on Linux.
//!
//! Both rustls providers are compiled in, so rustls cannot choose a process-wide default by
//! itself: code that builds configs without naming a provider (kube's client) needs
//! [`install_tls_provider`] first.

use rustls::crypto::{CryptoProvider, aws_lc_rs, ring};

/// ring's provider with `X25519MLKEM768` offered first.
pub fn tls_provider() -> CryptoProvider {
    let mut provider = ring::default_provider();
    provider
        .kx_groups
        .insert(0, aws_lc_rs::kx_group::X25519MLKEM768);
    provider
}

/// Makes [`tls_provider`] the process-wide default for libraries that build TLS configs without
/// naming a provider. Keeps an earlier default (a second call, or one a test installed).
pub fn install_tls_provider() {
    let _ = tls_provider().install_default();
}

#[cfg(test)]
mod tests {
    use rustls::NamedGroup;

    use super::*;

    #[test]
    fn offers_the_hybrid_post_quantum_group_first_then_the_classical_ones() {
        let groups: Vec<NamedGroup> = tls_provider().kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(
            groups,
            [
                NamedGroup::X25519MLKEM768,
                NamedGroup::X25519,
                NamedGroup::secp256r1,
                NamedGroup::secp384r1
            ]
        );
    }
}

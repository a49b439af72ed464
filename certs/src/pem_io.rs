//! PEM in and out. Reading goes through `rustls-pki-types` (the parser rustls itself uses);
//! writing through the `pem` crate rcgen already depends on.

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::error::PemError;

/// Every `CERTIFICATE` block in `text`, in order. `what` names the input in errors
/// (a file path, a flag), so the message says where the bad PEM came from.
pub fn certificates_from_pem(
    text: &[u8],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs = CertificateDer::pem_slice_iter(text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError::Invalid {
            what: what.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(PemError::Missing {
            what: what.to_owned(),
            label: "CERTIFICATE",
        });
    }
    Ok(certs)
}

/// Concatenated `CERTIFICATE` blocks.
pub fn certificates_to_pem<'a>(certs: impl IntoIterator<Item = &'a CertificateDer<'a>>) -> String {
    certs
        .into_iter()
        .map(|der| encode("CERTIFICATE", der.as_ref()))
        .collect()
}

/// One PEM block with Unix line endings.
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(label, der.to_vec()), config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_input_when_there_is_no_certificate() {
        let err = certificates_from_pem(b"hello", "/etc/weft/roots.pem").unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/weft/roots.pem: no CERTIFICATE block found"
        );
    }
}

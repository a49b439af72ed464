//! `weft_certs::SpiffeId`: `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`, read
//! from flags, policy files and certificates.
//!
//! Checks: no panic; an accepted ID displays exactly as it was written and parses back equal;
//! building one from its parts (`SpiffeId::new`, here the input's `/`-separated fields) accepts
//! what parsing its display accepts.

#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_certs::SpiffeId;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match text.parse::<SpiffeId>() {
        Ok(id) => {
            assert_eq!(id.to_string(), text);
            assert_eq!(id.to_string().parse::<SpiffeId>().as_ref(), Ok(&id));
            let parts = SpiffeId::new(id.trust_domain(), id.namespace(), id.service_account());
            assert_eq!(parts.as_ref(), Ok(&id));
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
    let mut fields = text.splitn(3, '/');
    let (Some(trust_domain), Some(namespace), Some(service_account)) =
        (fields.next(), fields.next(), fields.next())
    else {
        return;
    };
    if let Ok(id) = SpiffeId::new(trust_domain, namespace, service_account) {
        let shown = id.to_string();
        assert_eq!(shown.parse::<SpiffeId>().as_ref(), Ok(&id), "{shown:?}");
    }
});

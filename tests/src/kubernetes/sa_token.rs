//! Kubernetes service-account tokens for tests: an issuer key (ES256), its JWK Set as
//! `/openid/v1/jwks` serves it, and tokens with the claim shape the API server gives a projected
//! `serviceAccountToken` (audience, expiry, `kubernetes.io` namespace/pod/service account,
//! `sub: system:serviceaccount:<ns>:<sa>`).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

pub struct Issuer {
    key: EcdsaKeyPair,
    pub kid: String,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Issuer {
    pub fn new(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("a P-256 key");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("the key just made");
        Self {
            key,
            kid: kid.to_owned(),
        }
    }

    /// The JWK Set of `issuers`, as JSON.
    pub fn jwks(issuers: &[&Issuer]) -> String {
        let keys: Vec<serde_json::Value> = issuers
            .iter()
            .map(|issuer| {
                let point = issuer.key.public_key().as_ref();
                serde_json::json!({"use": "sig", "kty": "EC", "crv": "P-256", "kid": issuer.kid,
                    "alg": "ES256", "x": b64(&point[1..33]), "y": b64(&point[33..])})
            })
            .collect();
        serde_json::json!({ "keys": keys }).to_string()
    }

    /// A projected token for `namespace/account`, valid from now for `lifetime_secs` (negative:
    /// already expired), for `audience`.
    pub fn token(
        &self,
        namespace: &str,
        account: &str,
        audience: &str,
        lifetime_secs: i64,
    ) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs() as i64;
        let claims = serde_json::json!({
            "aud": [audience],
            "exp": now + lifetime_secs,
            "iat": now - 3600 * i64::from(lifetime_secs < 0),
            "iss": ISSUER,
            "jti": "3a7c1f0e-5d2b-4e8f-9c1a-2b3c4d5e6f70",
            "kubernetes.io": {
                "namespace": namespace,
                "node": {"name": "node-1", "uid": "1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d"},
                "pod": {"name": format!("{account}-7d9f8c6b5-x2x7q"), "uid": "9f8e7d6c-5b4a-4c3d-2e1f-0a9b8c7d6e5f"},
                "serviceaccount": {"name": account, "uid": "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"},
                "warnafter": now + lifetime_secs - 600
            },
            "nbf": now - 3600 * i64::from(lifetime_secs < 0),
            "sub": format!("system:serviceaccount:{namespace}:{account}")
        });
        let header = serde_json::json!({"alg": "ES256", "kid": self.kid});
        let signed = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = self
            .key
            .sign(&SystemRandom::new(), signed.as_bytes())
            .expect("signing");
        format!("{signed}.{}", b64(signature.as_ref()))
    }
}

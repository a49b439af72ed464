//! Tokens signed here with the claim shape real projected service-account tokens have (as the
//! API server issues them for a `serviceAccountToken` volume projection with `audience: weft`,
//! Kubernetes 1.29: `aud`, `exp`, `iat`, `iss`, `jti`, `kubernetes.io` with the namespace, node,
//! pod and service account names and uids and `warnafter`, `nbf`, `sub`).

use super::*;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RsaKeyPair};

const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const NOW: u64 = 1_796_000_000;
/// A 2048-bit RSA key made for these tests (`openssl genpkey -algorithm RSA`, then
/// `openssl pkey -traditional -outform DER`): PKCS#1 DER.
const RSA_KEY: &[u8] = include_bytes!("../testdata/rsa2048.der");

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

impl Signer {
    fn rsa() -> Self {
        Signer::Rsa(RsaKeyPair::from_der(RSA_KEY).unwrap())
    }

    fn ec() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        Signer::Ec(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .unwrap(),
        )
    }

    fn jwk(&self, kid: &str) -> serde_json::Value {
        match self {
            Signer::Rsa(key) => {
                let public: ring::rsa::PublicKeyComponents<Vec<u8>> = key.public().into();
                serde_json::json!({"use": "sig", "kty": "RSA", "kid": kid, "alg": "RS256",
                    "n": b64(&public.n), "e": b64(&public.e)})
            }
            Signer::Ec(key) => {
                let point = key.public_key().as_ref();
                serde_json::json!({"use": "sig", "kty": "EC", "crv": "P-256", "kid": kid,
                    "alg": "ES256", "x": b64(&point[1..33]), "y": b64(&point[33..])})
            }
        }
    }

    fn alg(&self) -> &'static str {
        match self {
            Signer::Rsa(_) => "RS256",
            Signer::Ec(_) => "ES256",
        }
    }

    fn sign(&self, kid: &str, claims: &serde_json::Value) -> String {
        let header = serde_json::json!({"alg": self.alg(), "kid": kid});
        let signed = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let rng = SystemRandom::new();
        let signature = match self {
            Signer::Rsa(key) => {
                let mut out = vec![0; key.public().modulus_len()];
                key.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    signed.as_bytes(),
                    &mut out,
                )
                .unwrap();
                out
            }
            Signer::Ec(key) => key.sign(&rng, signed.as_bytes()).unwrap().as_ref().to_vec(),
        };
        format!("{signed}.{}", b64(&signature))
    }
}

/// A projected token for `demo/web`, valid for an hour from NOW - 60 s.
fn claims() -> serde_json::Value {
    serde_json::json!({
        "aud": ["weft"],
        "exp": NOW + 3540,
        "iat": NOW - 60,
        "iss": ISSUER,
        "jti": "6d9d4b8e-6b0b-4bd1-9a0c-2f3e1c9b7a55",
        "kubernetes.io": {
            "namespace": "demo",
            "node": {"name": "node-1", "uid": "3f1e0a8c-8d43-4a43-b2b5-5f6d8d0c9e11"},
            "pod": {"name": "web-7d9f8c6b5-x2x7q", "uid": "a4c0e7b2-1e45-4d7e-9a56-0c1b2d3e4f50"},
            "serviceaccount": {"name": "web", "uid": "e2f3a4b5-c6d7-4e8f-9a0b-1c2d3e4f5a6b"},
            "warnafter": NOW + 3540 - 600
        },
        "nbf": NOW - 60,
        "sub": "system:serviceaccount:demo:web"
    })
}

fn rules() -> TokenRules {
    TokenRules {
        issuer: ISSUER.to_owned(),
        audience: "weft".to_owned(),
        trust_domain: "cluster.local".to_owned(),
    }
}

fn at(unix: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix)
}

fn keys(signers: &[(&Signer, &str)]) -> Jwks {
    let set =
        serde_json::json!({"keys": signers.iter().map(|(s, kid)| s.jwk(kid)).collect::<Vec<_>>()});
    Jwks::from_json(set.to_string().as_bytes()).unwrap()
}

#[test]
fn accepts_a_projected_token_signed_rs256_or_es256() {
    for signer in [Signer::rsa(), Signer::ec()] {
        let jwks = keys(&[(&signer, "key-1")]);
        let token = signer.sign("key-1", &claims());
        let accepted = validate(&token, &jwks, &rules(), at(NOW)).unwrap();
        assert_eq!(
            accepted.identity.to_string(),
            "spiffe://cluster.local/ns/demo/sa/web",
            "{}",
            signer.alg()
        );
        assert_eq!(accepted.pod.as_deref(), Some("web-7d9f8c6b5-x2x7q"));
        assert_eq!(accepted.expires, at(NOW + 3540));
    }
}

#[test]
fn each_refusal_has_its_own_reason() {
    let signer = Signer::ec();
    let jwks = keys(&[(&signer, "key-1")]);
    let with = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut c = claims();
        edit(&mut c);
        signer.sign("key-1", &c)
    };
    let cases: Vec<(&str, String, SystemTime)> = vec![
        (
            "wrong_token_audience",
            with(&|c| c["aud"] = serde_json::json!(["https://kubernetes.default.svc"])),
            at(NOW),
        ),
        (
            "wrong_token_issuer",
            with(&|c| c["iss"] = "https://other.example".into()),
            at(NOW),
        ),
        (
            "expired_token",
            claims_token(&signer),
            at(NOW + 3540 + LEEWAY.as_secs() + 1),
        ),
        (
            "token_not_yet_valid",
            claims_token(&signer),
            at(NOW - 60 - LEEWAY.as_secs() - 1),
        ),
        (
            "not_a_service_account",
            with(&|c| c["sub"] = "system:serviceaccount:demo:admin".into()),
            at(NOW),
        ),
        (
            "not_a_service_account",
            with(&|c| {
                c.as_object_mut().unwrap().remove("kubernetes.io");
            }),
            at(NOW),
        ),
        (
            "unknown_token_key",
            signer.sign("key-2", &claims()),
            at(NOW),
        ),
        ("malformed_token", "not-a-token".to_owned(), at(NOW)),
        (
            "malformed_token",
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            at(NOW),
        ),
    ];
    for (reason, token, now) in cases {
        let refused = validate(&token, &jwks, &rules(), now).unwrap_err();
        assert_eq!(refused.reason(), reason, "{refused}");
    }
}

fn claims_token(signer: &Signer) -> String {
    signer.sign("key-1", &claims())
}

#[test]
fn a_changed_payload_or_a_foreign_key_fails_the_signature() {
    let signer = Signer::rsa();
    let jwks = keys(&[(&signer, "key-1")]);
    let token = signer.sign("key-1", &claims());
    let parts: Vec<&str> = token.split('.').collect();
    let mut admin = claims();
    admin["kubernetes.io"]["serviceaccount"]["name"] = "admin".into();
    admin["sub"] = "system:serviceaccount:demo:admin".into();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(admin.to_string().as_bytes()),
        parts[2]
    );
    let refused = validate(&forged, &jwks, &rules(), at(NOW)).unwrap_err();
    assert_eq!(refused, TokenError::BadSignature);
    // Signed by another key under the same kid.
    let other = Signer::ec();
    let impostor = other.sign("key-1", &claims());
    assert_eq!(
        validate(&impostor, &jwks, &rules(), at(NOW)).unwrap_err(),
        TokenError::BadSignature
    );
}

#[test]
fn unsigned_tokens_are_refused() {
    let jwks = keys(&[(&Signer::ec(), "key-1")]);
    let header = b64(br#"{"alg":"none","kid":"key-1"}"#);
    let token = format!("{header}.{}.", b64(claims().to_string().as_bytes()));
    let refused = validate(&token, &jwks, &rules(), at(NOW)).unwrap_err();
    assert_eq!(refused.reason(), "unsupported_token_algorithm", "{refused}");
}

#[test]
fn a_jwk_set_with_a_rotated_key_finds_each_by_kid() {
    let (old, new) = (Signer::rsa(), Signer::ec());
    let jwks = keys(&[(&old, "old"), (&new, "new")]);
    assert_eq!(jwks.len(), 2);
    for (signer, kid) in [(&old, "old"), (&new, "new")] {
        let token = signer.sign(kid, &claims());
        assert!(validate(&token, &jwks, &rules(), at(NOW)).is_ok(), "{kid}");
    }
    // Keys of other kinds are skipped; a broken usable key is an error.
    let mixed = r#"{"keys":[{"kty":"oct","kid":"x","k":"AAAA"},{"kty":"EC","crv":"P-256","kid":"bad","x":"AA","y":"AA"}]}"#;
    assert!(
        Jwks::from_json(mixed.as_bytes())
            .unwrap_err()
            .contains("32-byte")
    );
}

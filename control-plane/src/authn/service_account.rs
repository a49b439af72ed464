//! Kubernetes service-account tokens, validated offline against the cluster's OIDC issuer keys
//! (`/openid/v1/jwks`), so a large cluster's certificate requests do not each cost the API server
//! a TokenReview.
//!
//! A projected token is a JWS (RFC 7515) signed by the API server (RS256 by default, ES256 when
//! the cluster's key is EC). It is accepted when its signature verifies with the issuer key its
//! `kid` names, it was issued by the configured issuer for the `weft` audience, it is within its
//! validity (`nbf` … `exp`, with a small leeway for clock skew), and its `kubernetes.io` claims
//! name a service account, which becomes the identity `spiffe://<td>/ns/<ns>/sa/<sa>`. Every
//! refusal has its own [`TokenError`] and metric reason.
//!
//! What offline validation cannot know, and TokenReview does: that the pod the token was bound to
//! has since been deleted. Tokens are short-lived (an hour by default) for that reason.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature;
use serde::Deserialize;
use weft_certs::SpiffeId;

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY: Duration = Duration::from_secs(60);

/// What a token must say to be accepted.
#[derive(Debug, Clone)]
pub struct TokenRules {
    /// The cluster's service-account issuer (`--service-account-issuer` of the API server).
    pub issuer: String,
    /// The audience the proxy's projected token is bound to.
    pub audience: String,
    /// The trust domain of the identities issued.
    pub trust_domain: String,
}

/// A token that passed: whom it names and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountToken {
    pub identity: SpiffeId,
    /// The pod the token is bound to, when it is (projected tokens are).
    pub pod: Option<String>,
    pub expires: SystemTime,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a JWS (header.payload.signature): {0}")]
    Malformed(String),
    #[error("the token is signed with {0}, not RS256 or ES256")]
    UnsupportedAlgorithm(String),
    #[error(
        "no issuer key has kid {0:?} (the issuer's keys were rotated, or the token is foreign)"
    )]
    UnknownKey(String),
    #[error("the token's signature does not verify with the issuer key it names")]
    BadSignature,
    #[error("the token was issued by {found:?}, not {expected:?}")]
    WrongIssuer { found: String, expected: String },
    #[error("the token is for audience {found:?}, not {expected:?}")]
    WrongAudience {
        found: Vec<String>,
        expected: String,
    },
    #[error("the token expired at unix time {0}")]
    Expired(u64),
    #[error("the token is not valid before unix time {0}")]
    NotYetValid(u64),
    #[error("the token does not name a service account: {0}")]
    NotAServiceAccount(String),
}

impl TokenError {
    /// The `result` label of `weft_certify_requests_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Malformed(_) => "malformed_token",
            TokenError::UnsupportedAlgorithm(_) => "unsupported_token_algorithm",
            TokenError::UnknownKey(_) => "unknown_token_key",
            TokenError::BadSignature => "bad_token_signature",
            TokenError::WrongIssuer { .. } => "wrong_token_issuer",
            TokenError::WrongAudience { .. } => "wrong_token_audience",
            TokenError::Expired(_) => "expired_token",
            TokenError::NotYetValid(_) => "token_not_yet_valid",
            TokenError::NotAServiceAccount(_) => "not_a_service_account",
        }
    }
}

/// The issuer's public keys (a JWK Set, RFC 7517, as `/openid/v1/jwks` serves it).
#[derive(Debug, Clone, Default)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Debug, Clone)]
struct Jwk {
    kid: String,
    key: PublicKey,
}

#[derive(Debug, Clone)]
enum PublicKey {
    /// RS256: modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// ES256: the uncompressed point (0x04 ‖ x ‖ y).
    EcP256(Vec<u8>),
}

#[derive(Deserialize)]
struct JwkSetJson {
    keys: Vec<JwkJson>,
}

#[derive(Deserialize)]
struct JwkJson {
    kty: String,
    #[serde(default)]
    kid: String,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

impl Jwks {
    /// Parses a JWK Set. Keys of kinds a service-account issuer does not use are skipped; a
    /// usable key that is malformed is an error (it would silently refuse every token).
    pub fn from_json(json: &[u8]) -> Result<Self, String> {
        let set: JwkSetJson =
            serde_json::from_slice(json).map_err(|e| format!("not a JWK Set: {e}"))?;
        let mut keys = Vec::new();
        for (i, jwk) in set.keys.into_iter().enumerate() {
            let field = |value: Option<String>, name: &str| {
                let text = value.ok_or_else(|| format!("keys[{i}] ({}): no {name:?}", jwk.kid))?;
                URL_SAFE_NO_PAD
                    .decode(text.trim_end_matches('='))
                    .map_err(|e| format!("keys[{i}].{name}: not base64url: {e}"))
            };
            let key = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
                ("RSA", _) => PublicKey::Rsa {
                    n: field(jwk.n, "n")?,
                    e: field(jwk.e, "e")?,
                },
                ("EC", Some("P-256")) => {
                    let (x, y) = (field(jwk.x, "x")?, field(jwk.y, "y")?);
                    if x.len() != 32 || y.len() != 32 {
                        return Err(format!("keys[{i}]: a P-256 point has 32-byte coordinates"));
                    }
                    let mut point = vec![4];
                    point.extend_from_slice(&x);
                    point.extend_from_slice(&y);
                    PublicKey::EcP256(point)
                }
                _ => continue,
            };
            keys.push(Jwk { kid: jwk.kid, key });
        }
        Ok(Self { keys })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key a token's `kid` names; a set of one key also answers a token without `kid`.
    fn find(&self, kid: Option<&str>) -> Option<&Jwk> {
        match kid {
            Some(kid) => self.keys.iter().find(|k| k.kid == kid),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// The claims of a projected service-account token.
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    iss: String,
    #[serde(default)]
    sub: String,
    #[serde(default)]
    aud: Audience,
    exp: Option<u64>,
    nbf: Option<u64>,
    #[serde(rename = "kubernetes.io")]
    kubernetes: Option<KubernetesClaims>,
}

/// `aud`: a string or an array of strings.
#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
    #[default]
    None,
}

#[derive(Deserialize)]
struct KubernetesClaims {
    namespace: String,
    serviceaccount: Named,
    pod: Option<Named>,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

/// Checks `token` against the issuer's `keys` and `rules` at time `now`.
pub fn validate(
    token: &str,
    keys: &Jwks,
    rules: &TokenRules,
    now: SystemTime,
) -> Result<ServiceAccountToken, TokenError> {
    let token = token.trim();
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed(
            "expected three dot-separated parts".into(),
        ));
    };
    let decode = |part: &str, what: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|e| TokenError::Malformed(format!("{what} is not base64url: {e}")))
    };
    let header: Header = serde_json::from_slice(&decode(header, "the header")?)
        .map_err(|e| TokenError::Malformed(format!("the header is not JSON: {e}")))?;
    let signature = decode(sig, "the signature")?;
    let key = keys
        .find(header.kid.as_deref())
        .ok_or_else(|| TokenError::UnknownKey(header.kid.clone().unwrap_or_default()))?;
    let signed = &token.as_bytes()[..token.len() - sig.len() - 1];
    let verified = match (header.alg.as_str(), &key.key) {
        ("RS256", PublicKey::Rsa { n, e }) => signature::RsaPublicKeyComponents { n, e }
            .verify(&signature::RSA_PKCS1_2048_8192_SHA256, signed, &signature)
            .is_ok(),
        ("ES256", PublicKey::EcP256(point)) => {
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(signed, &signature)
                .is_ok()
        }
        ("RS256" | "ES256", _) => false,
        (other, _) => return Err(TokenError::UnsupportedAlgorithm(other.to_owned())),
    };
    if !verified {
        return Err(TokenError::BadSignature);
    }
    // Only a verified payload is read.
    let claims: Claims = serde_json::from_slice(&decode(payload, "the payload")?)
        .map_err(|e| TokenError::Malformed(format!("the claims are not JSON: {e}")))?;
    check_claims(claims, rules, now)
}

fn check_claims(
    claims: Claims,
    rules: &TokenRules,
    now: SystemTime,
) -> Result<ServiceAccountToken, TokenError> {
    if claims.iss != rules.issuer {
        return Err(TokenError::WrongIssuer {
            found: claims.iss,
            expected: rules.issuer.clone(),
        });
    }
    let audiences = match claims.aud {
        Audience::One(one) => vec![one],
        Audience::Many(many) => many,
        Audience::None => Vec::new(),
    };
    if !audiences.contains(&rules.audience) {
        return Err(TokenError::WrongAudience {
            found: audiences,
            expected: rules.audience.clone(),
        });
    }
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let exp = claims
        .exp
        .ok_or_else(|| TokenError::Malformed("no exp: a token that never expires".into()))?;
    if Duration::from_secs(exp) + LEEWAY <= now {
        return Err(TokenError::Expired(exp));
    }
    if let Some(nbf) = claims.nbf
        && Duration::from_secs(nbf) > now + LEEWAY
    {
        return Err(TokenError::NotYetValid(nbf));
    }
    let kubernetes = claims
        .kubernetes
        .ok_or_else(|| TokenError::NotAServiceAccount("no kubernetes.io claims".into()))?;
    let (namespace, account) = (&kubernetes.namespace, &kubernetes.serviceaccount.name);
    let subject = format!("system:serviceaccount:{namespace}:{account}");
    if claims.sub != subject {
        return Err(TokenError::NotAServiceAccount(format!(
            "sub {:?} is not {subject:?}",
            claims.sub
        )));
    }
    let identity = SpiffeId::new(&rules.trust_domain, namespace, account)
        .map_err(|e| TokenError::NotAServiceAccount(e.to_string()))?;
    Ok(ServiceAccountToken {
        identity,
        pod: kubernetes.pod.map(|p| p.name),
        expires: UNIX_EPOCH + Duration::from_secs(exp),
    })
}

#[cfg(test)]
mod tests;

//! JSON Web Token authentication: the client presents a signed token (RFC 7519) as its CONNECT
//! password (or user name), and Tern checks the signature with a key it was given.
//!
//! Only compact JWS tokens signed with HS256, RS256 or ES256 are accepted, and only the one
//! algorithm configured: the `alg` in a token's header never chooses the key type, so a token
//! signed with HS256 using an RSA public key as the secret is refused. The signature is checked
//! by `jsonwebtoken` (on ring); the registered time and identity claims (`exp`, `nbf`, `iss`,
//! `aud`) are checked here, in [`ClaimPolicy::check`], so their rules are written down in one
//! place and tested without a clock.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use tracing::debug;

use crate::authenticator::{AuthOutcome, AuthRequest, Authenticator, BoxFuture};
use crate::error::AuthError;

/// RFC 7518 §3.2: an HS256 key MUST be at least as long as the hash output, 256 bits.
const MIN_HS256_SECRET_LEN: usize = 32;

/// The DER encoding of the object identifier of the P-256 curve (prime256v1, 1.2.840.10045.3.1.7).
const P256_OID_DER: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// The signature algorithms Tern accepts for tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256; the key file holds the shared secret.
    Hs256,
    /// RSASSA-PKCS1-v1_5 with SHA-256; the key file holds a PEM RSA public key.
    Rs256,
    /// ECDSA on P-256 with SHA-256; the key file holds a PEM EC public key.
    Es256,
}

impl FromStr for JwtAlgorithm {
    type Err = AuthError;

    /// Parses the names RFC 7518 gives the algorithms: `HS256`, `RS256`, `ES256`.
    fn from_str(name: &str) -> Result<JwtAlgorithm, AuthError> {
        match name {
            "HS256" => Ok(JwtAlgorithm::Hs256),
            "RS256" => Ok(JwtAlgorithm::Rs256),
            "ES256" => Ok(JwtAlgorithm::Es256),
            other => Err(AuthError::UnknownJwtAlgorithm(other.to_owned())),
        }
    }
}

impl fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JwtAlgorithm::Hs256 => "HS256",
            JwtAlgorithm::Rs256 => "RS256",
            JwtAlgorithm::Es256 => "ES256",
        })
    }
}

/// Which CONNECT field carries the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenSource {
    #[default]
    Password,
    Username,
}

/// How to verify tokens. [`JwtSettings::new`] fills in the defaults.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    pub algorithm: JwtAlgorithm,
    /// HS256: the secret, the file's exact bytes (a trailing newline is part of the secret).
    /// RS256 / ES256: a PEM public key (`PUBLIC KEY`, or `RSA PUBLIC KEY` for RS256).
    pub key_file: PathBuf,
    pub from: TokenSource,
    /// The claim whose value becomes the session's user name; default `sub`.
    pub username_claim: String,
    /// Claims that must be present (with any value but `null`).
    pub required_claims: Vec<String>,
    /// When set, the token's `aud` must name this audience. When unset, a token that carries
    /// `aud` is refused, as RFC 7519 §4.1.3 requires of a principal that has no audience.
    pub audience: Option<String>,
    /// When set, the token's `iss` must be exactly this.
    pub issuer: Option<String>,
    /// Clock skew allowed when checking `exp` and `nbf`; default 10 s.
    pub leeway: Duration,
}

impl JwtSettings {
    /// Settings with the defaults: token in the password, user name from `sub`, no required
    /// claims, no audience or issuer, 10 s of leeway.
    pub fn new(algorithm: JwtAlgorithm, key_file: impl Into<PathBuf>) -> JwtSettings {
        JwtSettings {
            algorithm,
            key_file: key_file.into(),
            from: TokenSource::Password,
            username_claim: "sub".to_owned(),
            required_claims: Vec::new(),
            audience: None,
            issuer: None,
            leeway: Duration::from_secs(10),
        }
    }
}

/// Why a token's claims were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ClaimError {
    #[error("claim {0:?} is not a non-negative NumericDate")]
    NotNumericDate(&'static str),
    #[error("token expired")]
    Expired,
    #[error("token not valid yet (nbf)")]
    NotYetValid,
    #[error("issuer does not match")]
    Issuer,
    #[error("audience does not match")]
    Audience,
    #[error("required claim {0:?} is missing")]
    Missing(String),
}

/// The registered-claim rules, separated from the clock so they can be tested with any `now`.
#[derive(Debug, Clone)]
pub(crate) struct ClaimPolicy {
    pub(crate) leeway_secs: u64,
    pub(crate) issuer: Option<String>,
    pub(crate) audience: Option<String>,
    pub(crate) required: Vec<String>,
}

impl ClaimPolicy {
    /// Checks `claims` at `now` (seconds since the Unix epoch).
    pub(crate) fn check(&self, claims: &Map<String, Value>, now: u64) -> Result<(), ClaimError> {
        // RFC 7519 §4.1.4: the current time MUST be before `exp`.
        if let Some(exp) = numeric_date(claims, "exp")? {
            if now >= exp.saturating_add(self.leeway_secs) {
                return Err(ClaimError::Expired);
            }
        }
        // RFC 7519 §4.1.5: the current time MUST be after or equal to `nbf`.
        if let Some(nbf) = numeric_date(claims, "nbf")? {
            if now.saturating_add(self.leeway_secs) < nbf {
                return Err(ClaimError::NotYetValid);
            }
        }
        if let Some(issuer) = &self.issuer {
            if claims.get("iss").and_then(Value::as_str) != Some(issuer.as_str()) {
                return Err(ClaimError::Issuer);
            }
        }
        // RFC 7519 §4.1.3: `aud` is a string or an array of strings, and a principal that does
        // not find itself in it MUST reject the token.
        match (claims.get("aud"), &self.audience) {
            (None, None) => {}
            (Some(_), None) | (None, Some(_)) => return Err(ClaimError::Audience),
            (Some(aud), Some(ours)) => {
                let named = match aud {
                    Value::String(one) => one == ours,
                    Value::Array(many) => many.iter().any(|a| a.as_str() == Some(ours.as_str())),
                    _ => false,
                };
                if !named {
                    return Err(ClaimError::Audience);
                }
            }
        }
        for name in &self.required {
            if claims.get(name).is_none_or(Value::is_null) {
                return Err(ClaimError::Missing(name.clone()));
            }
        }
        Ok(())
    }
}

/// A NumericDate claim (RFC 7519 §2), rounded down to whole seconds; an error if present but not
/// a non-negative number, so a token cannot dodge expiry with `"exp": "never"`.
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, ClaimError> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => match (value.as_u64(), value.as_f64()) {
            (Some(secs), _) => Ok(Some(secs)),
            (None, Some(secs)) if secs.is_finite() && secs >= 0.0 => Ok(Some(secs as u64)),
            _ => Err(ClaimError::NotNumericDate(name)),
        },
    }
}

/// Verifies JWTs; see the module documentation.
pub struct JwtAuthenticator {
    key: DecodingKey,
    validation: Validation,
    policy: ClaimPolicy,
    from: TokenSource,
    username_claim: String,
}

impl fmt::Debug for JwtAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthenticator")
            .field("algorithms", &self.validation.algorithms)
            .field("policy", &self.policy)
            .field("from", &self.from)
            .field("username_claim", &self.username_claim)
            .finish_non_exhaustive()
    }
}

impl JwtAuthenticator {
    /// Reads and checks the key file. Errors name the file.
    pub fn new(settings: JwtSettings) -> Result<JwtAuthenticator, AuthError> {
        let path = settings.key_file;
        let bytes = std::fs::read(&path).map_err(|source| AuthError::Io { path: path.clone(), source })?;
        let invalid = |reason: String| AuthError::JwtKey { path: path.clone(), reason };
        let (key, algorithm) = match settings.algorithm {
            JwtAlgorithm::Hs256 => {
                if bytes.len() < MIN_HS256_SECRET_LEN {
                    return Err(invalid(format!(
                        "an HS256 secret must be at least {MIN_HS256_SECRET_LEN} bytes (RFC 7518 §3.2), this one is {}",
                        bytes.len()
                    )));
                }
                (DecodingKey::from_secret(&bytes), Algorithm::HS256)
            }
            JwtAlgorithm::Rs256 => {
                check_public_pem(&bytes, &["PUBLIC KEY", "RSA PUBLIC KEY"]).map_err(invalid)?;
                let key = DecodingKey::from_rsa_pem(&bytes)
                    .map_err(|e| invalid(format!("not an RSA public key in PEM: {e}")))?;
                (key, Algorithm::RS256)
            }
            JwtAlgorithm::Es256 => {
                let der = check_public_pem(&bytes, &["PUBLIC KEY"]).map_err(invalid)?;
                // ES256 is P-256 only (RFC 7518 §3.4); a key on another curve would refuse every token.
                if !der.windows(P256_OID_DER.len()).any(|w| w == P256_OID_DER) {
                    return Err(invalid("ES256 needs a key on the P-256 curve".to_owned()));
                }
                let key = DecodingKey::from_ec_pem(&bytes)
                    .map_err(|e| invalid(format!("not an EC public key in PEM: {e}")))?;
                (key, Algorithm::ES256)
            }
        };
        // The library checks the signature and the header's algorithm only; the claims are
        // checked by `ClaimPolicy`, whose rules for missing or malformed claims are stricter.
        let mut validation = Validation::new(algorithm);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let policy = ClaimPolicy {
            leeway_secs: settings.leeway.as_secs(),
            issuer: settings.issuer,
            audience: settings.audience,
            required: settings.required_claims,
        };
        Ok(JwtAuthenticator { key, validation, policy, from: settings.from, username_claim: settings.username_claim })
    }

    fn verify(&self, request: &AuthRequest<'_>) -> AuthOutcome {
        let token = match self.from {
            TokenSource::Password => request.password.and_then(|p| std::str::from_utf8(p).ok()),
            TokenSource::Username => request.username,
        };
        let Some(token) = token.filter(|t| looks_like_jwt(t)) else {
            return AuthOutcome::Abstain;
        };
        let claims = match jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &self.validation) {
            Ok(data) => data.claims,
            Err(error) => {
                debug!(client_id = request.client_id, %error, "JWT refused");
                return AuthOutcome::BadCredentials;
            }
        };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if let Err(error) = self.policy.check(&claims, now) {
            debug!(client_id = request.client_id, %error, "JWT refused");
            return AuthOutcome::BadCredentials;
        }
        let username = match claims.get(&self.username_claim).and_then(scalar_text) {
            Some(name) => Some(name),
            // With the token in the user name field, that field is no name to fall back on.
            None => match self.from {
                TokenSource::Password => request.username.map(str::to_owned),
                TokenSource::Username => None,
            },
        };
        AuthOutcome::Allow { username, attributes: scalar_claims(&claims) }
    }
}

impl Authenticator for JwtAuthenticator {
    fn authenticate<'a>(&'a self, request: &'a AuthRequest<'a>) -> BoxFuture<'a, AuthOutcome> {
        // Verification is CPU work of microseconds (an RSA or ECDSA verify); no need to yield.
        let outcome = self.verify(request);
        Box::pin(std::future::ready(outcome))
    }
}

/// Whether `candidate` has the shape of a compact JWS: three dot-separated parts, the first a
/// base64url JSON object (the JOSE header). Anything else is not a token at all, so the
/// authenticator abstains and a password file further down the chain can answer; a string that
/// has the shape but fails verification is a bad token.
fn looks_like_jwt(candidate: &str) -> bool {
    let mut parts = candidate.split('.');
    let (Some(header), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|json| serde_json::from_slice::<Value>(&json).ok())
        .is_some_and(|header| header.is_object())
}

/// Checks that `pem` is one PEM block with one of the `labels` (refusing private keys with a
/// clear message) and returns its DER content.
fn check_public_pem(pem: &[u8], labels: &[&str]) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(pem).map_err(|_| "not a PEM file (not UTF-8)".to_owned())?;
    let begin = text.find("-----BEGIN ").ok_or("not a PEM file (no BEGIN line)")?;
    let after = &text[begin + "-----BEGIN ".len()..];
    let label_end = after.find("-----").ok_or("not a PEM file (bad BEGIN line)")?;
    let label = &after[..label_end];
    if label.contains("PRIVATE KEY") {
        return Err(format!("holds a private key ({label}); give the public key instead"));
    }
    if !labels.contains(&label) {
        return Err(format!("holds a {label}, expected {}", labels.join(" or ")));
    }
    let body = &after[label_end + "-----".len()..];
    let end = body.find("-----END ").ok_or("not a PEM file (no END line)")?;
    let base64: String = body[..end].chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(base64).map_err(|e| format!("not a PEM file (bad base64: {e})"))
}

/// A claim's value as text, if it is a string, number or boolean.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// The top-level string, number and boolean claims as (name, value), sorted by name.
pub(crate) fn scalar_claims(claims: &Map<String, Value>) -> Vec<(String, String)> {
    // Sorted explicitly: serde_json's map keeps insertion order when another crate in the
    // build enables its `preserve_order` feature.
    let sorted: BTreeMap<&String, String> =
        claims.iter().filter_map(|(name, value)| Some((name, scalar_text(value)?))).collect();
    sorted.into_iter().map(|(name, value)| (name.clone(), value)).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn policy() -> ClaimPolicy {
        ClaimPolicy { leeway_secs: 10, issuer: None, audience: None, required: Vec::new() }
    }

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn exp_is_honoured_with_leeway() {
        let c = claims(json!({ "exp": 1_000 }));
        assert_eq!(policy().check(&c, 999), Ok(()));
        assert_eq!(policy().check(&c, 1_009), Ok(()));
        assert_eq!(policy().check(&c, 1_010), Err(ClaimError::Expired));
        let strict = ClaimPolicy { leeway_secs: 0, ..policy() };
        assert_eq!(strict.check(&c, 1_000), Err(ClaimError::Expired));
    }

    #[test]
    fn nbf_is_honoured_with_leeway() {
        let c = claims(json!({ "nbf": 1_000 }));
        assert_eq!(policy().check(&c, 990), Ok(()));
        assert_eq!(policy().check(&c, 989), Err(ClaimError::NotYetValid));
    }

    #[test]
    fn malformed_time_claims_are_refused() {
        for bad in [json!({ "exp": "never" }), json!({ "exp": -1 }), json!({ "nbf": null }), json!({ "exp": [1] })] {
            assert!(matches!(policy().check(&claims(bad), 0), Err(ClaimError::NotNumericDate(_))));
        }
        assert_eq!(policy().check(&claims(json!({ "exp": 1_000.9 })), 1_009), Ok(()));
    }

    #[test]
    fn issuer_and_audience_must_match_when_configured() {
        let p = ClaimPolicy { issuer: Some("tern".into()), audience: Some("mqtt".into()), ..policy() };
        assert_eq!(p.check(&claims(json!({ "iss": "tern", "aud": "mqtt" })), 0), Ok(()));
        assert_eq!(p.check(&claims(json!({ "iss": "tern", "aud": ["web", "mqtt"] })), 0), Ok(()));
        assert_eq!(p.check(&claims(json!({ "iss": "evil", "aud": "mqtt" })), 0), Err(ClaimError::Issuer));
        assert_eq!(p.check(&claims(json!({ "aud": "mqtt" })), 0), Err(ClaimError::Issuer));
        assert_eq!(p.check(&claims(json!({ "iss": "tern" })), 0), Err(ClaimError::Audience));
        assert_eq!(p.check(&claims(json!({ "iss": "tern", "aud": ["web"] })), 0), Err(ClaimError::Audience));
        // A token meant for some audience is refused by a broker that names none.
        assert_eq!(policy().check(&claims(json!({ "aud": "mqtt" })), 0), Err(ClaimError::Audience));
    }

    #[test]
    fn required_claims_must_be_present_and_not_null() {
        let p = ClaimPolicy { required: vec!["exp".into(), "tenant".into()], ..policy() };
        assert_eq!(p.check(&claims(json!({ "exp": 5, "tenant": "a" })), 0), Ok(()));
        assert_eq!(p.check(&claims(json!({ "exp": 5, "tenant": null })), 0), Err(ClaimError::Missing("tenant".into())));
        assert_eq!(p.check(&claims(json!({ "tenant": "a" })), 0), Err(ClaimError::Missing("exp".into())));
    }

    #[test]
    fn only_jwt_shaped_strings_are_tokens() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        assert!(looks_like_jwt(&format!("{header}.e30.")));
        assert!(!looks_like_jwt("hunter2"));
        assert!(!looks_like_jwt("a.b.c"));
        assert!(!looks_like_jwt(&format!("{header}.e30.x.y")));
    }

    #[test]
    fn scalar_claims_skip_structures_and_sort() {
        let c = claims(json!({ "z": "last", "a": 1, "m": true, "list": [1], "obj": {}, "nil": null }));
        let expected = vec![("a".into(), "1".into()), ("m".into(), "true".into()), ("z".into(), "last".into())];
        assert_eq!(scalar_claims(&c), expected);
    }

    #[test]
    fn algorithm_names_parse() {
        assert_eq!("ES256".parse::<JwtAlgorithm>().ok(), Some(JwtAlgorithm::Es256));
        assert!("none".parse::<JwtAlgorithm>().is_err());
        assert!("hs256".parse::<JwtAlgorithm>().is_err());
    }
}

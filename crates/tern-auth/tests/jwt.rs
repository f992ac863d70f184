//! JWT authentication, black-box: keys are generated here (nothing private is committed),
//! tokens are signed with `jsonwebtoken`, and the authenticator is asked as the server would.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{json, Value};
use tempfile::TempDir;
use tern_auth::{
    AuthError, AuthOutcome, AuthRequest, Authenticator, JwtAlgorithm, JwtAuthenticator, JwtSettings, TokenSource,
};

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs() as i64
}

fn peer() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50_000))
}

fn request<'a>(username: Option<&'a str>, password: Option<&'a [u8]>) -> AuthRequest<'a> {
    AuthRequest { client_id: "c1", username, password, peer: peer(), certificate_username: None }
}

async fn ask(auth: &JwtAuthenticator, username: Option<&str>, token: &str) -> AuthOutcome {
    auth.authenticate(&request(username, Some(token.as_bytes()))).await
}

fn write(dir: &TempDir, name: &str, contents: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, contents).expect("write key file");
    path
}

/// A fresh 32-byte HS256 secret in a file, and its bytes.
fn hs256_secret(dir: &TempDir) -> (PathBuf, Vec<u8>) {
    let mut secret = vec![0; 32];
    SystemRandom::new().fill(&mut secret).expect("random secret");
    (write(dir, "secret", &secret), secret)
}

fn sign(claims: &Value, alg: Algorithm, key: &EncodingKey) -> String {
    encode(&Header::new(alg), claims, key).expect("sign token")
}

fn hs256(dir: &TempDir) -> (JwtAuthenticator, EncodingKey) {
    let (path, secret) = hs256_secret(dir);
    let auth = JwtAuthenticator::new(JwtSettings::new(JwtAlgorithm::Hs256, path)).expect("HS256 authenticator");
    (auth, EncodingKey::from_secret(&secret))
}

/// An RSA key pair made by the openssl command line tool (ring cannot generate RSA keys):
/// the private key PEM for signing and the path of the public key PEM.
fn rsa_key_pair(dir: &TempDir) -> (Vec<u8>, PathBuf) {
    let private = dir.path().join("rsa.key");
    let public = dir.path().join("rsa.pub");
    run_openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"], &private);
    run_openssl(&["pkey", "-pubout", "-in", path_str(&private), "-out"], &public);
    (std::fs::read(&private).expect("read RSA key"), public)
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary path is UTF-8")
}

fn run_openssl(args: &[&str], out: &Path) {
    let output = Command::new("openssl").args(args).arg(out).output().expect("the openssl command runs");
    assert!(output.status.success(), "openssl {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
}

/// A P-256 key pair from rcgen (on ring): the signing key and the path of the public key PEM.
fn ec_key_pair(dir: &TempDir, name: &str) -> (EncodingKey, PathBuf) {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key");
    let signing = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).expect("EC signing key");
    (signing, write(dir, name, pair.public_key_pem().as_bytes()))
}

#[tokio::test]
async fn hs256_token_allows_with_username_and_claims() {
    let dir = TempDir::new().expect("temp dir");
    let (auth, key) = hs256(&dir);
    let exp = now() + 300;
    let claims = json!({ "sub": "alice", "exp": exp, "tenant": "acme", "level": 3, "admin": true, "groups": ["a"] });
    let outcome = ask(&auth, Some("ignored"), &sign(&claims, Algorithm::HS256, &key)).await;
    let attributes =
        [("admin", "true"), ("exp", exp.to_string().as_str()), ("level", "3"), ("sub", "alice"), ("tenant", "acme")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .to_vec();
    assert_eq!(outcome, AuthOutcome::Allow { username: Some("alice".into()), attributes });
}

#[tokio::test]
async fn username_falls_back_to_connect_username_or_custom_claim() {
    let dir = TempDir::new().expect("temp dir");
    let (path, secret) = hs256_secret(&dir);
    let key = EncodingKey::from_secret(&secret);
    let auth = JwtAuthenticator::new(JwtSettings::new(JwtAlgorithm::Hs256, &path)).expect("authenticator");
    let token = sign(&json!({ "exp": now() + 60 }), Algorithm::HS256, &key);
    assert!(
        matches!(ask(&auth, Some("bob"), &token).await, AuthOutcome::Allow { username: Some(u), .. } if u == "bob")
    );

    let settings =
        JwtSettings { username_claim: "preferred_username".into(), ..JwtSettings::new(JwtAlgorithm::Hs256, &path) };
    let auth = JwtAuthenticator::new(settings).expect("authenticator");
    let token = sign(&json!({ "sub": "id-7", "preferred_username": "carol" }), Algorithm::HS256, &key);
    assert!(
        matches!(ask(&auth, Some("bob"), &token).await, AuthOutcome::Allow { username: Some(u), .. } if u == "carol")
    );
}

#[tokio::test]
async fn token_in_username_field() {
    let dir = TempDir::new().expect("temp dir");
    let (path, secret) = hs256_secret(&dir);
    let settings = JwtSettings { from: TokenSource::Username, ..JwtSettings::new(JwtAlgorithm::Hs256, path) };
    let auth = JwtAuthenticator::new(settings).expect("authenticator");
    let token = sign(&json!({ "sub": "dave" }), Algorithm::HS256, &EncodingKey::from_secret(&secret));
    let outcome = auth.authenticate(&request(Some(&token), Some(b"anything"))).await;
    assert!(matches!(outcome, AuthOutcome::Allow { username: Some(u), .. } if u == "dave"));
    // Without a `sub`, the user name field held the token, which is no name.
    let token = sign(&json!({ "role": "x" }), Algorithm::HS256, &EncodingKey::from_secret(&secret));
    assert!(matches!(auth.authenticate(&request(Some(&token), None)).await, AuthOutcome::Allow { username: None, .. }));
    assert_eq!(auth.authenticate(&request(None, Some(token.as_bytes()))).await, AuthOutcome::Abstain);
}

#[tokio::test]
async fn no_token_abstains() {
    let dir = TempDir::new().expect("temp dir");
    let (auth, _) = hs256(&dir);
    assert_eq!(auth.authenticate(&request(Some("alice"), None)).await, AuthOutcome::Abstain);
    assert_eq!(ask(&auth, Some("alice"), "hunter2").await, AuthOutcome::Abstain);
    assert_eq!(auth.authenticate(&request(Some("alice"), Some(&[0xff, 0xfe]))).await, AuthOutcome::Abstain);
}

#[tokio::test]
async fn forged_tampered_or_unsigned_tokens_are_bad_credentials() {
    let dir = TempDir::new().expect("temp dir");
    let (auth, key) = hs256(&dir);
    let claims = json!({ "sub": "alice", "exp": now() + 300 });
    let other = EncodingKey::from_secret(&[7; 32]);
    assert_eq!(ask(&auth, None, &sign(&claims, Algorithm::HS256, &other)).await, AuthOutcome::BadCredentials);

    let token = sign(&claims, Algorithm::HS256, &key);
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = base64_url(&json!({ "sub": "root", "exp": now() + 300 }).to_string());
    assert_eq!(ask(&auth, None, &parts.join(".")).await, AuthOutcome::BadCredentials);

    let unsigned = format!("{}.{}.", base64_url(r#"{"alg":"none","typ":"JWT"}"#), parts[1]);
    assert_eq!(ask(&auth, None, &unsigned).await, AuthOutcome::BadCredentials);
    let garbage_payload = format!("{}.!!!.xyz", base64_url(r#"{"alg":"HS256"}"#));
    assert_eq!(ask(&auth, None, &garbage_payload).await, AuthOutcome::BadCredentials);
}

fn base64_url(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[tokio::test]
async fn expiry_and_not_before_are_enforced_with_leeway() {
    let dir = TempDir::new().expect("temp dir");
    let (path, secret) = hs256_secret(&dir);
    let key = EncodingKey::from_secret(&secret);
    let auth = JwtAuthenticator::new(JwtSettings::new(JwtAlgorithm::Hs256, &path)).expect("authenticator");
    let token = |claims: Value| sign(&claims, Algorithm::HS256, &key);
    assert_eq!(ask(&auth, None, &token(json!({ "exp": now() - 120 }))).await, AuthOutcome::BadCredentials);
    assert_eq!(ask(&auth, None, &token(json!({ "nbf": now() + 120 }))).await, AuthOutcome::BadCredentials);
    assert_eq!(ask(&auth, None, &token(json!({ "exp": "never" }))).await, AuthOutcome::BadCredentials);
    // Within the default 10 s of leeway either way.
    let skewed = token(json!({ "exp": now() - 3, "nbf": now() + 3 }));
    assert!(matches!(ask(&auth, None, &skewed).await, AuthOutcome::Allow { .. }));

    let strict = JwtSettings { leeway: Duration::ZERO, ..JwtSettings::new(JwtAlgorithm::Hs256, &path) };
    let strict = JwtAuthenticator::new(strict).expect("authenticator");
    assert_eq!(ask(&strict, None, &token(json!({ "exp": now() - 3 }))).await, AuthOutcome::BadCredentials);
}

#[tokio::test]
async fn issuer_audience_and_required_claims() {
    let dir = TempDir::new().expect("temp dir");
    let (path, secret) = hs256_secret(&dir);
    let key = EncodingKey::from_secret(&secret);
    let settings = JwtSettings {
        issuer: Some("https://idp.example".into()),
        audience: Some("tern".into()),
        required_claims: vec!["exp".into()],
        ..JwtSettings::new(JwtAlgorithm::Hs256, path)
    };
    let auth = JwtAuthenticator::new(settings).expect("authenticator");
    let token = |claims: Value| sign(&claims, Algorithm::HS256, &key);
    let good = json!({ "iss": "https://idp.example", "aud": ["web", "tern"], "exp": now() + 60 });
    assert!(matches!(ask(&auth, None, &token(good)).await, AuthOutcome::Allow { .. }));
    for bad in [
        json!({ "iss": "https://evil.example", "aud": "tern", "exp": now() + 60 }),
        json!({ "iss": "https://idp.example", "aud": "web", "exp": now() + 60 }),
        json!({ "aud": "tern", "exp": now() + 60 }),
        json!({ "iss": "https://idp.example", "aud": "tern" }),
    ] {
        assert_eq!(ask(&auth, None, &token(bad.clone())).await, AuthOutcome::BadCredentials, "{bad}");
    }
}

#[tokio::test]
async fn rs256_verifies_and_refuses_algorithm_confusion() {
    let dir = TempDir::new().expect("temp dir");
    let (private_pem, public) = rsa_key_pair(&dir);
    let auth = JwtAuthenticator::new(JwtSettings::new(JwtAlgorithm::Rs256, &public)).expect("RS256 authenticator");
    let claims = json!({ "sub": "erin", "exp": now() + 60 });
    let key = EncodingKey::from_rsa_pem(&private_pem).expect("RSA signing key");
    let outcome = ask(&auth, None, &sign(&claims, Algorithm::RS256, &key)).await;
    assert!(matches!(outcome, AuthOutcome::Allow { username: Some(u), .. } if u == "erin"));

    // The classic forgery: HS256 with the (public) RSA key as the HMAC secret.
    let public_pem = std::fs::read(&public).expect("read public key");
    let forged = sign(&claims, Algorithm::HS256, &EncodingKey::from_secret(&public_pem));
    assert_eq!(ask(&auth, None, &forged).await, AuthOutcome::BadCredentials);
    // The right key, but RS512 instead of the configured RS256.
    assert_eq!(ask(&auth, None, &sign(&claims, Algorithm::RS512, &key)).await, AuthOutcome::BadCredentials);
}

#[tokio::test]
async fn es256_verifies_only_its_own_key() {
    let dir = TempDir::new().expect("temp dir");
    let (key, public) = ec_key_pair(&dir, "ec.pub");
    let (other_key, _) = ec_key_pair(&dir, "other.pub");
    let auth = JwtAuthenticator::new(JwtSettings::new(JwtAlgorithm::Es256, &public)).expect("ES256 authenticator");
    let claims = json!({ "sub": "frank", "exp": now() + 60 });
    assert!(matches!(ask(&auth, None, &sign(&claims, Algorithm::ES256, &key)).await, AuthOutcome::Allow { .. }));
    assert_eq!(ask(&auth, None, &sign(&claims, Algorithm::ES256, &other_key)).await, AuthOutcome::BadCredentials);
}

#[test]
fn key_file_errors_name_the_file() {
    let dir = TempDir::new().expect("temp dir");
    let missing = dir.path().join("missing.pem");
    let error = JwtAuthenticator::new(JwtSettings::new(JwtAlgorithm::Rs256, &missing)).err();
    assert!(matches!(&error, Some(AuthError::Io { path, .. }) if *path == missing), "{error:?}");
    assert!(error.is_some_and(|e| e.to_string().contains("missing.pem")));

    let short = write(&dir, "short", b"secret\n");
    let error = JwtAuthenticator::new(JwtSettings::new(JwtAlgorithm::Hs256, &short)).err();
    assert!(matches!(&error, Some(AuthError::JwtKey { path, .. }) if *path == short), "{error:?}");

    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key");
    let private = write(&dir, "ec.key", pair.serialize_pem().as_bytes());
    let error = JwtAuthenticator::new(JwtSettings::new(JwtAlgorithm::Es256, &private)).err();
    assert!(error.is_some_and(|e| e.to_string().contains("private key")));

    let public = write(&dir, "ec.pub", pair.public_key_pem().as_bytes());
    assert!(JwtAuthenticator::new(JwtSettings::new(JwtAlgorithm::Rs256, &public)).is_err());

    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("P-384 key");
    let p384 = write(&dir, "p384.pub", p384.public_key_pem().as_bytes());
    let error = JwtAuthenticator::new(JwtSettings::new(JwtAlgorithm::Es256, &p384)).err();
    assert!(error.is_some_and(|e| e.to_string().contains("P-256")));
}

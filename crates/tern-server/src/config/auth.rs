//! `[auth]`: who may connect, and what they may do.

use std::path::PathBuf;

use serde::Deserialize;

/// Authentication backends are asked in this order: client certificate (per listener),
/// password file, JWT, HTTP hook; the first that knows the client decides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Accept clients that present no credentials. Defaults to true while no authentication
    /// backend is configured (a warning is logged for non-loopback listeners), false once one
    /// is. Listeners may override it.
    pub allow_anonymous: Option<bool>,
    /// A password file as written by `tern passwd` or `mosquitto_passwd`.
    pub password_file: Option<PathBuf>,
    /// SCRAM-SHA-256/512 credentials as written by `tern passwd --scram`, for MQTT 5.0 clients
    /// that connect with the Authentication Method `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub scram_file: Option<PathBuf>,
    /// An ACL file in mosquitto's acl_file format. Without one, every client may publish and
    /// subscribe everywhere.
    pub acl_file: Option<PathBuf>,
    pub jwt: Option<JwtConfig>,
    pub http: Option<HttpHookConfig>,
}

/// `[auth.jwt]`: a JSON Web Token as the CONNECT password (or user name).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// HS256, RS256 or ES256.
    pub algorithm: String,
    /// HS256: the file holding the secret; RS256/ES256: the PEM public key.
    pub key_file: PathBuf,
    /// Where the token is: "password" (default) or "username".
    #[serde(default = "default_token_field")]
    pub token_in: String,
    /// The claim that names the user (default "sub").
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
}

fn default_token_field() -> String {
    "password".into()
}

fn default_username_claim() -> String {
    "sub".into()
}

/// `[auth.http]`: an HTTP endpoint that decides.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpHookConfig {
    /// `http://` URL the broker POSTs client id, user name, password and address to.
    pub url: String,
    /// Milliseconds to wait for the answer; a hook that does not answer in time denies.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Seconds an answer is remembered for the same credentials; 0 turns caching off.
    #[serde(default = "default_cache_secs")]
    pub cache_secs: u64,
}

fn default_timeout_ms() -> u64 {
    2000
}

fn default_cache_secs() -> u64 {
    60
}

impl AuthConfig {
    /// Whether any authentication backend (other than client certificates) is configured.
    pub fn has_backend(&self) -> bool {
        self.password_file.is_some() || self.scram_file.is_some() || self.jwt.is_some() || self.http.is_some()
    }

    /// The broker-wide anonymous default.
    pub fn anonymous_allowed(&self) -> bool {
        self.allow_anonymous.unwrap_or(!self.has_backend())
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        if let Some(jwt) = &self.jwt {
            if !["HS256", "RS256", "ES256"].contains(&jwt.algorithm.as_str()) {
                return Err(format!("auth.jwt.algorithm must be HS256, RS256 or ES256, not {:?}", jwt.algorithm));
            }
            if !["password", "username"].contains(&jwt.token_in.as_str()) {
                return Err(format!("auth.jwt.token_in must be \"password\" or \"username\", not {:?}", jwt.token_in));
            }
        }
        if let Some(http) = &self.http {
            if !http.url.starts_with("http://") {
                return Err(format!("auth.http.url must be an http:// URL, not {:?}", http.url));
            }
            if http.timeout_ms == 0 {
                return Err("auth.http.timeout_ms must be at least 1".into());
            }
        }
        Ok(())
    }
}

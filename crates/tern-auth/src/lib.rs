//! Authentication and authorization backends for Tern: password files (Tern's own and
//! mosquitto_passwd's), SCRAM-SHA-256/512 credentials and the server side of the SCRAM
//! exchange for MQTT 5.0 enhanced authentication, ACL files in mosquitto's format, JWT, and an HTTP hook.
//!
//! Authentication is asynchronous (an HTTP hook waits on the network) and runs in the
//! server's connection task before the session is claimed; authorization implements
//! [`tern_core::Authorizer`] and is synchronous, called by the core per SUBSCRIBE and PUBLISH.

mod acl;
mod authenticator;
mod error;
mod http_hook;
mod jwt;
mod password_file;
mod scram;

pub use acl::AclFile;
pub use authenticator::{AuthOutcome, AuthRequest, Authenticator, BoxFuture, Chain};
pub use error::{AuthError, LineError};
pub use http_hook::{HttpHook, HttpHookSettings};
pub use jwt::{JwtAlgorithm, JwtAuthenticator, JwtSettings, TokenSource};
pub use password_file::{
    apply_passwd, apply_scram_passwd, PasswdRequest, PasswordFile, Verification, PBKDF2_ITERATIONS,
};
pub use scram::{
    ScramCredentials, ScramError, ScramFile, ScramMechanism, ScramServer, SCRAM_SHA_256_ITERATIONS,
    SCRAM_SHA_512_ITERATIONS,
};

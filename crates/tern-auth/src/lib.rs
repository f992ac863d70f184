//! Authentication and authorization backends for Tern: password files (Tern's own and
//! mosquitto_passwd's), ACL files in mosquitto's format, JWT, and an HTTP hook.
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

pub use acl::AclFile;
pub use authenticator::{AuthOutcome, AuthRequest, Authenticator, BoxFuture, Chain};
pub use error::{AuthError, LineError};
pub use http_hook::{HttpHook, HttpHookSettings};
pub use jwt::{JwtAlgorithm, JwtAuthenticator, JwtSettings, TokenSource};
pub use password_file::{apply_passwd, PasswdRequest, PasswordFile, Verification, PBKDF2_ITERATIONS};

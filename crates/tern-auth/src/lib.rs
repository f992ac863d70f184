//! Authentication and authorization backends for Tern: password files (Tern's own and
//! mosquitto_passwd's), ACL files in mosquitto's format, JWT, and an HTTP hook.
//!
//! Authentication is asynchronous (an HTTP hook waits on the network) and runs in the
//! server's connection task before the session is claimed; authorization implements
//! [`tern_core::Authorizer`] and is synchronous, called by the core per SUBSCRIBE and PUBLISH.

mod authenticator;

pub use authenticator::{AuthOutcome, AuthRequest, Authenticator, BoxFuture, Chain};

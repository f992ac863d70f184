//! The authentication seam and the chain that asks each configured backend in turn.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed future, so authenticators can be trait objects without an extra crate.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a client presented when it connected.
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
    /// The client's real address (after a PROXY protocol header, if any).
    pub peer: SocketAddr,
    /// The user name taken from the client's TLS certificate, when the listener says so.
    pub certificate_username: Option<&'a str>,
}

/// An authenticator's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// The client is who it says: connect it as `username`, with `attributes` (for example
    /// JWT claims) available to ACL rules.
    Allow { username: Option<String>, attributes: Vec<(String, String)> },
    /// Wrong credentials: CONNACK 0x04 (3.1.1) / 0x86 (5.0).
    BadCredentials,
    /// Known, but not allowed to connect: CONNACK 0x05 (3.1.1) / 0x87 (5.0).
    NotAuthorized,
    /// Not for this authenticator (an unknown user, no token); the next one is asked.
    Abstain,
}

pub trait Authenticator: Send + Sync {
    fn authenticate<'a>(&'a self, request: &'a AuthRequest<'a>) -> BoxFuture<'a, AuthOutcome>;
}

/// Asks each authenticator in order; the first answer that is not `Abstain` decides.
#[derive(Default, Clone)]
pub struct Chain {
    authenticators: Vec<Arc<dyn Authenticator>>,
}

impl Chain {
    pub fn new(authenticators: Vec<Arc<dyn Authenticator>>) -> Chain {
        Chain { authenticators }
    }

    pub fn is_empty(&self) -> bool {
        self.authenticators.is_empty()
    }

    pub async fn authenticate(&self, request: &AuthRequest<'_>) -> AuthOutcome {
        for authenticator in &self.authenticators {
            match authenticator.authenticate(request).await {
                AuthOutcome::Abstain => continue,
                decided => return decided,
            }
        }
        AuthOutcome::Abstain
    }
}

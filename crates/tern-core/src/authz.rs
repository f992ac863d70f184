//! The authorization seam: who may publish where and subscribe to what.
//!
//! Decisions are made once per subscription (at SUBSCRIBE, and for each retained message sent
//! because of it), never once per live delivery, and once per PUBLISH and will. Implementations
//! (an ACL file, JWT claims) live outside tern-core.

use std::net::SocketAddr;
use std::sync::Arc;

use tern_codec::{TopicFilter, TopicName};

use crate::client_id::ClientId;

/// Who a connected client is, as authentication established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub client_id: ClientId,
    /// The authenticated user name (from CONNECT, a client certificate or a token).
    pub username: Option<String>,
    /// The client's real address (after a PROXY protocol header, if any).
    pub peer: Option<SocketAddr>,
    /// Extra attributes an authenticator vouched for (for example JWT claims), as
    /// `(name, value)` pairs; ACL rules may refer to them.
    pub attributes: Vec<(String, String)>,
}

/// Decides what a client may do. Implementations must be cheap and must not block: they are
/// called on connection tasks while no broker lock is held.
pub trait Authorizer: Send + Sync {
    /// Whether `client` may publish to `topic` (PUBLISH and its will).
    fn can_publish(&self, client: &ClientInfo, topic: &TopicName) -> bool;
    /// Whether `client` may subscribe to `filter`: every topic it can match must be readable.
    fn can_subscribe(&self, client: &ClientInfo, filter: &TopicFilter) -> bool;
    /// Whether `client` may receive a message on `topic` (retained messages sent on SUBSCRIBE
    /// are checked one by one with this, so a wide subscription leaks nothing).
    fn can_read(&self, client: &ClientInfo, topic: &TopicName) -> bool;
}

/// Allows everything: the broker's behaviour when no ACL is configured.
#[derive(Debug, Default)]
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn can_publish(&self, _: &ClientInfo, _: &TopicName) -> bool {
        true
    }
    fn can_subscribe(&self, _: &ClientInfo, _: &TopicFilter) -> bool {
        true
    }
    fn can_read(&self, _: &ClientInfo, _: &TopicName) -> bool {
        true
    }
}

/// How the broker holds its authorizer.
pub type SharedAuthorizer = Arc<dyn Authorizer>;

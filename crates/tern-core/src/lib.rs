//! The broker core: sessions, the subscription index, retained messages, QoS state, keep
//! alive and will rules.
//!
//! tern-core knows nothing of tokio, sockets, storage engines or networks. A connection is a
//! state machine ([`Connection`]) that takes packets and the current time and returns packets
//! to send; the shared indexes live in [`Broker`] and are used directly by every connection.

mod authz;
mod broker;
mod client_id;
mod close;
mod connect;
mod connection;
mod limits;
mod message;
mod metrics;
mod rate;
mod retained;
mod session;
mod shared;
mod store;
mod subscriptions;

pub use authz::{AllowAll, Authorizer, ClientInfo, SharedAuthorizer};
pub use broker::{Broker, Claim, ClaimResult, Published, Will};
pub use client_id::ClientId;
pub use close::{CloseReason, ProtocolError};
pub use connect::{accept_connect, ConnectIdentity, ConnectOutcome};
pub use connection::Connection;
pub use limits::{Features, Limits};
pub use message::{Delivery, Message, StoredAt};
pub use metrics::Metrics;
pub use rate::RateLimit;
pub use retained::RetainedIndex;
pub use session::{
    Enqueued, Inflight, OutgoingState, PendingWill, Session, SessionState, SessionWaker, SESSION_NEVER_EXPIRES,
};
pub use shared::{SharedFilter, Strategy};
pub use store::record::Clock;
pub use store::{
    record, Commit, MemoryStore, OutgoingMark, QueueSeq, QueueSummary, QueuedRecord, SessionRecord, Store, StoreError,
    StoreOp, StoredSession, StoredWill, Ticket,
};
pub use subscriptions::{Match, Subscription, SubscriptionIndex};

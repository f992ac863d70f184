//! The storage seam: what the broker asks of a store, and the in-memory reference store.
//!
//! The broker's working state lives in memory ([`crate::Broker`]); a store is where it writes
//! through the state that must survive a restart, and what it loads at startup. Every backend
//! passes the same conformance suite (`tern_test_support::store_conformance`), this one first.
//! Queued messages and in-flight state join these traits with durable storage.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use tern_codec::{TopicFilter, TopicName};

use crate::client_id::ClientId;
use crate::message::Message;
use crate::subscriptions::Subscription;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("storage backend failed: {0}")]
    Backend(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// What is kept of a persistent session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub client_id: ClientId,
    /// Seconds the session outlives its connection ([`crate::SESSION_NEVER_EXPIRES`] for a
    /// 3.x persistent session).
    pub expiry_interval: u32,
    pub subscriptions: Vec<(TopicFilter, Subscription)>,
}

/// Persistent sessions (clean session 0).
pub trait SessionStore: Send + Sync {
    /// Creates or replaces the stored session of `session.client_id`.
    fn put_session(&self, session: &StoredSession) -> Result<(), StoreError>;
    fn delete_session(&self, client_id: &ClientId) -> Result<(), StoreError>;
    /// Every stored session, in client id order.
    fn sessions(&self) -> Result<Vec<StoredSession>, StoreError>;
}

/// Retained messages, one per topic.
pub trait RetainedStore: Send + Sync {
    /// Creates or replaces the retained message of `message.topic`.
    fn put_retained(&self, message: &Message) -> Result<(), StoreError>;
    fn delete_retained(&self, topic: &TopicName) -> Result<(), StoreError>;
    /// Every retained message, in topic order.
    fn retained(&self) -> Result<Vec<Message>, StoreError>;
}

/// Both halves, as the broker holds them.
pub trait Store: SessionStore + RetainedStore {}
impl<T: SessionStore + RetainedStore> Store for T {}

/// The in-memory reference store: the behaviour every other backend must match. It survives
/// a broker restart within one process (tests use that), not a process restart.
#[derive(Debug, Default)]
pub struct MemoryStore {
    /// Short sections only; never held across a call into the broker.
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    sessions: BTreeMap<ClientId, StoredSession>,
    retained: BTreeMap<TopicName, Message>,
}

impl MemoryStore {
    fn lock(&self) -> MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl SessionStore for MemoryStore {
    fn put_session(&self, session: &StoredSession) -> Result<(), StoreError> {
        self.lock().sessions.insert(session.client_id.clone(), session.clone());
        Ok(())
    }

    fn delete_session(&self, client_id: &ClientId) -> Result<(), StoreError> {
        self.lock().sessions.remove(client_id);
        Ok(())
    }

    fn sessions(&self) -> Result<Vec<StoredSession>, StoreError> {
        Ok(self.lock().sessions.values().cloned().collect())
    }
}

impl RetainedStore for MemoryStore {
    fn put_retained(&self, message: &Message) -> Result<(), StoreError> {
        self.lock().retained.insert(message.topic.clone(), message.clone());
        Ok(())
    }

    fn delete_retained(&self, topic: &TopicName) -> Result<(), StoreError> {
        self.lock().retained.remove(topic);
        Ok(())
    }

    fn retained(&self) -> Result<Vec<Message>, StoreError> {
        Ok(self.lock().retained.values().cloned().collect())
    }
}

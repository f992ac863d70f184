//! Writing the broker's persistent state through to its [`Store`], and loading it back.

use std::sync::Arc;
use std::time::Duration;

use tern_codec::TopicName;

use super::{write, Broker};
use crate::client_id::ClientId;
use crate::limits::{Features, Limits};
use crate::message::Message;
use crate::metrics::Metrics;
use crate::session::{PendingWill, Session, SessionState, SESSION_NEVER_EXPIRES};
use crate::store::record::{self, Clock, StoredSession, StoredWill};
use crate::store::{QueueSeq, Store, StoreError, StoreOp, Ticket};

impl Broker {
    /// A broker that keeps its persistent state in `store`, starting from what the store
    /// holds: persistent sessions (offline, with their subscriptions) and retained messages.
    pub fn with_store(limits: Limits, features: Features, store: Arc<dyn Store>) -> Result<Broker, StoreError> {
        let mut broker = Broker::new(limits);
        broker.features = features;
        let clock = Clock::now();
        {
            let mut retained = write(&broker.retained);
            for (_, record) in store.retained()? {
                retained.insert(Arc::new(record::decode_message(&record, clock)?));
            }
        }
        let mut deadlines = Vec::new();
        {
            let mut sessions = write(&broker.sessions);
            for found in store.sessions()? {
                let stored = record::decode_session(&found.client_id, &found.record, clock)?;
                let session = Session::new(stored.client_id.clone(), stored.expiry_interval);
                {
                    let mut state = session.lock();
                    state.incoming_qos2.extend(found.incoming_qos2.iter().copied());
                    state.stored.enabled = true;
                    state.stored.next_seq = Broker::first_seq_after(found.queue.last_seq);
                    state.stored.backlog_from = (found.queue.messages > 0).then_some(QueueSeq(0));
                    broker.count_stored(&mut state, found.queue.messages as i64, found.queue.bytes as i64);
                    for (filter, subscription) in stored.subscriptions {
                        broker.index_subscription(&filter, &stored.client_id, subscription);
                        state.subscriptions.insert(filter, subscription);
                    }
                    // A session that was connected when the broker stopped starts its offline
                    // period now.
                    if stored.expiry_interval != SESSION_NEVER_EXPIRES {
                        let at = stored
                            .expires_at
                            .unwrap_or(clock.instant + Duration::from_secs(u64::from(stored.expiry_interval)));
                        state.expires_at = Some(at);
                        deadlines.push((at, stored.client_id.clone()));
                    }
                    // A will kept with the session: its connection ended without DISCONNECT.
                    if let Some(will) = stored.will {
                        let due = will.due.unwrap_or(clock.instant + Duration::from_secs(u64::from(will.delay_secs)));
                        let due = state.expires_at.map_or(due, |end| due.min(end));
                        state.pending_will = Some(PendingWill { due, message: will.message });
                        deadlines.push((due, stored.client_id.clone()));
                    }
                }
                sessions.insert(stored.client_id, Arc::new(session));
            }
        }
        broker.store = Some(store);
        for (at, client_id) in deadlines {
            broker.schedule(at, client_id);
        }
        Ok(broker)
    }

    /// Applies one write to the store, if there is one. A failed write is logged and counted;
    /// it returns None, and the caller must not acknowledge what it was to make safe.
    pub(crate) fn store_write(&self, op: StoreOp) -> Option<Result<Ticket, StoreError>> {
        let store = self.store.as_ref()?;
        let result = store.write(op);
        if let Err(error) = &result {
            Metrics::incr(&self.metrics.store_errors);
            tracing::warn!(%error, "Store write failed");
        }
        Some(result)
    }

    pub fn store(&self) -> Option<&Arc<dyn Store>> {
        self.store.as_ref()
    }

    /// Writes a persistent session through to the store (subscriptions, expiry, will); the
    /// caller holds the session's lock, so what is stored matches what is in memory. From
    /// then on the session's QoS 1/2 deliveries are stored too. Returns the write to await
    /// before acknowledging what changed (SUBACK, UNSUBACK).
    pub fn store_session(&self, client_id: &ClientId, state: &mut SessionState) -> Option<Ticket> {
        if !state.is_persistent() || self.store.is_none() {
            return None;
        }
        state.stored.enabled = true;
        let will = match &state.pending_will {
            Some(pending) => {
                Some(StoredWill { message: pending.message.clone(), delay_secs: 0, due: Some(pending.due) })
            }
            None => state.connected_will.clone(),
        };
        let stored = StoredSession {
            client_id: client_id.clone(),
            expiry_interval: state.expiry_interval,
            expires_at: state.expires_at,
            subscriptions: state.subscriptions.iter().map(|(f, s)| (f.clone(), *s)).collect(),
            will,
        };
        let record = record::encode_session(&stored, Clock::now());
        self.store_write(StoreOp::PutSession { client_id: client_id.clone(), record })?.ok()
    }

    /// Removes a session and everything kept for it from the store (it ended, or stopped
    /// being persistent).
    pub fn unstore_session(&self, client_id: &ClientId, state: &mut SessionState) {
        if self.store.is_none() {
            return;
        }
        self.forget_stored(state);
        let _ = self.store_write(StoreOp::DeleteSession { client_id: client_id.clone() });
    }

    /// Writes a retained message through, or its removal.
    pub(super) fn store_retained(&self, message: &Message, removed: bool) -> Option<Result<Ticket, StoreError>> {
        self.store.as_ref()?;
        let topic: TopicName = message.topic.clone();
        let op = if removed {
            StoreOp::DeleteRetained { topic }
        } else {
            StoreOp::PutRetained { topic, record: record::encode_message(message, Clock::now()) }
        };
        self.store_write(op)
    }
}

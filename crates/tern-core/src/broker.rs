//! The broker's shared state: the session registry, the subscription index and the retained
//! messages, used directly and concurrently by every connection.
//!
//! Lock order (never take an earlier lock while holding a later one):
//! `sessions` -> a session's state -> `subscriptions` -> `retained` -> the store's own locks.
//! All are std locks held for short sections only; none is held across I/O.
//!
//! State that must survive a restart is written through to the [`Store`]: persistent
//! sessions with their subscriptions, and retained messages. It is loaded back by
//! [`Broker::with_store`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tern_codec::{SubscriptionOptions, TopicFilter};

use crate::client_id::ClientId;
use crate::limits::Limits;
use crate::message::{Delivery, Message};
use crate::metrics::Metrics;
use crate::retained::RetainedIndex;
use crate::session::{Session, SessionState, SessionWaker};
use crate::store::{MemoryStore, Store, StoreError, StoredSession};
use crate::subscriptions::SubscriptionIndex;

/// The answer to a claim.
pub enum ClaimResult {
    Claimed(Claim),
    /// Another connection owns the session and was asked to step down; the claimer's waker
    /// is woken when it has, and the claim should then be made again.
    Busy,
}

/// A session claimed by a new connection.
pub struct Claim {
    pub session: Arc<Session>,
    pub generation: u64,
    /// Whether an existing session was resumed ([MQTT-3.2.2-2]).
    pub session_present: bool,
    /// The connection that owned the session before, now told to go away.
    pub previous_owner: Option<Arc<dyn SessionWaker>>,
}

pub struct Broker {
    pub limits: Limits,
    pub metrics: Metrics,
    /// Every session, connected or not. Owner: the registry; a session leaves it when it ends.
    sessions: RwLock<HashMap<ClientId, Arc<Session>>>,
    /// Owner: the registry too; changed only together with a session's `subscriptions`.
    subscriptions: RwLock<SubscriptionIndex>,
    retained: RwLock<RetainedIndex>,
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Default for Broker {
    fn default() -> Self {
        Broker::new(Limits::default())
    }
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Broker {
    /// A broker with an empty in-memory store.
    pub fn new(limits: Limits) -> Broker {
        Broker {
            limits,
            metrics: Metrics::default(),
            sessions: RwLock::default(),
            subscriptions: RwLock::default(),
            retained: RwLock::default(),
            store: Arc::new(MemoryStore::default()),
        }
    }

    /// A broker that keeps its durable state in `store`, starting from what the store holds:
    /// persistent sessions (offline, with their subscriptions) and retained messages.
    pub fn with_store(limits: Limits, store: Arc<dyn Store>) -> Result<Broker, StoreError> {
        let mut broker = Broker::new(limits);
        broker.store = store;
        {
            let mut retained = write(&broker.retained);
            for message in broker.store.retained()? {
                retained.insert(Arc::new(message));
            }
        }
        {
            let mut sessions = write(&broker.sessions);
            let mut index = write(&broker.subscriptions);
            for stored in broker.store.sessions()? {
                let session = Session::new(stored.client_id.clone(), true);
                {
                    let mut state = session.lock();
                    for (filter, options) in stored.subscriptions {
                        index.insert(&filter, &stored.client_id, options);
                        state.subscriptions.insert(filter, options);
                    }
                }
                sessions.insert(stored.client_id, Arc::new(session));
            }
        }
        Ok(broker)
    }

    /// Writes a persistent session's subscriptions through to the store; the caller holds the
    /// session's lock, so what is stored matches what is in memory.
    pub fn store_session(&self, client_id: &ClientId, state: &SessionState) {
        if !state.persistent {
            return;
        }
        let stored = StoredSession {
            client_id: client_id.clone(),
            subscriptions: state.subscriptions.iter().map(|(f, o)| (f.clone(), *o)).collect(),
        };
        self.store_result(self.store.put_session(&stored));
    }

    fn store_result(&self, result: Result<(), StoreError>) {
        if let Err(error) = result {
            Metrics::incr(&self.metrics.store_errors);
            tracing::warn!(%error, "Store write failed");
        }
    }

    /// Gives `client_id`'s session to a new connection: resumes it (persistent and
    /// `clean_start` false), or replaces it with a fresh one ([MQTT-3.1.4-2]).
    ///
    /// While another connection owns the session, the claim is a handover: unless `force`,
    /// the owner is asked to step down and `Busy` is returned. The owner first applies what
    /// its client had already sent (acknowledgements sent just before reconnecting must not
    /// be lost), then releases the session and wakes `owner`, which claims again. With
    /// `force` (the owner did not step down in time) the owner is fenced by the generation
    /// bump instead, and returned so the caller can wake it.
    pub fn claim(
        &self,
        client_id: &ClientId,
        clean_start: bool,
        persistent: bool,
        owner: Arc<dyn SessionWaker>,
        force: bool,
    ) -> ClaimResult {
        let mut sessions = write(&self.sessions);
        if let Some(existing) = sessions.get(client_id).cloned() {
            let mut state = existing.lock();
            if !force && state.owner.is_some() {
                state.takeover_requested = true;
                state.takeover_waiters.push(owner);
                let current = state.owner.clone();
                drop(state);
                drop(sessions);
                if let Some(current) = current {
                    current.wake();
                }
                return ClaimResult::Busy;
            }
            state.takeover_requested = false;
            let previous_owner = state.owner.take();
            state.generation += 1;
            if !clean_start && state.persistent {
                state.owner = Some(owner);
                state.persistent = persistent;
                if !persistent {
                    self.store_result(self.store.delete_session(client_id));
                }
                let generation = state.generation;
                drop(state);
                return ClaimResult::Claimed(Claim {
                    session: existing,
                    generation,
                    session_present: true,
                    previous_owner,
                });
            }
            // Discard the old session ([MQTT-3.1.2-6]); its fenced connection will not touch it.
            let filters: Vec<TopicFilter> = state.subscriptions.drain().map(|(filter, _)| filter).collect();
            state.clear_queue();
            state.inflight.clear();
            state.incoming_qos2.clear();
            let generation = state.generation;
            let was_persistent = state.persistent;
            drop(state);
            self.unsubscribe_all(client_id, &filters);
            if was_persistent && !persistent {
                self.store_result(self.store.delete_session(client_id));
            }
            let session = Arc::new(Session::new(client_id.clone(), persistent));
            {
                let mut state = session.lock();
                state.generation = generation + 1;
                state.owner = Some(owner);
                self.store_session(client_id, &state);
            }
            sessions.insert(client_id.clone(), session.clone());
            return ClaimResult::Claimed(Claim {
                session,
                generation: generation + 1,
                session_present: false,
                previous_owner,
            });
        }
        let session = Arc::new(Session::new(client_id.clone(), persistent));
        let generation = {
            let mut state = session.lock();
            state.generation = 1;
            state.owner = Some(owner);
            self.store_session(client_id, &state);
            state.generation
        };
        sessions.insert(client_id.clone(), session.clone());
        ClaimResult::Claimed(Claim { session, generation, session_present: false, previous_owner: None })
    }

    /// Called when the connection of `generation` ends. A clean session ends with it
    /// ([MQTT-3.1.2-6]); a persistent one stays, offline, with its queue and in-flight
    /// messages. Does nothing if the connection was already taken over.
    pub fn release(&self, session: &Arc<Session>, generation: u64) {
        let waiters = self.release_locked(session, generation);
        // Connections waiting to take the session over may claim it now.
        for waiter in waiters {
            waiter.wake();
        }
    }

    fn release_locked(&self, session: &Arc<Session>, generation: u64) -> Vec<Arc<dyn SessionWaker>> {
        let mut sessions = write(&self.sessions);
        let mut state = session.lock();
        if state.generation != generation {
            return Vec::new();
        }
        state.owner = None;
        state.takeover_requested = false;
        let waiters = std::mem::take(&mut state.takeover_waiters);
        if state.persistent {
            return waiters;
        }
        let filters: Vec<TopicFilter> = state.subscriptions.drain().map(|(filter, _)| filter).collect();
        state.clear_queue();
        state.inflight.clear();
        drop(state);
        self.unsubscribe_all(&session.client_id, &filters);
        if sessions.get(&session.client_id).is_some_and(|s| Arc::ptr_eq(s, session)) {
            sessions.remove(&session.client_id);
        }
        waiters
    }

    fn unsubscribe_all(&self, client_id: &ClientId, filters: &[TopicFilter]) {
        let mut index = write(&self.subscriptions);
        for filter in filters {
            index.remove(filter, client_id);
        }
    }

    /// Adds a subscription to the index; the caller records it in the session's state while
    /// holding that session's lock, so the two agree.
    pub fn subscribe(&self, client_id: &ClientId, filter: &TopicFilter, options: SubscriptionOptions) -> bool {
        write(&self.subscriptions).insert(filter, client_id, options)
    }

    pub fn unsubscribe(&self, client_id: &ClientId, filter: &TopicFilter) -> bool {
        write(&self.subscriptions).remove(filter, client_id)
    }

    /// Routes a message: updates the retained messages when it is retained, then queues one
    /// delivery for every session with a matching subscription. The payload is shared, never
    /// copied per subscriber.
    pub fn publish(&self, message: Message) {
        Metrics::incr(&self.metrics.messages_received);
        let message = Arc::new(message);
        if message.retain {
            self.retain(&message);
        }
        let matches = read(&self.subscriptions).matches(&message.topic);
        if matches.is_empty() {
            return;
        }
        let sessions = read(&self.sessions);
        for found in matches {
            let Some(session) = sessions.get(&found.client_id) else {
                continue;
            };
            let delivery = Delivery {
                message: message.clone(),
                qos: message.qos.min(found.options.qos),
                // Live messages go out with retain 0 ([MQTT-3.3.1-9]).
                retain: false,
            };
            session.enqueue(delivery, &self.limits, &self.metrics);
        }
    }

    /// A retained message with an empty payload removes the topic's retained message
    /// ([MQTT-3.3.1-10]); any other replaces it ([MQTT-3.3.1-5]).
    fn retain(&self, message: &Arc<Message>) {
        let mut retained = write(&self.retained);
        if message.payload.is_empty() {
            if retained.remove(&message.topic) {
                self.store_result(self.store.delete_retained(&message.topic));
            }
        } else {
            retained.insert(message.clone());
            self.store_result(self.store.put_retained(message));
        }
    }

    /// Retained messages matching a new subscription's filter ([MQTT-3.3.1-6]).
    pub fn retained_matching(&self, filter: &TopicFilter) -> Vec<Arc<Message>> {
        read(&self.retained).matching(filter)
    }

    pub fn session_count(&self) -> usize {
        read(&self.sessions).len()
    }

    pub fn retained_count(&self) -> usize {
        read(&self.retained).len()
    }

    pub fn subscription_count(&self) -> usize {
        read(&self.subscriptions).len()
    }
}

//! The broker's shared state: the session registry, the subscription indexes and the retained
//! messages, used directly and concurrently by every connection.
//!
//! Lock order (never take an earlier lock while holding a later one):
//! `sessions` -> a session's state -> `subscriptions` / `shared` -> `retained` -> the store's
//! own locks. `deadlines` and `timer_waker` are leaves: taken alone, never while taking
//! another. All are std locks held for short sections only; none is held across I/O, and no
//! message is published while any of them is held.
//!
//! State that must survive a restart is written through to the [`Store`]: persistent
//! sessions with their subscriptions, and retained messages. It is loaded back by
//! [`Broker::with_store`].

mod persist;
mod queue;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use tern_codec::TopicFilter;

use crate::authz::{AllowAll, SharedAuthorizer};
use crate::client_id::ClientId;
use crate::limits::{Features, Limits};
use crate::message::{Delivery, Message};
use crate::metrics::Metrics;
use crate::retained::RetainedIndex;
use crate::session::{PendingWill, Session, SessionState, SessionWaker, SESSION_NEVER_EXPIRES};
use crate::shared::{SharedFilter, SharedSubscriptions, Strategy};
use crate::store::{Store, StoreError, Ticket};
use crate::subscriptions::{Subscription, SubscriptionIndex};

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

/// What routing one message came to.
#[derive(Debug, Clone, Default)]
pub struct Published {
    /// Deliveries queued or attempted (0: no subscriber matched).
    pub routed: usize,
    /// The last store write the message caused; it must be durable before the message is
    /// acknowledged to its publisher.
    pub ticket: Option<Ticket>,
    /// A store write failed: the message must not be acknowledged.
    pub failed: bool,
    /// Connected sessions whose queue took the message beyond its budget: the publisher
    /// should wait for them to drain before sending more ([`crate::Enqueued::Congested`]).
    pub congested: Vec<Arc<Session>>,
}

impl Published {
    fn add(&mut self, write: Option<Result<Ticket, StoreError>>) {
        match write {
            Some(Ok(ticket)) => self.ticket = self.ticket.max(Some(ticket)),
            Some(Err(_)) => self.failed = true,
            None => {}
        }
    }

    fn offered(&mut self, session: &Arc<Session>, offer: queue::Offer) {
        self.routed += 1;
        if offer.outcome == crate::session::Enqueued::Congested {
            self.congested.push(session.clone());
        }
        self.ticket = self.ticket.max(offer.ticket);
        self.failed |= offer.failed;
    }
}

/// A will handed to [`Broker::release`], with its 5.0 delay in seconds (0 for 3.x).
pub struct Will {
    pub message: Message,
    pub delay_secs: u32,
}

pub struct Broker {
    pub limits: Limits,
    pub features: Features,
    pub metrics: Metrics,
    /// Every session, connected or not. Owner: the registry; a session leaves it when it ends.
    sessions: RwLock<HashMap<ClientId, Arc<Session>>>,
    /// Non-shared subscriptions. Owner: the registry too; changed only together with a
    /// session's `subscriptions`, under that session's lock.
    subscriptions: RwLock<SubscriptionIndex>,
    /// Shared subscriptions (`$share/{group}/{filter}`), with their member selection state.
    shared: RwLock<SharedSubscriptions>,
    retained: RwLock<RetainedIndex>,
    /// Where persistent state is written through; None keeps everything in memory only.
    store: Option<Arc<dyn Store>>,
    /// Offline sessions' expiry and delayed wills, earliest first. An entry may be stale (the
    /// client came back); it is checked against the session when it falls due.
    deadlines: Mutex<BinaryHeap<Reverse<(Instant, ClientId)>>>,
    /// Wakes the task that calls [`Broker::tick`] when an earlier deadline arrives.
    timer_waker: Mutex<Option<Arc<dyn SessionWaker>>>,
    /// Who may publish and subscribe where. Replaced whole on a configuration reload; taken
    /// (an `Arc` clone under the read lock) for each decision, never held.
    authorizer: RwLock<SharedAuthorizer>,
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

fn lock<T>(lock: &Mutex<T>) -> MutexGuard<'_, T> {
    lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What ending a session leaves to do once the locks are released.
#[derive(Default)]
#[must_use]
struct Ended {
    wills: Vec<Message>,
    /// Connections waiting to take a released session over.
    waiters: Vec<Arc<dyn SessionWaker>>,
}

impl Broker {
    /// A broker that keeps everything in memory only.
    pub fn new(limits: Limits) -> Broker {
        Broker {
            limits,
            features: Features::default(),
            metrics: Metrics::default(),
            sessions: RwLock::default(),
            subscriptions: RwLock::default(),
            shared: RwLock::default(),
            retained: RwLock::default(),
            store: None,
            deadlines: Mutex::default(),
            timer_waker: Mutex::default(),
            authorizer: RwLock::new(Arc::new(AllowAll)),
        }
    }

    /// Sets the shared subscription member selection strategy.
    pub fn set_shared_strategy(&self, strategy: Strategy) {
        write(&self.shared).set_strategy(strategy);
    }

    /// Replaces the authorizer; connected clients are judged by the new one from their next
    /// PUBLISH or SUBSCRIBE on.
    pub fn set_authorizer(&self, authorizer: SharedAuthorizer) {
        *write(&self.authorizer) = authorizer;
    }

    pub fn authorizer(&self) -> SharedAuthorizer {
        read(&self.authorizer).clone()
    }

    /// Registers the waker of the task that runs [`Broker::tick`].
    pub fn set_timer_waker(&self, waker: Arc<dyn SessionWaker>) {
        *lock(&self.timer_waker) = Some(waker);
    }

    fn schedule(&self, at: Instant, client_id: ClientId) {
        let earliest = {
            let mut deadlines = lock(&self.deadlines);
            let earliest = deadlines.peek().is_none_or(|Reverse((first, _))| at < *first);
            deadlines.push(Reverse((at, client_id)));
            earliest
        };
        if earliest {
            if let Some(waker) = lock(&self.timer_waker).clone() {
                waker.wake();
            }
        }
    }

    /// The earliest pending deadline, for the task that calls [`Broker::tick`].
    pub fn next_deadline(&self) -> Option<Instant> {
        lock(&self.deadlines).peek().map(|Reverse((at, _))| *at)
    }

    /// Gives `client_id`'s session to a new connection: resumes it (persistent and
    /// `clean_start` false), or replaces it with a fresh one ([MQTT-3.1.4-2]). A delayed will
    /// of the session is cancelled when it is resumed ([MQTT-3.1.3-9]) and published when it
    /// is replaced.
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
        expiry_interval: u32,
        owner: Arc<dyn SessionWaker>,
        now: Instant,
        force: bool,
    ) -> ClaimResult {
        {
            let sessions = read(&self.sessions);
            if let Some(existing) = sessions.get(client_id) {
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
            }
        }
        let mut ended = Ended::default();
        let claim = {
            let mut sessions = write(&self.sessions);
            let existing = sessions.get(client_id).cloned();
            let mut claim = None;
            if let Some(existing) = existing {
                let mut state = existing.lock();
                if !force && state.owner.is_some() {
                    // Claimed by another connection between our two looks; ask again.
                    state.takeover_waiters.push(owner.clone());
                    drop(state);
                    drop(sessions);
                    return ClaimResult::Busy;
                }
                state.takeover_requested = false;
                let previous_owner = state.owner.take();
                state.generation += 1;
                let expired = state.expires_at.is_some_and(|at| at <= now);
                if !clean_start && state.is_persistent() && !expired {
                    state.pending_will = None;
                    state.owner = Some(owner.clone());
                    state.expiry_interval = expiry_interval;
                    state.expires_at = None;
                    if expiry_interval == 0 {
                        self.unstore_session(client_id, &mut state);
                    } else {
                        self.store_session(client_id, &mut state);
                        // Messages stored while the broker was down, or beyond the window.
                        self.page_in(client_id, &mut state);
                    }
                    let generation = state.generation;
                    drop(state);
                    claim = Some(Claim { session: existing, generation, session_present: true, previous_owner });
                } else {
                    // Discard the old session ([MQTT-3.1.2-6], [MQTT-3.1.2-4] with clean start).
                    ended = self.end_session_locked(&mut sessions, &existing, state);
                    let session = self.new_session(&mut sessions, client_id, expiry_interval, owner.clone());
                    let generation = session.lock().generation;
                    claim = Some(Claim { session, generation, session_present: false, previous_owner });
                }
            }
            claim.unwrap_or_else(|| {
                let session = self.new_session(&mut sessions, client_id, expiry_interval, owner);
                let generation = session.lock().generation;
                Claim { session, generation, session_present: false, previous_owner: None }
            })
        };
        self.finish(ended);
        ClaimResult::Claimed(claim)
    }

    fn new_session(
        &self,
        sessions: &mut HashMap<ClientId, Arc<Session>>,
        client_id: &ClientId,
        expiry_interval: u32,
        owner: Arc<dyn SessionWaker>,
    ) -> Arc<Session> {
        let session = Arc::new(Session::new(client_id.clone(), expiry_interval));
        {
            // A connection of a replaced session holds the old `Session` and is fenced by its
            // generation; the new session's generations start afresh.
            let mut state = session.lock();
            state.generation = 1;
            state.owner = Some(owner);
            self.store_session(client_id, &mut state);
        }
        sessions.insert(client_id.clone(), session.clone());
        session
    }

    /// Removes a session: its subscriptions, its queue, its stored copy. Its pending will is
    /// returned for publishing once the locks are released ([MQTT-3.1.3-9]: the will goes at
    /// the latest when the session ends).
    fn end_session_locked(
        &self,
        sessions: &mut HashMap<ClientId, Arc<Session>>,
        session: &Arc<Session>,
        mut state: MutexGuard<'_, SessionState>,
    ) -> Ended {
        let subscriptions: Vec<(TopicFilter, Subscription)> = state.subscriptions.drain().collect();
        let was_persistent = state.is_persistent();
        let mut ended = Ended::default();
        ended.wills.extend(state.pending_will.take().map(|pending| pending.message));
        ended.waiters = std::mem::take(&mut state.takeover_waiters);
        state.clear_queue();
        state.inflight.clear();
        state.incoming_qos2.clear();
        state.expiry_interval = 0;
        state.expires_at = None;
        if was_persistent {
            self.unstore_session(&session.client_id, &mut state);
        }
        drop(state);
        for (filter, _) in &subscriptions {
            self.unindex_subscription(filter, &session.client_id);
        }
        if sessions.get(&session.client_id).is_some_and(|s| Arc::ptr_eq(s, session)) {
            sessions.remove(&session.client_id);
        }
        ended
    }

    fn finish(&self, ended: Ended) {
        for will in ended.wills {
            Metrics::incr(&self.metrics.wills_published);
            self.publish(will);
        }
        for waiter in ended.waiters {
            waiter.wake();
        }
    }

    /// Called when the connection of `generation` ends, with its will if it is to be
    /// published. A session with expiry 0 ends now ([MQTT-3.1.2-6]); another stays offline
    /// with its queue and in-flight messages until it expires. The will goes out now, or after
    /// its delay, or when the session ends, whichever is first ([MQTT-3.1.3-9]).
    pub fn release(&self, session: &Arc<Session>, generation: u64, will: Option<Will>, now: Instant) {
        let mut publish_now = Vec::new();
        let mut ended = Ended::default();
        {
            let mut sessions = write(&self.sessions);
            let mut state = session.lock();
            if state.generation != generation {
                // Taken over. The new connection was made before any will delay passed, so a
                // delayed will is cancelled if the session lives on ([MQTT-3.1.3-9]).
                let session_lives_on = sessions.get(&session.client_id).is_some_and(|s| Arc::ptr_eq(s, session));
                if let Some(will) = will {
                    if will.delay_secs == 0 || !session_lives_on {
                        publish_now.push(will.message);
                    }
                }
            } else {
                state.owner = None;
                state.takeover_requested = false;
                // Connections waiting to take the session over may claim it now; publishers
                // slowed down for this client need not wait for it any more.
                ended.waiters = std::mem::take(&mut state.takeover_waiters);
                ended.waiters.append(&mut state.drain_waiters);
                if state.is_persistent() {
                    if state.expiry_interval != SESSION_NEVER_EXPIRES {
                        let at = now + Duration::from_secs(u64::from(state.expiry_interval));
                        state.expires_at = Some(at);
                        self.schedule(at, session.client_id.clone());
                    }
                    match will {
                        Some(will) if will.delay_secs > 0 => {
                            let due = now + Duration::from_secs(u64::from(will.delay_secs));
                            let due = state.expires_at.map_or(due, |end| due.min(end));
                            state.pending_will = Some(PendingWill { due, message: will.message });
                            self.schedule(due, session.client_id.clone());
                        }
                        Some(will) => publish_now.push(will.message),
                        None => {}
                    }
                    // The offline session's expiry and delayed will, in place of the will of
                    // the connection.
                    state.connected_will = None;
                    self.store_session(&session.client_id, &mut state);
                } else {
                    publish_now.extend(will.map(|will| will.message));
                    let waiters = std::mem::take(&mut ended.waiters);
                    ended = self.end_session_locked(&mut sessions, session, state);
                    ended.waiters = waiters;
                }
            }
        }
        ended.wills.splice(0..0, publish_now);
        self.finish(ended);
    }

    /// Publishes delayed wills that are due and ends offline sessions that expired
    /// ([MQTT-3.1.2-?] session expiry). Returns the next deadline.
    pub fn tick(&self, now: Instant) -> Option<Instant> {
        let due: Vec<ClientId> = {
            let mut deadlines = lock(&self.deadlines);
            let mut due = Vec::new();
            while deadlines.peek().is_some_and(|Reverse((at, _))| *at <= now) {
                if let Some(Reverse((_, client_id))) = deadlines.pop() {
                    due.push(client_id);
                }
            }
            due
        };
        let mut ended = Ended::default();
        if !due.is_empty() {
            let mut sessions = write(&self.sessions);
            for client_id in due {
                let Some(session) = sessions.get(&client_id).cloned() else { continue };
                let mut state = session.lock();
                if state.owner.is_some() {
                    continue;
                }
                if state.pending_will.as_ref().is_some_and(|pending| pending.due <= now) {
                    ended.wills.extend(state.pending_will.take().map(|pending| pending.message));
                    // Published once: a restart must not publish it again.
                    self.store_session(&client_id, &mut state);
                }
                if state.expires_at.is_some_and(|at| at <= now) {
                    Metrics::incr(&self.metrics.sessions_expired);
                    let more = self.end_session_locked(&mut sessions, &session, state);
                    ended.wills.extend(more.wills);
                }
            }
        }
        self.finish(ended);
        self.next_deadline()
    }

    fn index_subscription(&self, filter: &TopicFilter, client_id: &ClientId, subscription: Subscription) -> bool {
        match SharedFilter::parse(filter) {
            Some(shared) => write(&self.shared).insert(&shared, client_id, subscription),
            None => write(&self.subscriptions).insert(filter, client_id, subscription),
        }
    }

    fn unindex_subscription(&self, filter: &TopicFilter, client_id: &ClientId) -> bool {
        match SharedFilter::parse(filter) {
            Some(shared) => write(&self.shared).remove(&shared, client_id),
            None => write(&self.subscriptions).remove(filter, client_id),
        }
    }

    /// Adds a subscription to the index (shared or not); the caller records it in the
    /// session's state while holding that session's lock, so the two agree.
    pub fn subscribe(&self, client_id: &ClientId, filter: &TopicFilter, subscription: Subscription) -> bool {
        self.index_subscription(filter, client_id, subscription)
    }

    pub fn unsubscribe(&self, client_id: &ClientId, filter: &TopicFilter) -> bool {
        self.unindex_subscription(filter, client_id)
    }

    /// Routes a message; see [`Broker::publish_tracked`]. Returns the number of deliveries
    /// queued or attempted (0 means no subscriber matched).
    pub fn publish(&self, message: Message) -> usize {
        self.publish_tracked(message).routed
    }

    /// Routes a message: updates the retained messages when it is retained, then queues one
    /// delivery for every session with a matching subscription and one per matching shared
    /// subscription group. The payload is shared, never copied per subscriber. Says which
    /// store write must be durable before the message is acknowledged.
    pub fn publish_tracked(&self, message: Message) -> Published {
        Metrics::incr(&self.metrics.messages_received);
        let message = Arc::new(message);
        let mut published = Published::default();
        if message.retain {
            published.add(self.retain(&message));
        }
        let matches = read(&self.subscriptions).matches(&message.topic, message.origin.as_ref());
        let shared = self.pick_shared_members(&message);
        if matches.is_empty() && shared.is_empty() {
            return published;
        }
        let sessions = read(&self.sessions);
        for found in matches {
            let Some(session) = sessions.get(&found.client_id) else { continue };
            let delivery = Delivery {
                message: message.clone(),
                qos: message.qos.min(found.qos),
                // Live messages go out with retain 0 unless the subscription asked for retain
                // as published ([MQTT-3.3.1-9], [MQTT-3.3.1-12]).
                retain: found.retain_as_published && message.retain,
                subscription_identifiers: found.subscription_identifiers,
                shared_group: None,
                stored: None,
            };
            published.offered(session, self.offer(session, delivery));
        }
        for (group, member) in shared {
            let Some(session) = sessions.get(&member.client_id) else { continue };
            let delivery = Delivery {
                message: message.clone(),
                qos: message.qos.min(member.subscription.options.qos),
                retain: member.subscription.options.retain_as_published && message.retain,
                subscription_identifiers: member.subscription.identifier.into_iter().collect(),
                shared_group: Some(group),
                stored: None,
            };
            published.offered(session, self.offer(session, delivery));
        }
        published
    }

    fn pick_shared_members(&self, message: &Message) -> Vec<(crate::shared::GroupKey, crate::shared::Member)> {
        let shared = read(&self.shared);
        if shared.is_empty() {
            return Vec::new();
        }
        let sessions = read(&self.sessions);
        // A member whose client is connected is preferred, so messages are not parked in an
        // offline member's queue while another member could take them.
        let online = |client_id: &ClientId| sessions.get(client_id).is_some_and(|s| s.lock().owner.is_some());
        shared.pick(&message.topic, message.origin.as_ref(), &online)
    }

    /// Hands deliveries that a leaving shared-subscription member had not completed to other
    /// members of their groups, so they are not lost ([MQTT-4.8.2-?]): a connected member if
    /// there is one, else any other member (its session queues them), else back to `from`.
    pub fn redispatch_shared(&self, from: &ClientId, deliveries: Vec<Delivery>) {
        if deliveries.is_empty() {
            return;
        }
        let shared = read(&self.shared);
        let sessions = read(&self.sessions);
        let connected_other = |client_id: &ClientId| {
            client_id != from && sessions.get(client_id).is_some_and(|s| s.lock().owner.is_some())
        };
        let any_other = |client_id: &ClientId| client_id != from;
        for delivery in deliveries {
            let Some(group) = delivery.shared_group.clone() else { continue };
            let topic = &delivery.message.topic;
            let member = shared
                .pick_in_group(&group, topic, &connected_other)
                .or_else(|| shared.pick_in_group(&group, topic, &any_other));
            let target = member.as_ref().and_then(|m| sessions.get(&m.client_id).map(|s| (s, m)));
            match target {
                Some((session, member)) => {
                    Metrics::incr(&self.metrics.shared_redispatched);
                    let redirected = Delivery {
                        qos: delivery.message.qos.min(member.subscription.options.qos),
                        subscription_identifiers: member.subscription.identifier.into_iter().collect(),
                        stored: None,
                        ..delivery
                    };
                    let _ = self.offer(session, redirected);
                }
                None => {
                    if let Some(session) = sessions.get(from) {
                        session.lock().push_unbounded(delivery);
                    }
                }
            }
        }
    }

    /// A retained message with an empty payload removes the topic's retained message
    /// ([MQTT-3.3.1-10]); any other replaces it ([MQTT-3.3.1-5]).
    fn retain(&self, message: &Arc<Message>) -> Option<Result<Ticket, StoreError>> {
        let mut retained = write(&self.retained);
        if message.payload.is_empty() {
            if retained.remove(&message.topic) {
                return self.store_retained(message, true);
            }
            None
        } else {
            retained.insert(message.clone());
            self.store_retained(message, false)
        }
    }

    /// Retained messages matching a new subscription's filter that have not expired
    /// ([MQTT-3.3.1-6], [MQTT-3.3.2-5]).
    pub fn retained_matching(&self, filter: &TopicFilter, now: Instant) -> Vec<Arc<Message>> {
        let mut found = read(&self.retained).matching(filter);
        found.retain(|message| !message.is_expired(now));
        found
    }

    pub fn session_count(&self) -> usize {
        read(&self.sessions).len()
    }

    pub fn retained_count(&self) -> usize {
        read(&self.retained).len()
    }

    pub fn subscription_count(&self) -> usize {
        read(&self.subscriptions).len() + read(&self.shared).len()
    }
}

//! A session: the state that outlives one network connection ([MQTT-4.1]).
//!
//! The state sits behind one std `Mutex` per session. Publishers lock it briefly to queue a
//! delivery; the owning connection locks it briefly to take messages out and to record
//! acknowledgements. It is never held across an `.await` (tern-core has none) and never while
//! another session's lock is held.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use std::time::{Duration, Instant};

use tern_codec::{PacketId, QoS, TopicFilter, TopicName};

use crate::client_id::ClientId;
use crate::limits::Limits;
use crate::message::{Delivery, Message};
use crate::metrics::Metrics;
use crate::store::{QueueSeq, StoredWill};
use crate::subscriptions::Subscription;

/// Tells a connection task that its session has something for it: new messages to send, or
/// that it no longer owns the session (its generation was bumped by a takeover).
pub trait SessionWaker: Send + Sync {
    fn wake(&self);
}

/// A session shared between its connection (if any) and every publisher.
pub struct Session {
    pub client_id: ClientId,
    state: Mutex<SessionState>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("client_id", &self.client_id).finish_non_exhaustive()
    }
}

/// Where an outgoing QoS 1/2 message stands in its acknowledgement flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutgoingState {
    /// QoS 1 PUBLISH sent, waiting for PUBACK.
    AwaitingPubAck,
    /// QoS 2 PUBLISH sent, waiting for PUBREC.
    AwaitingPubRec,
    /// PUBREL sent, waiting for PUBCOMP.
    AwaitingPubComp,
}

/// An outgoing message that has a packet identifier and is not yet fully acknowledged.
#[derive(Debug, Clone)]
pub struct Inflight {
    pub packet_id: PacketId,
    pub delivery: Delivery,
    pub state: OutgoingState,
}

/// Outcome of offering a delivery to a session's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Queued,
    /// A QoS 0 message was not queued (queue full, or the client is offline).
    DroppedQos0,
    /// A QoS 1/2 message was refused because the queue is full.
    DroppedFull,
    /// A message for a connected client was queued beyond the budget, up to a hard cap: the
    /// publisher must slow down (backpressure) rather than the message be dropped (after it
    /// was acknowledged, at QoS 1/2).
    Congested,
}

/// How far beyond `max_queued_messages` a connected client's queue may grow with live
/// messages while their publishers are being slowed down.
const CONGESTION_FACTOR: usize = 4;

/// A connected client that has taken nothing from its full queue for this long is stalled:
/// its QoS 0 messages are dropped rather than its publishers held back by it.
pub const STALLED_AFTER: Duration = Duration::from_millis(500);

#[derive(Debug)]
pub struct SessionState {
    /// Bumped each time a connection claims the session; a connection whose generation is
    /// older has been taken over and must stop touching the session.
    pub generation: u64,
    /// The connection that owns the session now, if the client is connected.
    pub owner: Option<Arc<dyn SessionWaker>>,
    /// A new connection for this client id asked the owner to step down: the owner applies
    /// what it has already received, then releases the session ([`crate::Broker::claim`]).
    pub takeover_requested: bool,
    /// New connections waiting for the owner to release the session; woken on release.
    pub takeover_waiters: Vec<Arc<dyn SessionWaker>>,
    /// Seconds the session outlives its connection: 0 ends it with the connection (3.1.1
    /// CleanSession=1), [`SESSION_NEVER_EXPIRES`] keeps it forever (3.1.1 CleanSession=0).
    pub expiry_interval: u32,
    /// When the offline session ends; None while connected or when it never expires.
    pub expires_at: Option<Instant>,
    /// A will waiting for its delay to pass (5.0 Will Delay Interval) ([MQTT-3.1.3-9]).
    pub pending_will: Option<PendingWill>,
    pub subscriptions: HashMap<TopicFilter, Subscription>,
    /// Deliveries waiting for a packet id and room in the in-flight window, oldest first.
    queue: VecDeque<Delivery>,
    queued_bytes: usize,
    /// Outgoing QoS 1/2 messages sent and not yet acknowledged, in the order sent.
    pub inflight: VecDeque<Inflight>,
    /// QoS 2 packet ids received (PUBREC sent) and not yet released by PUBREL.
    pub incoming_qos2: HashSet<PacketId>,
    next_packet_id: PacketId,
    /// The part of the queue kept in the store, for a persistent session of a broker with one.
    pub stored: StoredQueue,
    /// The will of the connected client, kept with a persistent session so that it is
    /// published after a restart (the connection ended without DISCONNECT).
    pub connected_will: Option<StoredWill>,
    /// Connections of publishers slowed down because this queue is over its budget; woken
    /// when it drains to half of it.
    pub drain_waiters: Vec<Arc<dyn SessionWaker>>,
    /// When the connected client last took messages from the queue: one that has not for
    /// [`STALLED_AFTER`] no longer slows its QoS 0 publishers down.
    pub last_drained: Option<Instant>,
}

/// A persistent session's stored queue. Every QoS 1/2 delivery is written to the store; the
/// in-memory queue holds a window of it, the oldest first. When the window is full, newer
/// deliveries stay in the store only (the backlog) and are paged in as the window drains, so
/// a long offline queue, or every queue after a restart, costs no memory until it is sent.
#[derive(Debug, Clone, Default)]
pub struct StoredQueue {
    /// Whether this session's deliveries are written to the store.
    pub enabled: bool,
    /// The seq of the next delivery enqueued.
    pub next_seq: QueueSeq,
    /// The first stored delivery not in memory, while there is a backlog.
    pub backlog_from: Option<QueueSeq>,
    /// Stored deliveries and the bytes of their records, for the stored budget.
    pub messages: u64,
    pub bytes: u64,
}

/// How far past a QoS 1/2 message blocked by a full in-flight window the queue is searched for
/// a QoS 0 message that may go first.
const QOS0_LOOKAHEAD: usize = 64;

/// A session expiry interval that means "never" ([MQTT-3.1.2-?] 0xFFFFFFFF).
pub const SESSION_NEVER_EXPIRES: u32 = u32::MAX;

/// A will whose publication is delayed.
#[derive(Debug, Clone)]
pub struct PendingWill {
    pub due: Instant,
    pub message: Message,
}

impl std::fmt::Debug for dyn SessionWaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionWaker")
    }
}

impl Session {
    pub fn new(client_id: ClientId, expiry_interval: u32) -> Session {
        Session {
            client_id,
            state: Mutex::new(SessionState {
                generation: 0,
                owner: None,
                takeover_requested: false,
                takeover_waiters: Vec::new(),
                expiry_interval,
                expires_at: None,
                pending_will: None,
                subscriptions: HashMap::new(),
                queue: VecDeque::new(),
                queued_bytes: 0,
                inflight: VecDeque::new(),
                incoming_qos2: HashSet::new(),
                next_packet_id: PacketId::new(1).expect("1 is a valid packet id"),
                stored: StoredQueue { next_seq: QueueSeq(1), ..StoredQueue::default() },
                connected_will: None,
                drain_waiters: Vec::new(),
                last_drained: None,
            }),
        }
    }

    /// Locks the state. A poisoned lock means a panic elsewhere already broke an invariant;
    /// the state is still structurally sound, so keep serving rather than cascade the panic.
    pub fn lock(&self) -> MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Offers a delivery to this session under its budget, and wakes its connection.
    pub fn enqueue(&self, delivery: Delivery, limits: &Limits, metrics: &Metrics) -> Enqueued {
        Session::enqueue_locked(self.lock(), delivery, limits, metrics)
    }

    /// [`Session::enqueue`] with the lock already taken; it is released before waking.
    ///
    /// Policy when the queue is full (by messages or bytes): a QoS 1/2 message displaces the
    /// oldest queued QoS 0 message if there is one. Otherwise, for a connected client, the
    /// message is queued beyond the budget up to a hard cap and its publisher is slowed down
    /// ([`Enqueued::Congested`]); beyond the cap, or for a client that is offline, a QoS 0
    /// message is dropped and a QoS 1/2 one refused. A QoS 0 message only slows publishers
    /// down for a client that is reading (it took messages within [`STALLED_AFTER`]): one that
    /// stopped reading has QoS 0 dropped at once. Every drop is counted.
    pub(crate) fn enqueue_locked(
        mut state: MutexGuard<'_, SessionState>,
        delivery: Delivery,
        limits: &Limits,
        metrics: &Metrics,
    ) -> Enqueued {
        let (outcome, displaced) = state.push(delivery, limits);
        let waker = state.owner.clone();
        drop(state);
        for _ in 0..displaced {
            Metrics::incr(&metrics.dropped_qos0_queue_full);
        }
        match outcome {
            Enqueued::Queued | Enqueued::Congested => {
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
            Enqueued::DroppedQos0 => Metrics::incr(&metrics.dropped_qos0_queue_full),
            Enqueued::DroppedFull => Metrics::incr(&metrics.dropped_queue_full),
        }
        outcome
    }
}

impl SessionState {
    /// Whether the session outlives its connection.
    pub fn is_persistent(&self) -> bool {
        self.expiry_interval > 0
    }

    /// Queues under the budget; returns the outcome and how many queued QoS 0 messages were
    /// displaced to make room.
    pub(crate) fn push(&mut self, delivery: Delivery, limits: &Limits) -> (Enqueued, usize) {
        // QoS 0 messages are not kept for a disconnected client (as Mosquitto does by default).
        if self.owner.is_none() && delivery.qos == QoS::AtMostOnce {
            return (Enqueued::DroppedQos0, 0);
        }
        let cost = delivery.message.cost();
        let full = |state: &SessionState| !state.has_room(cost, limits);
        let mut displaced = 0;
        let under_cap = |state: &SessionState| {
            state.owner.is_some()
                && state.queue.len() < limits.max_queued_messages.saturating_mul(CONGESTION_FACTOR)
                && state.queued_bytes + cost <= limits.max_queued_bytes.saturating_mul(2)
        };
        if full(self) {
            if delivery.qos == QoS::AtMostOnce {
                // A connected subscriber that is behind but reading slows its publishers down
                // rather than lose what it could take a moment later; beyond the cap, or once
                // it has stalled, QoS 0 is dropped.
                let reading = self.last_drained.is_some_and(|at| at.elapsed() < STALLED_AFTER);
                if reading && under_cap(self) {
                    self.push_unbounded(delivery);
                    return (Enqueued::Congested, 0);
                }
                return (Enqueued::DroppedQos0, 0);
            }
            while full(self) {
                let Some(index) = self.queue.iter().position(|d| d.qos == QoS::AtMostOnce) else {
                    if under_cap(self) {
                        self.push_unbounded(delivery);
                        return (Enqueued::Congested, displaced);
                    }
                    return (Enqueued::DroppedFull, displaced);
                };
                if let Some(dropped) = self.queue.remove(index) {
                    self.queued_bytes -= dropped.message.cost();
                    displaced += 1;
                }
            }
        }
        self.queued_bytes += cost;
        self.queue.push_back(delivery);
        (Enqueued::Queued, displaced)
    }

    /// Whether the in-memory queue has room for a message of `cost` bytes.
    pub fn has_room(&self, cost: usize, limits: &Limits) -> bool {
        self.queue.len() < limits.max_queued_messages && self.queued_bytes + cost <= limits.max_queued_bytes
    }

    /// Queues a delivery regardless of the budget. Used for retained messages sent on
    /// SUBSCRIBE, which are bounded by the retained index itself and must not be lost to a
    /// full queue.
    pub fn push_unbounded(&mut self, delivery: Delivery) {
        self.queued_bytes += delivery.message.cost();
        self.queue.push_back(delivery);
    }

    /// Takes the next queued delivery if it may be sent now: QoS 1/2 only while the in-flight
    /// window has room ([MQTT-3.3.4-7]), QoS 0 always. While the window is full, a QoS 0
    /// message may go ahead of waiting QoS 1/2 messages (flow control covers QoS 1 and 2
    /// only, [MQTT-4.9.0-3]) but never ahead of one on its own topic, so order per topic is
    /// kept ([MQTT-4.6.0-6]). The look-ahead is bounded.
    pub fn pop_sendable(&mut self, max_inflight: usize) -> Option<Delivery> {
        let front = self.queue.front()?;
        let index = if front.qos == QoS::AtMostOnce || self.inflight.len() < max_inflight {
            0
        } else {
            let mut waiting_topics: Vec<&TopicName> = Vec::new();
            let mut found = None;
            for (index, delivery) in self.queue.iter().enumerate().take(QOS0_LOOKAHEAD) {
                let topic = &delivery.message.topic;
                if delivery.qos != QoS::AtMostOnce {
                    waiting_topics.push(topic);
                } else if !waiting_topics.contains(&topic) {
                    found = Some(index);
                    break;
                }
            }
            found?
        };
        let delivery = self.queue.remove(index)?;
        self.queued_bytes -= delivery.message.cost();
        Some(delivery)
    }

    /// The publishers to wake once the queue has drained to half its budget.
    pub fn drained_waiters(&mut self, limits: &Limits) -> Vec<Arc<dyn SessionWaker>> {
        if self.drain_waiters.is_empty() || self.queue.len() > limits.max_queued_messages / 2 {
            return Vec::new();
        }
        std::mem::take(&mut self.drain_waiters)
    }

    /// Registers a publisher to wake when the queue drains; false if it is within budget
    /// already (nothing to wait for).
    pub fn wait_for_drain(&mut self, waker: &Arc<dyn SessionWaker>, limits: &Limits) -> bool {
        if self.queue.len() < limits.max_queued_messages {
            return false;
        }
        if !self.drain_waiters.iter().any(|w| Arc::ptr_eq(w, waker)) {
            self.drain_waiters.push(waker.clone());
        }
        true
    }

    pub fn queued_len(&self) -> usize {
        self.queue.len()
    }

    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Drops every queued delivery (a clean session ending).
    pub fn clear_queue(&mut self) {
        self.queue.clear();
        self.queued_bytes = 0;
    }

    /// A packet identifier not used by any in-flight outgoing message ([MQTT-2.3.1-2]).
    pub fn allocate_packet_id(&mut self) -> PacketId {
        loop {
            let candidate = self.next_packet_id;
            self.next_packet_id = candidate.next();
            if !self.inflight.iter().any(|i| i.packet_id == candidate) {
                return candidate;
            }
        }
    }

    /// Takes out the deliveries chosen for this session as a shared-subscription member that
    /// it has not finished: queued ones, and in-flight ones the client has not received for
    /// sure (a PUBREC means it has them) ([MQTT-4.8.2-?]).
    pub fn take_unfinished_shared(&mut self) -> Vec<Delivery> {
        let mut taken = Vec::new();
        let mut index = 0;
        while index < self.inflight.len() {
            let entry = &self.inflight[index];
            if entry.delivery.shared_group.is_some() && entry.state != OutgoingState::AwaitingPubComp {
                if let Some(entry) = self.inflight.remove(index) {
                    taken.push(entry.delivery);
                }
            } else {
                index += 1;
            }
        }
        let (shared, kept): (VecDeque<Delivery>, VecDeque<Delivery>) =
            self.queue.drain(..).partition(|delivery| delivery.shared_group.is_some());
        self.queue = kept;
        for delivery in &shared {
            self.queued_bytes -= delivery.message.cost();
        }
        taken.extend(shared);
        taken
    }

    pub fn inflight_position(&self, packet_id: PacketId) -> Option<usize> {
        self.inflight.iter().position(|i| i.packet_id == packet_id)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use tern_codec::{Properties, TopicName};

    use super::*;

    struct NoopWaker;
    impl SessionWaker for NoopWaker {
        fn wake(&self) {}
    }

    fn delivery(qos: QoS, payload: &'static [u8]) -> Delivery {
        Delivery {
            message: Arc::new(Message {
                topic: TopicName::new("t").unwrap(),
                payload: Bytes::from_static(payload),
                qos,
                retain: false,
                properties: Properties::default(),
                expires_at: None,
                origin: None,
            }),
            qos,
            retain: false,
            subscription_identifiers: Vec::new(),
            shared_group: None,
            stored: None,
        }
    }

    fn online_session() -> Session {
        let session = Session::new(ClientId::new("c"), SESSION_NEVER_EXPIRES);
        session.lock().owner = Some(Arc::new(NoopWaker));
        session
    }

    #[test]
    fn full_queue_displaces_qos0_first_then_slows_publishers_then_refuses() {
        let limits = Limits { max_queued_messages: 3, ..Limits::default() };
        let metrics = Metrics::default();
        let session = online_session();
        assert_eq!(session.enqueue(delivery(QoS::AtMostOnce, b"a"), &limits, &metrics), Enqueued::Queued);
        assert_eq!(session.enqueue(delivery(QoS::AtLeastOnce, b"b"), &limits, &metrics), Enqueued::Queued);
        assert_eq!(session.enqueue(delivery(QoS::AtMostOnce, b"c"), &limits, &metrics), Enqueued::Queued);
        // Full: a new QoS 1 displaces the oldest QoS 0 ("a"), then the next one ("c").
        assert_eq!(session.enqueue(delivery(QoS::AtLeastOnce, b"e"), &limits, &metrics), Enqueued::Queued);
        assert_eq!(session.enqueue(delivery(QoS::ExactlyOnce, b"f"), &limits, &metrics), Enqueued::Queued);
        // No QoS 0 left to displace: a connected client's queue takes it beyond the budget
        // (its publisher is slowed down), up to 4 times the budget; then it is refused.
        assert_eq!(session.enqueue(delivery(QoS::ExactlyOnce, b"g"), &limits, &metrics), Enqueued::Congested);
        for _ in 0..8 {
            assert_eq!(session.enqueue(delivery(QoS::AtLeastOnce, b"h"), &limits, &metrics), Enqueued::Congested);
        }
        assert_eq!(session.enqueue(delivery(QoS::AtLeastOnce, b"i"), &limits, &metrics), Enqueued::DroppedFull);
        assert_eq!(session.enqueue(delivery(QoS::AtMostOnce, b"j"), &limits, &metrics), Enqueued::DroppedQos0);
        let mut state = session.lock();
        let payloads: Vec<Bytes> =
            std::iter::from_fn(|| state.pop_sendable(20)).map(|d| d.message.payload.clone()).take(4).collect();
        let expected: Vec<Bytes> = [&b"b"[..], b"e", b"f", b"g"].into_iter().map(Bytes::copy_from_slice).collect();
        assert_eq!(payloads, expected);
        assert_eq!(Metrics::get(&metrics.dropped_qos0_queue_full), 3);
        assert_eq!(Metrics::get(&metrics.dropped_queue_full), 1);
    }

    #[test]
    fn full_queue_takes_qos0_for_a_reading_client_up_to_the_cap() {
        let limits = Limits { max_queued_messages: 2, ..Limits::default() };
        let metrics = Metrics::default();
        let session = online_session();
        session.lock().last_drained = Some(Instant::now());
        for _ in 0..2 {
            assert_eq!(session.enqueue(delivery(QoS::AtMostOnce, b"a"), &limits, &metrics), Enqueued::Queued);
        }
        // Over the budget the publisher is slowed down instead of the message lost...
        for _ in 0..6 {
            assert_eq!(session.enqueue(delivery(QoS::AtMostOnce, b"b"), &limits, &metrics), Enqueued::Congested);
        }
        // ...up to 4 times the budget; beyond it QoS 0 is dropped and counted.
        assert_eq!(session.enqueue(delivery(QoS::AtMostOnce, b"c"), &limits, &metrics), Enqueued::DroppedQos0);
        assert_eq!(session.lock().queued_len(), 8);
        assert_eq!(Metrics::get(&metrics.dropped_qos0_queue_full), 1);
    }

    #[test]
    fn full_queue_drops_qos0_for_a_stalled_client_at_once() {
        let limits = Limits { max_queued_messages: 2, ..Limits::default() };
        let metrics = Metrics::default();
        let session = online_session();
        let long_ago = Instant::now().checked_sub(STALLED_AFTER * 2);
        for last_drained in [None, long_ago] {
            session.lock().clear_queue();
            session.lock().last_drained = last_drained;
            for _ in 0..2 {
                assert_eq!(session.enqueue(delivery(QoS::AtMostOnce, b"a"), &limits, &metrics), Enqueued::Queued);
            }
            // Not read from lately: its publishers are not held back by it.
            assert_eq!(session.enqueue(delivery(QoS::AtMostOnce, b"b"), &limits, &metrics), Enqueued::DroppedQos0);
            // A QoS 1 message still takes the place of a queued QoS 0 one.
            assert_eq!(session.enqueue(delivery(QoS::AtLeastOnce, b"c"), &limits, &metrics), Enqueued::Queued);
        }
        // Per round: "b" refused and one "a" displaced by "c".
        assert_eq!(Metrics::get(&metrics.dropped_qos0_queue_full), 4);
    }

    #[test]
    fn byte_budget_is_enforced() {
        let limits = Limits { max_queued_bytes: 10, ..Limits::default() };
        let metrics = Metrics::default();
        let session = online_session();
        assert_eq!(session.enqueue(delivery(QoS::AtLeastOnce, b"12345678"), &limits, &metrics), Enqueued::Queued);
        assert_eq!(session.enqueue(delivery(QoS::AtLeastOnce, b"12"), &limits, &metrics), Enqueued::Congested);
        assert_eq!(session.enqueue(delivery(QoS::AtLeastOnce, b"123456789"), &limits, &metrics), Enqueued::DroppedFull);
        assert_eq!(session.lock().queued_bytes(), 12);
        // Offline, nothing slows the publisher down: beyond the budget is refused.
        let offline = Session::new(ClientId::new("off"), SESSION_NEVER_EXPIRES);
        assert_eq!(offline.enqueue(delivery(QoS::AtLeastOnce, b"12345678"), &limits, &metrics), Enqueued::Queued);
        assert_eq!(offline.enqueue(delivery(QoS::AtLeastOnce, b"12"), &limits, &metrics), Enqueued::DroppedFull);
    }

    #[test]
    fn offline_session_keeps_qos1_not_qos0() {
        let limits = Limits::default();
        let metrics = Metrics::default();
        let session = Session::new(ClientId::new("c"), SESSION_NEVER_EXPIRES);
        assert_eq!(session.enqueue(delivery(QoS::AtMostOnce, b"a"), &limits, &metrics), Enqueued::DroppedQos0);
        assert_eq!(session.enqueue(delivery(QoS::AtLeastOnce, b"b"), &limits, &metrics), Enqueued::Queued);
        assert_eq!(session.lock().queued_len(), 1);
    }

    #[test]
    fn inflight_window_holds_back_qos1_but_not_qos0() {
        let session = online_session();
        let mut state = session.lock();
        state.push_unbounded(delivery(QoS::AtLeastOnce, b"a"));
        assert!(state.pop_sendable(0).is_none());
        state.clear_queue();
        state.push_unbounded(delivery(QoS::AtMostOnce, b"a"));
        assert!(state.pop_sendable(0).is_some());
    }

    #[test]
    fn qos0_overtakes_a_blocked_qos1_only_on_another_topic() {
        let session = online_session();
        let mut state = session.lock();
        let on = |topic: &str, qos, payload: &'static [u8]| {
            let mut d = delivery(qos, payload);
            Arc::make_mut(&mut d.message).topic = TopicName::new(topic).unwrap();
            d
        };
        state.push_unbounded(on("a", QoS::AtLeastOnce, b"1"));
        state.push_unbounded(on("a", QoS::AtMostOnce, b"2"));
        state.push_unbounded(on("b", QoS::AtMostOnce, b"3"));
        // Window full: "b" may go, "a"'s QoS 0 waits behind "a"'s QoS 1.
        assert_eq!(&state.pop_sendable(0).unwrap().message.payload[..], b"3");
        assert!(state.pop_sendable(0).is_none());
        assert_eq!(&state.pop_sendable(1).unwrap().message.payload[..], b"1");
        assert_eq!(&state.pop_sendable(1).unwrap().message.payload[..], b"2");
        assert_eq!(state.queued_bytes(), 0);
    }

    #[test]
    fn packet_ids_skip_those_in_flight_and_wrap() {
        let session = online_session();
        let mut state = session.lock();
        let first = state.allocate_packet_id();
        assert_eq!(first.get(), 1);
        state.inflight.push_back(Inflight {
            packet_id: PacketId::new(2).unwrap(),
            delivery: delivery(QoS::AtLeastOnce, b"x"),
            state: OutgoingState::AwaitingPubAck,
        });
        assert_eq!(state.allocate_packet_id().get(), 3);
        state.next_packet_id = PacketId::new(u16::MAX).unwrap();
        assert_eq!(state.allocate_packet_id().get(), u16::MAX);
        assert_eq!(state.allocate_packet_id().get(), 1);
    }
}

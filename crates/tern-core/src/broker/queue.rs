//! Persistent sessions' queues in the store: writing deliveries through under the stored
//! budgets, paging the backlog back in, recording QoS 2 progress, removing what is done.

use tern_codec::QoS;

use super::Broker;
use crate::client_id::ClientId;
use crate::message::{Delivery, StoredAt};
use crate::metrics::Metrics;
use crate::session::{Enqueued, Inflight, OutgoingState, Session, SessionState};
use crate::store::record::{self, Clock};
use crate::store::{OutgoingMark, QueueSeq, StoreOp, Ticket};

/// What offering a delivery to a session came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Offer {
    pub outcome: Enqueued,
    /// The store write that must be durable before the message is acknowledged.
    pub ticket: Option<Ticket>,
    /// The store refused the write: the message must not be acknowledged.
    pub failed: bool,
}

impl Broker {
    /// Offers a delivery to a session under its budgets and wakes its connection. A QoS 1/2
    /// delivery to a persistent session is written to the store first; it joins the in-memory
    /// window unless the window is full or a backlog is waiting, in which case it stays in the
    /// store until [`Broker::page_in`] brings it.
    pub(crate) fn offer(&self, session: &Session, mut delivery: Delivery) -> Offer {
        let mut state = session.lock();
        if delivery.qos == QoS::AtMostOnce || !state.stored.enabled {
            let outcome = Session::enqueue_locked(state, delivery, &self.limits, &self.metrics);
            return Offer { outcome, ticket: None, failed: false };
        }
        let record = record::encode_delivery(&delivery, Clock::now());
        let len = record.len() as u64;
        if !self.stored_budget_allows(&state, len) {
            drop(state);
            let dropped = self.metrics.dropped_store_full.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            // Logged at powers of two so a full store does not flood the log.
            if dropped.is_power_of_two() {
                tracing::warn!(client_id = %session.client_id, dropped, "Stored message budget full; message refused");
            }
            return Offer { outcome: Enqueued::DroppedFull, ticket: None, failed: false };
        }
        let seq = state.stored.next_seq;
        let ticket = match self.store_write(StoreOp::Enqueue { client_id: session.client_id.clone(), seq, record }) {
            Some(Ok(ticket)) => ticket,
            _ => return Offer { outcome: Enqueued::DroppedFull, ticket: None, failed: true },
        };
        state.stored.next_seq = seq.next();
        self.count_stored(&mut state, 1, len as i64);
        delivery.stored = Some(StoredAt { seq, len });
        if state.stored.backlog_from.is_none() {
            if state.has_room(delivery.message.cost(), &self.limits) {
                state.push_unbounded(delivery);
            } else {
                state.stored.backlog_from = Some(seq);
            }
        }
        let waker = state.owner.clone();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        Offer { outcome: Enqueued::Queued, ticket: Some(ticket), failed: false }
    }

    fn stored_budget_allows(&self, state: &SessionState, len: u64) -> bool {
        let limits = &self.limits;
        state.stored.messages < limits.max_stored_messages_per_session
            && state.stored.bytes + len <= limits.max_stored_bytes_per_session
            && Metrics::get(&self.metrics.stored_messages) < limits.max_stored_messages
            && Metrics::get(&self.metrics.stored_bytes) + len <= limits.max_stored_bytes
    }

    /// Adjusts a session's stored counts and the broker's gauges together.
    pub(super) fn count_stored(&self, state: &mut SessionState, messages: i64, bytes: i64) {
        use std::sync::atomic::Ordering::Relaxed;
        state.stored.messages = state.stored.messages.saturating_add_signed(messages);
        state.stored.bytes = state.stored.bytes.saturating_add_signed(bytes);
        if messages >= 0 {
            self.metrics.stored_messages.fetch_add(messages.unsigned_abs(), Relaxed);
        } else {
            self.metrics.stored_messages.fetch_sub(messages.unsigned_abs(), Relaxed);
        }
        if bytes >= 0 {
            self.metrics.stored_bytes.fetch_add(bytes.unsigned_abs(), Relaxed);
        } else {
            self.metrics.stored_bytes.fetch_sub(bytes.unsigned_abs(), Relaxed);
        }
    }

    /// Removes a finished (acknowledged, expired or dropped) delivery from the store. No
    /// acknowledgement waits for this write: if it is lost, the message is sent again after a
    /// restart, which QoS 1 allows and QoS 2 answers with PUBREL only.
    pub(crate) fn unstore_delivery(&self, client_id: &ClientId, state: &mut SessionState, at: Option<StoredAt>) {
        let Some(at) = at else { return };
        if !state.stored.enabled {
            return;
        }
        let _ = self.store_write(StoreOp::Dequeue { client_id: client_id.clone(), seq: at.seq });
        self.count_stored(state, -1, -(at.len as i64));
    }

    /// Records the progress of an outgoing QoS 2 message; the returned write must be durable
    /// before the packet it describes (PUBLISH, PUBREL) is sent.
    pub(crate) fn mark_outgoing(
        &self,
        client_id: &ClientId,
        state: &SessionState,
        at: Option<StoredAt>,
        mark: OutgoingMark,
    ) -> Result<Option<Ticket>, crate::store::StoreError> {
        let Some(at) = at.filter(|_| state.stored.enabled) else { return Ok(None) };
        match self.store_write(StoreOp::MarkOutgoing { client_id: client_id.clone(), seq: at.seq, mark }) {
            Some(result) => result.map(Some),
            None => Ok(None),
        }
    }

    /// Brings stored deliveries back into the in-memory window while it has room: the
    /// backlog of a long queue, or the whole queue after a restart. Messages that were in
    /// flight when the broker stopped come back in flight, to be sent again with their packet
    /// ids ([MQTT-4.4.0-1]).
    pub(crate) fn page_in(&self, client_id: &ClientId, state: &mut SessionState) {
        let (Some(from), Some(store)) = (state.stored.backlog_from, self.store.as_ref()) else { return };
        let room = self.limits.max_queued_messages.saturating_sub(state.queued_len());
        if room == 0 {
            return;
        }
        let page = match store.queue_page(client_id, from, room) {
            Ok(page) => page,
            Err(error) => {
                Metrics::incr(&self.metrics.store_errors);
                tracing::warn!(%client_id, %error, "Reading a stored queue failed");
                return;
            }
        };
        let fetched = page.len();
        let clock = Clock::now();
        let mut next = from;
        for queued in page {
            next = queued.seq.next();
            let at = StoredAt { seq: queued.seq, len: queued.record.len() as u64 };
            match record::decode_delivery(&queued.record, clock) {
                Ok(mut delivery) => {
                    delivery.stored = Some(at);
                    match queued.mark {
                        Some(mark) => {
                            let waiting = if mark.released {
                                OutgoingState::AwaitingPubComp
                            } else {
                                OutgoingState::AwaitingPubRec
                            };
                            state.inflight.push_back(Inflight { packet_id: mark.packet_id, delivery, state: waiting });
                        }
                        None => state.push_unbounded(delivery),
                    }
                }
                Err(error) => {
                    Metrics::incr(&self.metrics.store_errors);
                    tracing::error!(%client_id, seq = at.seq.0, %error, "A stored message is unreadable; dropped");
                    self.unstore_delivery(client_id, state, Some(at));
                }
            }
        }
        state.stored.backlog_from = (fetched == room && next < state.stored.next_seq).then_some(next);
    }

    /// Whether the window is low enough to page more in.
    pub(crate) fn wants_page_in(&self, state: &SessionState) -> bool {
        state.stored.backlog_from.is_some() && state.queued_len() <= self.limits.max_queued_messages / 2
    }

    /// Stops writing a session's queue through (it ended, or stopped being persistent); its
    /// stored data is removed by the caller with [`Broker::unstore_session`].
    pub(super) fn forget_stored(&self, state: &mut SessionState) {
        let (messages, bytes) = (state.stored.messages, state.stored.bytes);
        self.count_stored(state, -(messages as i64), -(bytes as i64));
        state.stored.enabled = false;
        state.stored.backlog_from = None;
    }

    /// The first seq of a session loaded from the store.
    pub(super) fn first_seq_after(last: Option<QueueSeq>) -> QueueSeq {
        last.map_or(QueueSeq(1), QueueSeq::next)
    }
}

//! The in-memory reference store: the behaviour every other backend must match. It survives
//! a broker restart within one process (tests use that), not a process restart.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use tern_codec::{PacketId, TopicName};

use super::{
    Commit, OutgoingMark, QueueSeq, QueueSummary, QueuedRecord, SessionRecord, Store, StoreError, StoreOp, Ticket,
};
use crate::client_id::ClientId;

#[derive(Debug, Default)]
pub struct MemoryStore {
    /// Short sections only; never held across a call into the broker.
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    last_ticket: u64,
    sessions: BTreeMap<ClientId, Bytes>,
    queues: BTreeMap<ClientId, BTreeMap<QueueSeq, (Bytes, Option<OutgoingMark>)>>,
    incoming_qos2: BTreeMap<ClientId, BTreeSet<PacketId>>,
    retained: BTreeMap<TopicName, Bytes>,
}

impl MemoryStore {
    fn lock(&self) -> MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl MemoryState {
    fn apply(&mut self, op: StoreOp) {
        match op {
            StoreOp::PutSession { client_id, record } => {
                self.sessions.insert(client_id, record);
            }
            StoreOp::DeleteSession { client_id } => {
                self.sessions.remove(&client_id);
                self.queues.remove(&client_id);
                self.incoming_qos2.remove(&client_id);
            }
            StoreOp::PutRetained { topic, record } => {
                self.retained.insert(topic, record);
            }
            StoreOp::DeleteRetained { topic } => {
                self.retained.remove(&topic);
            }
            StoreOp::Enqueue { client_id, seq, record } => {
                self.queues.entry(client_id).or_default().insert(seq, (record, None));
            }
            StoreOp::MarkOutgoing { client_id, seq, mark } => {
                if let Some(entry) = self.queues.get_mut(&client_id).and_then(|queue| queue.get_mut(&seq)) {
                    entry.1 = Some(mark);
                }
            }
            StoreOp::Dequeue { client_id, seq } => {
                if let Some(queue) = self.queues.get_mut(&client_id) {
                    queue.remove(&seq);
                    if queue.is_empty() {
                        self.queues.remove(&client_id);
                    }
                }
            }
            StoreOp::AddIncomingQos2 { client_id, packet_id } => {
                self.incoming_qos2.entry(client_id).or_default().insert(packet_id);
            }
            StoreOp::RemoveIncomingQos2 { client_id, packet_id } => {
                if let Some(ids) = self.incoming_qos2.get_mut(&client_id) {
                    ids.remove(&packet_id);
                    if ids.is_empty() {
                        self.incoming_qos2.remove(&client_id);
                    }
                }
            }
        }
    }
}

impl Store for MemoryStore {
    fn write(&self, op: StoreOp) -> Result<Ticket, StoreError> {
        let mut state = self.lock();
        state.apply(op);
        state.last_ticket += 1;
        Ok(Ticket(state.last_ticket))
    }

    fn commit(&self, _ticket: Ticket) -> Commit {
        Box::pin(std::future::ready(Ok(())))
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn sessions(&self) -> Result<Vec<SessionRecord>, StoreError> {
        let state = self.lock();
        Ok(state
            .sessions
            .iter()
            .map(|(client_id, record)| {
                let queue = state.queues.get(client_id);
                SessionRecord {
                    client_id: client_id.clone(),
                    record: record.clone(),
                    incoming_qos2: state
                        .incoming_qos2
                        .get(client_id)
                        .map(|ids| ids.iter().copied().collect())
                        .unwrap_or_default(),
                    queue: QueueSummary {
                        messages: queue.map_or(0, |q| q.len() as u64),
                        bytes: queue.map_or(0, |q| q.values().map(|(record, _)| record.len() as u64).sum()),
                        last_seq: queue.and_then(|q| q.keys().next_back().copied()),
                    },
                }
            })
            .collect())
    }

    fn retained(&self) -> Result<Vec<(TopicName, Bytes)>, StoreError> {
        Ok(self.lock().retained.iter().map(|(topic, record)| (topic.clone(), record.clone())).collect())
    }

    fn queue_page(&self, client_id: &ClientId, from: QueueSeq, limit: usize) -> Result<Vec<QueuedRecord>, StoreError> {
        let state = self.lock();
        let Some(queue) = state.queues.get(client_id) else { return Ok(Vec::new()) };
        Ok(queue
            .range(from..)
            .take(limit)
            .map(|(seq, (record, mark))| QueuedRecord { seq: *seq, record: record.clone(), mark: *mark })
            .collect())
    }

    fn describe(&self) -> String {
        "in-memory store (nothing survives a restart)".to_string()
    }
}

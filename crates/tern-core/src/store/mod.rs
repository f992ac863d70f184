//! The storage seam: what the broker writes through to a store, what it reads back, and the
//! in-memory reference store.
//!
//! The broker's working state lives in memory ([`crate::Broker`]); a store keeps what must
//! survive a restart: persistent sessions (subscriptions, expiry, will), the QoS 1/2 messages
//! queued for them, their in-flight state in both directions, and retained messages. QoS 0
//! messages are never written.
//!
//! A backend stores opaque records under typed keys; the records' contents are encoded and
//! decoded by the broker ([`record`]), so every backend keeps exactly the same thing and none
//! needs to know MQTT. Writes are ordered: [`Store::write`] applies an operation after every
//! earlier one, makes it visible to reads at once, and returns a [`Ticket`]; the broker awaits
//! [`Store::commit`] for that ticket before it acknowledges what the write made safe (PUBACK,
//! PUBREC, PUBCOMP, SUBACK), so many connections share one fsync (group commit).
//!
//! Every backend passes the same conformance suite (`tern_test_support::store_conformance`),
//! this reference first.

mod memory;
pub mod record;

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use tern_codec::{PacketId, TopicName};

use crate::client_id::ClientId;

pub use memory::MemoryStore;
pub use record::{StoredSession, StoredWill};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("storage backend failed: {0}")]
    Backend(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// A position in a store's write order. Tickets grow with every write; a ticket is durable
/// when every write up to it is, as the store's durability level defines it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(pub u64);

/// The position of a message in one session's stored queue. Grows by one per message
/// enqueued for that session; never reused while the session exists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueSeq(pub u64);

impl QueueSeq {
    pub fn next(self) -> QueueSeq {
        QueueSeq(self.0 + 1)
    }
}

/// Where an outgoing QoS 2 message stands, as stored ([`StoreOp::MarkOutgoing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutgoingMark {
    /// The packet id the message was sent with.
    pub packet_id: PacketId,
    /// PUBREC received and PUBREL sent: only PUBCOMP is awaited.
    pub released: bool,
}

/// One write to a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOp {
    /// Creates or replaces the session record of `client_id` (not its queue or QoS 2 ids).
    PutSession { client_id: ClientId, record: Bytes },
    /// Removes the session record and everything else kept for `client_id`: its queue, the
    /// outgoing marks and the incoming QoS 2 ids. Removing nothing is not an error.
    DeleteSession { client_id: ClientId },
    /// Creates or replaces the retained message of `topic`.
    PutRetained { topic: TopicName, record: Bytes },
    /// Removing nothing is not an error.
    DeleteRetained { topic: TopicName },
    /// Appends a message to `client_id`'s queue; `seq` is greater than every seq enqueued for
    /// the client before.
    Enqueue { client_id: ClientId, seq: QueueSeq, record: Bytes },
    /// Records that a queued message was sent with a packet id (and, `released`, that its
    /// PUBREC came). Ignored if `seq` is not queued.
    MarkOutgoing { client_id: ClientId, seq: QueueSeq, mark: OutgoingMark },
    /// Removes a message from `client_id`'s queue (delivered and acknowledged, expired or
    /// dropped), with its mark. Removing nothing is not an error.
    Dequeue { client_id: ClientId, seq: QueueSeq },
    /// A QoS 2 packet id received from the client and answered with PUBREC.
    AddIncomingQos2 { client_id: ClientId, packet_id: PacketId },
    /// The id was released by PUBREL. Removing nothing is not an error.
    RemoveIncomingQos2 { client_id: ClientId, packet_id: PacketId },
}

/// What a store holds for one session, read at startup. The queue itself is read page by
/// page ([`Store::queue_page`]) when the session needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub client_id: ClientId,
    /// The last [`StoreOp::PutSession`] record.
    pub record: Bytes,
    /// Incoming QoS 2 ids not yet released, ascending.
    pub incoming_qos2: Vec<PacketId>,
    pub queue: QueueSummary,
}

/// The size of one session's stored queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueSummary {
    pub messages: u64,
    /// The sum of the queued records' lengths.
    pub bytes: u64,
    /// The greatest seq ever enqueued and still queued, if any.
    pub last_seq: Option<QueueSeq>,
}

/// One queued message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRecord {
    pub seq: QueueSeq,
    pub record: Bytes,
    pub mark: Option<OutgoingMark>,
}

/// Resolves when a ticket is durable, or with the error that kept it from being.
pub type Commit = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

/// A storage backend. All methods may be called from any thread, concurrently; `write` is
/// called while the broker holds a session's lock, so it must not block for long (it
/// buffers; the waiting is in `commit`).
pub trait Store: Send + Sync {
    /// Applies `op` after every earlier write. Reads see it as soon as this returns.
    fn write(&self, op: StoreOp) -> Result<Ticket, StoreError>;

    /// Resolves once `ticket` (and everything before it) is durable by the store's
    /// durability level. With a relaxed level it may resolve at once.
    fn commit(&self, ticket: Ticket) -> Commit;

    /// Makes every write so far durable, whatever the level (at shutdown).
    fn flush(&self) -> Result<(), StoreError>;

    /// Every session with a session record, in client id order.
    fn sessions(&self) -> Result<Vec<SessionRecord>, StoreError>;

    /// Every retained message, in topic order.
    fn retained(&self) -> Result<Vec<(TopicName, Bytes)>, StoreError>;

    /// Up to `limit` queued messages of `client_id` with seq >= `from`, in seq order.
    fn queue_page(&self, client_id: &ClientId, from: QueueSeq, limit: usize) -> Result<Vec<QueuedRecord>, StoreError>;

    /// What the store is, for the startup log ("embedded store in ./tern-data, sync").
    fn describe(&self) -> String;
}

//! The embedded store: the broker's default durable [`Store`], files in a data directory.
//!
//! The engine is [fjall](https://docs.rs/fjall) (an LSM tree with a write-ahead journal),
//! chosen by measurement (`bench/storage/README.md`): it applies a write in microseconds,
//! reads see it at once, one journal fsync makes every earlier write durable, and compaction
//! gives the space of dequeued messages back.
//!
//! - [`keys`]: what is stored under which key.
//! - [`committer`]: group commit, the durability levels.
//! - [`journal`]: fsyncing the journal without holding up writers.
//! - [`dir`]: the directory's format marker, and errors that say how to recover.
//! - [`maintenance`]: compacting the queues to give dequeued messages' space back.
//!
//! Every write is one atomic fjall batch applied under a mutex, which also orders tickets.
//! Reads go to fjall directly, without the mutex.

mod committer;
mod dir;
mod journal;
mod keys;
mod maintenance;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, OwnedWriteBatch, Readable};
use tern_codec::TopicName;
use tern_core::{
    ClientId, Commit, QueueSeq, QueueSummary, QueuedRecord, SessionRecord, Store, StoreError, StoreOp, Ticket,
};

use crate::{Durability, StoreOptions};
use committer::{Committer, Shared};
use journal::JournalSync;
use keys::Counts;
use maintenance::Maintenance;

/// The embedded store. Dropping it makes every write durable and stops its commit thread.
pub struct EmbeddedStore {
    dir: PathBuf,
    options: StoreOptions,
    db: Database,
    spaces: Spaces,
    /// Orders writes; holds the last ticket handed out.
    writer: Mutex<u64>,
    shared: Arc<Shared>,
    committer: Committer,
    journal: Arc<JournalSync>,
    /// The sum of every queued record's length (what `counts` adds up to).
    live: Arc<AtomicU64>,
    maintenance: Maintenance,
}

struct Spaces {
    sessions: Keyspace,
    retained: Keyspace,
    queue: Keyspace,
    incoming: Keyspace,
    counts: Keyspace,
}

impl EmbeddedStore {
    /// Opens the store in `dir`, creating the directory if it is missing. A directory that is
    /// not a tern store, is corrupt, is of an unknown format or is in use by another process
    /// gives an error naming it and saying how to recover; it is never started empty.
    pub fn open(dir: &Path, options: StoreOptions) -> Result<EmbeddedStore, StoreError> {
        Self::open_with(dir, options, true)
    }

    /// `own_descriptor` off makes the committer use fjall's `persist`, for measurements.
    #[doc(hidden)]
    pub fn open_with(dir: &Path, options: StoreOptions, own_descriptor: bool) -> Result<EmbeddedStore, StoreError> {
        let dir = dir.to_path_buf();
        let db_dir = dir::prepare(&dir)?;
        // fjall reports most corruption as errors; a panic on data it did not expect must not
        // take the broker down without saying which directory is at fault.
        let opened = std::panic::catch_unwind(|| open_db(&db_dir))
            .map_err(|_| dir::corrupt(&dir, "the database could not be read (the engine panicked)"))?;
        let (db, spaces) = opened.map_err(|e| dir::open_error(&dir, e))?;
        let mut live = 0u64;
        for entry in spaces.counts.iter() {
            let value = entry.value().map_err(|e| dir::open_error(&dir, e))?;
            live += Counts::decode(&value).map_err(|_| dir::corrupt(&dir, "queue counts of the wrong length"))?.bytes;
        }
        let live = Arc::new(AtomicU64::new(live));
        let maintenance = Maintenance::start(spaces.queue.clone(), live.clone())?;
        let shared = Shared::new(0);
        let journal = Arc::new(JournalSync::new(db.clone(), db_dir, own_descriptor));
        let committer = Committer::start(shared.clone(), journal.clone(), options.durability, options.flush_interval)?;
        Ok(EmbeddedStore {
            dir,
            options,
            db,
            spaces,
            writer: Mutex::new(0),
            shared,
            committer,
            journal,
            live,
            maintenance,
        })
    }

    fn backend(&self, what: &str, error: fjall::Error) -> StoreError {
        StoreError::Backend(format!("embedded store in {}: {what}: {error}", self.dir.display()))
    }

    fn lock_writer(&self) -> MutexGuard<'_, u64> {
        self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn counts(&self, client_id: &ClientId) -> Result<Counts, StoreError> {
        match self.spaces.counts.get(client_id.as_str()).map_err(|e| self.backend("read counts", e))? {
            Some(value) => Counts::decode(&value),
            None => Ok(Counts::default()),
        }
    }

    /// `live` is a hint for compaction only: it saturates rather than wraps.
    fn live_sub(&self, bytes: u64) {
        let _ = self.live.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |live| Some(live.saturating_sub(bytes)));
    }

    fn put_counts(&self, batch: &mut OwnedWriteBatch, client_id: &ClientId, counts: Counts) {
        if counts.messages == 0 {
            batch.remove(&self.spaces.counts, client_id.as_str());
        } else {
            batch.insert(&self.spaces.counts, client_id.as_str(), counts.encode());
        }
    }

    /// Adds `op` to `batch`, reading what it needs (under the writer lock, so nothing moves).
    fn prepare(&self, batch: &mut OwnedWriteBatch, op: StoreOp) -> Result<(), StoreError> {
        let spaces = &self.spaces;
        match op {
            StoreOp::PutSession { client_id, record } => {
                batch.insert(&spaces.sessions, client_id.as_str(), record.as_ref());
            }
            StoreOp::DeleteSession { client_id } => {
                let prefix = keys::client_prefix(&client_id)?;
                batch.remove(&spaces.sessions, client_id.as_str());
                batch.remove(&spaces.counts, client_id.as_str());
                self.live_sub(self.counts(&client_id)?.bytes);
                for space in [&spaces.queue, &spaces.incoming] {
                    for entry in space.prefix(&prefix) {
                        batch.remove(space, entry.key().map_err(|e| self.backend("read queue", e))?);
                    }
                }
            }
            StoreOp::PutRetained { topic, record } => {
                batch.insert(&spaces.retained, topic.as_str(), record.as_ref());
            }
            StoreOp::DeleteRetained { topic } => batch.remove(&spaces.retained, topic.as_str()),
            StoreOp::Enqueue { client_id, seq, record } => {
                let key = keys::queue_key(&keys::client_prefix(&client_id)?, seq);
                let mut counts = self.counts(&client_id)?;
                // A seq is new by contract; one enqueued again replaces the old record.
                if let Some(old) = spaces.queue.size_of(&key).map_err(|e| self.backend("read queue", e))? {
                    counts.messages -= 1;
                    let length = u64::from(old).saturating_sub(keys::MARK_HEADER as u64);
                    counts.bytes -= length;
                    self.live_sub(length);
                }
                counts.messages += 1;
                counts.bytes += record.len() as u64;
                self.live.fetch_add(record.len() as u64, Ordering::Relaxed);
                batch.insert(&spaces.queue, key, keys::queue_value(None, &record));
                self.put_counts(batch, &client_id, counts);
            }
            StoreOp::MarkOutgoing { client_id, seq, mark } => {
                let key = keys::queue_key(&keys::client_prefix(&client_id)?, seq);
                if let Some(value) = spaces.queue.get(&key).map_err(|e| self.backend("read queue", e))? {
                    let (_, record) = keys::split_queue_value(&value)?;
                    batch.insert(&spaces.queue, key, keys::queue_value(Some(mark), record));
                }
            }
            StoreOp::Dequeue { client_id, seq } => {
                let key = keys::queue_key(&keys::client_prefix(&client_id)?, seq);
                if let Some(size) = spaces.queue.size_of(&key).map_err(|e| self.backend("read queue", e))? {
                    let mut counts = self.counts(&client_id)?;
                    let length = u64::from(size).saturating_sub(keys::MARK_HEADER as u64);
                    counts.messages = counts.messages.saturating_sub(1);
                    counts.bytes = counts.bytes.saturating_sub(length);
                    self.live_sub(length);
                    batch.remove(&spaces.queue, key);
                    self.put_counts(batch, &client_id, counts);
                }
            }
            StoreOp::AddIncomingQos2 { client_id, packet_id } => {
                let key = keys::incoming_key(&keys::client_prefix(&client_id)?, packet_id);
                batch.insert(&spaces.incoming, key, []);
            }
            StoreOp::RemoveIncomingQos2 { client_id, packet_id } => {
                let key = keys::incoming_key(&keys::client_prefix(&client_id)?, packet_id);
                batch.remove(&spaces.incoming, key);
            }
        }
        Ok(())
    }
}

fn open_db(path: &Path) -> Result<(Database, Spaces), fjall::Error> {
    // The smallest journal budget fjall allows: memtables are flushed to tables sooner, so a
    // reopen replays at most this much journal, and dequeued messages leave the journal sooner.
    let db = Database::builder(path).max_journaling_size(64 * 1024 * 1024).open()?;
    let space = |name: &str| db.keyspace(name, KeyspaceCreateOptions::default);
    let spaces = Spaces {
        sessions: space("sessions")?,
        retained: space("retained")?,
        queue: space("queue")?,
        incoming: space("incoming")?,
        counts: space("counts")?,
    };
    Ok((db, spaces))
}

impl Store for EmbeddedStore {
    fn write(&self, op: StoreOp) -> Result<Ticket, StoreError> {
        let mut last = self.lock_writer();
        let mut batch = self.db.batch();
        self.prepare(&mut batch, op)?;
        batch.commit().map_err(|e| self.backend("write", e))?;
        *last += 1;
        self.shared.written.store(*last, Ordering::Release);
        Ok(Ticket(*last))
    }

    fn commit(&self, ticket: Ticket) -> Commit {
        match self.options.durability {
            Durability::Sync => self.shared.commit(ticket),
            Durability::Relaxed | Durability::None => Box::pin(std::future::ready(Ok(()))),
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.shared.sync(&self.journal).map(|_| ())
    }

    fn sessions(&self) -> Result<Vec<SessionRecord>, StoreError> {
        // One snapshot, so the summaries agree with the records whatever is written meanwhile.
        let snapshot = self.db.snapshot();
        let spaces = &self.spaces;
        let mut sessions = Vec::new();
        for entry in snapshot.iter(&spaces.sessions) {
            let (key, record) = entry.into_inner().map_err(|e| self.backend("read sessions", e))?;
            let id = std::str::from_utf8(&key).map_err(|_| dir::corrupt(&self.dir, "a client id is not UTF-8"))?;
            let client_id = ClientId::new(id);
            let prefix = keys::client_prefix(&client_id)?;
            let mut incoming_qos2 = Vec::new();
            for entry in snapshot.prefix(&spaces.incoming, &prefix) {
                incoming_qos2.push(keys::packet_id_of(&entry.key().map_err(|e| self.backend("read incoming", e))?)?);
            }
            let counts = match snapshot.get(&spaces.counts, &key).map_err(|e| self.backend("read counts", e))? {
                Some(value) => Counts::decode(&value)?,
                None => Counts::default(),
            };
            let last_seq = match snapshot.prefix(&spaces.queue, &prefix).next_back() {
                Some(entry) => Some(keys::seq_of(&entry.key().map_err(|e| self.backend("read queue", e))?)?),
                None => None,
            };
            let queue = QueueSummary { messages: counts.messages, bytes: counts.bytes, last_seq };
            sessions.push(SessionRecord { client_id, record: Bytes::from(record.to_vec()), incoming_qos2, queue });
        }
        Ok(sessions)
    }

    fn retained(&self) -> Result<Vec<(TopicName, Bytes)>, StoreError> {
        let mut retained = Vec::new();
        for entry in self.spaces.retained.iter() {
            let (key, record) = entry.into_inner().map_err(|e| self.backend("read retained", e))?;
            let topic = std::str::from_utf8(&key)
                .ok()
                .and_then(|name| TopicName::new(name).ok())
                .ok_or_else(|| dir::corrupt(&self.dir, "a retained topic is not a valid topic name"))?;
            retained.push((topic, Bytes::from(record.to_vec())));
        }
        Ok(retained)
    }

    fn queue_page(&self, client_id: &ClientId, from: QueueSeq, limit: usize) -> Result<Vec<QueuedRecord>, StoreError> {
        let prefix = keys::client_prefix(client_id)?;
        let range = keys::queue_key(&prefix, from)..=keys::queue_key(&prefix, QueueSeq(u64::MAX));
        let mut page = Vec::new();
        for entry in self.spaces.queue.range(range).take(limit) {
            let (key, value) = entry.into_inner().map_err(|e| self.backend("read queue", e))?;
            let (mark, record) = keys::split_queue_value(&value)?;
            page.push(QueuedRecord { seq: keys::seq_of(&key)?, record: Bytes::copy_from_slice(record), mark });
        }
        Ok(page)
    }

    fn describe(&self) -> String {
        let level = match self.options.durability {
            Durability::Sync => "sync",
            Durability::Relaxed => "relaxed",
            Durability::None => "none",
        };
        format!("embedded store in {} (fjall, {level})", self.dir.display())
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        self.maintenance.stop();
        // The committer's last act is a sync of everything written.
        self.committer.stop();
    }
}

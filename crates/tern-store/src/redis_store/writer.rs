//! The writer thread and the ticket bookkeeping shared with the store's callers.
//!
//! `write` only queues the op under a short lock and returns its ticket, because the broker
//! calls it while holding a session lock. The writer thread takes everything queued so far
//! (up to [`MAX_BATCH`] ops) and sends it as one MULTI/EXEC pipeline: one round trip for
//! many writes, applied atomically and in ticket order. When Redis replies, every ticket of
//! the batch is processed: commits and reads waiting for it go on.
//!
//! A failed batch (Redis error, lost connection) fails the commits of its tickets with the
//! error; the connection is dropped and the next batch connects again. A batch sent on a
//! connection that had been working is retried once on a new one, so an idle connection
//! closed by the server costs nothing; replaying a batch that did reach Redis is harmless,
//! because every op sets its keys to a value that depends only on the op and on whether the
//! message is queued (see ARCHITECTURE.md).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tern_core::{StoreError, StoreOp};

use super::conn::{Conn, IO_TIMEOUT};
use super::keys::{encode_mark, seq_member, Keys};
use crate::Durability;

/// The most ops sent in one MULTI/EXEC; bounds how long one batch keeps Redis busy.
const MAX_BATCH: usize = 4096;

/// What the writer is asked to do, in ticket order.
pub(crate) enum Entry {
    Op(StoreOp),
    /// `flush`: make everything before it durable as far as Redis can say (WAITAOF).
    Sync,
}

/// Tickets that failed, as ranges merged when adjacent, so a long outage is one range.
#[derive(Debug)]
struct Failure {
    first: u64,
    last: u64,
    message: String,
}

#[derive(Default)]
struct State {
    /// The last ticket given out.
    last_ticket: u64,
    /// Entries not yet taken by the writer; the last one has `last_ticket`.
    pending: VecDeque<Entry>,
    /// Every ticket up to this one was sent to Redis and answered (or failed).
    processed: u64,
    failures: Vec<Failure>,
    /// Set while the last batch failed: relaxed commits report it at once.
    down: Option<String>,
    /// Commits waiting for `processed` to reach their ticket, by waiter id.
    waiters: HashMap<u64, (u64, Waker)>,
    next_waiter: u64,
    shutdown: bool,
}

impl State {
    fn outcome(&self, ticket: u64) -> Result<(), StoreError> {
        match self.failures.iter().rev().find(|failure| failure.first <= ticket && ticket <= failure.last) {
            Some(failure) => Err(StoreError::Backend(failure.message.clone())),
            None => Ok(()),
        }
    }

    /// The first failure message among tickets after `after` and up to `upto`.
    fn failed_between(&self, after: u64, upto: u64) -> Option<String> {
        self.failures.iter().find(|failure| failure.last > after && failure.first <= upto).map(|f| f.message.clone())
    }
}

pub(crate) struct Shared {
    state: Mutex<State>,
    /// The writer waits here for entries.
    work: Condvar,
    /// Reads and `flush` wait here for `processed` to grow.
    progress: Condvar,
}

impl Shared {
    pub fn new() -> Arc<Shared> {
        Arc::new(Shared { state: Mutex::new(State::default()), work: Condvar::new(), progress: Condvar::new() })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues an entry for the writer and returns its ticket.
    pub fn push(&self, entry: Entry) -> u64 {
        let mut state = self.lock();
        state.last_ticket += 1;
        state.pending.push_back(entry);
        let ticket = state.last_ticket;
        drop(state);
        self.work.notify_one();
        ticket
    }

    pub fn last_ticket(&self) -> u64 {
        self.lock().last_ticket
    }

    /// Blocks until every ticket up to `ticket` is processed (bounded: each batch ends within
    /// the connect and I/O timeouts).
    pub fn wait_processed(&self, ticket: u64) {
        let mut state = self.lock();
        while state.processed < ticket {
            state = self.progress.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// The first failure among tickets after `after` and up to `upto`.
    pub fn failed_between(&self, after: u64, upto: u64) -> Option<String> {
        self.lock().failed_between(after, upto)
    }

    /// The error of the last batch, if it failed.
    pub fn down(&self) -> Option<String> {
        self.lock().down.clone()
    }

    pub fn commit(self: &Arc<Self>, ticket: u64) -> CommitWait {
        let mut state = self.lock();
        let ticket = ticket.min(state.last_ticket);
        let id = state.next_waiter;
        state.next_waiter += 1;
        CommitWait { shared: Arc::clone(self), ticket, id }
    }

    pub fn shut_down(&self) {
        self.lock().shutdown = true;
        self.work.notify_one();
    }

    /// Waits for entries; `None` once shut down with nothing left to write.
    fn take_batch(&self) -> Option<(u64, Vec<Entry>)> {
        let mut state = self.lock();
        while state.pending.is_empty() && !state.shutdown {
            state = self.work.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        if state.pending.is_empty() {
            return None;
        }
        let first = state.last_ticket - state.pending.len() as u64 + 1;
        let count = state.pending.len().min(MAX_BATCH);
        Some((first, state.pending.drain(..count).collect()))
    }

    /// Records the outcome of the batch `first..=last` and wakes who waited for it.
    fn finish(&self, first: u64, last: u64, result: Result<(), String>) {
        let mut state = self.lock();
        state.processed = last;
        match result {
            Ok(()) => state.down = None,
            Err(message) => {
                match state.failures.last_mut() {
                    Some(failure) if failure.last + 1 == first && failure.message == message => failure.last = last,
                    _ => state.failures.push(Failure { first, last, message: message.clone() }),
                }
                state.down = Some(message);
            }
        }
        let ready: Vec<u64> =
            state.waiters.iter().filter(|(_, (ticket, _))| *ticket <= last).map(|(id, _)| *id).collect();
        let wakers: Vec<Waker> =
            ready.into_iter().filter_map(|id| state.waiters.remove(&id)).map(|(_, waker)| waker).collect();
        drop(state);
        self.progress.notify_all();
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// A sync commit: resolves when the writer has processed the ticket.
pub(crate) struct CommitWait {
    shared: Arc<Shared>,
    ticket: u64,
    id: u64,
}

impl Future for CommitWait {
    type Output = Result<(), StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.shared.lock();
        if state.processed >= self.ticket {
            state.waiters.remove(&self.id);
            return Poll::Ready(state.outcome(self.ticket));
        }
        match state.waiters.get_mut(&self.id) {
            Some((_, waker)) => waker.clone_from(cx.waker()),
            None => {
                state.waiters.insert(self.id, (self.ticket, cx.waker().clone()));
            }
        }
        Poll::Pending
    }
}

impl Drop for CommitWait {
    fn drop(&mut self) {
        self.shared.lock().waiters.remove(&self.id);
    }
}

/// The writer thread's side: its connection and what it needs to build commands.
pub(crate) struct Writer {
    pub shared: Arc<Shared>,
    pub client: redis::Client,
    pub conn: Option<Conn>,
    pub keys: Keys,
    pub durability: Durability,
    /// The redacted URL, for error messages.
    pub url: String,
    /// The last batch failed.
    pub down: bool,
}

impl Writer {
    pub fn run(mut self) {
        while let Some((first, entries)) = self.shared.take_batch() {
            let last = first + entries.len() as u64 - 1;
            let result = self.apply(&entries).map_err(|error| format!("redis store at {}: {error}", self.url));
            // Logged when the state changes, not per batch: an outage would log every write.
            match &result {
                Err(message) if !self.down => tracing::warn!("{message}; writes fail until it answers again"),
                Ok(()) if self.down => tracing::info!("redis store at {}: writing again", self.url),
                _ => {}
            }
            self.down = result.is_err();
            self.shared.finish(first, last, result);
        }
    }

    /// Sends one batch, retrying once on a new connection if the old one had been in use.
    fn apply(&mut self, entries: &[Entry]) -> Result<(), String> {
        let fresh = self.conn.is_none();
        match self.try_apply(entries) {
            Ok(()) => Ok(()),
            Err(_) if !fresh => {
                self.conn = None;
                self.try_apply(entries).inspect_err(|_| self.conn = None)
            }
            Err(error) => {
                self.conn = None;
                Err(error)
            }
        }
    }

    fn try_apply(&mut self, entries: &[Entry]) -> Result<(), String> {
        if self.conn.is_none() {
            self.conn = Some(Conn::open(&self.client)?);
        }
        let Some(conn) = self.conn.as_mut() else { return Err("no connection".to_string()) };
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut sync = self.durability == Durability::Sync;
        for entry in entries {
            match entry {
                Entry::Op(op) => add_op(&mut pipe, &self.keys, &conn.shas.queue_write, op),
                Entry::Sync => sync = true,
            }
        }
        if !pipe.is_empty() {
            pipe.query::<()>(&mut conn.con)
                .map_err(|error| format!("batch of {} writes failed: {error}", pipe.len()))?;
        }
        if sync && conn.waitaof {
            let timeout_ms = IO_TIMEOUT.as_millis() as u64 / 2;
            let (local, _replicas): (i64, i64) = redis::cmd("WAITAOF")
                .arg(1)
                .arg(0)
                .arg(timeout_ms)
                .query(&mut conn.con)
                .map_err(|error| format!("WAITAOF failed: {error}"))?;
            if local < 1 {
                return Err(format!("the append-only file was not fsynced within {timeout_ms} ms (WAITAOF)"));
            }
        } else if entries.iter().all(|entry| matches!(entry, Entry::Sync)) {
            // A flush with nothing to write still checks the server is there.
            redis::cmd("PING").query::<()>(&mut conn.con).map_err(|error| format!("PING failed: {error}"))?;
        }
        Ok(())
    }
}

/// The commands of one op, added to the batch's MULTI/EXEC.
fn add_op(pipe: &mut redis::Pipeline, keys: &Keys, queue_write: &str, op: &StoreOp) {
    match op {
        StoreOp::PutSession { client_id, record } => {
            pipe.cmd("HSET").arg(keys.sessions()).arg(client_id.as_str()).arg(record.as_ref());
        }
        StoreOp::DeleteSession { client_id } => {
            pipe.cmd("HDEL").arg(keys.sessions()).arg(client_id.as_str());
            pipe.cmd("DEL").arg(&keys.client(client_id).all()[..]);
        }
        StoreOp::PutRetained { topic, record } => {
            pipe.cmd("HSET").arg(keys.retained()).arg(topic.as_str()).arg(record.as_ref());
        }
        StoreOp::DeleteRetained { topic } => {
            pipe.cmd("HDEL").arg(keys.retained()).arg(topic.as_str());
        }
        StoreOp::Enqueue { client_id, seq, record } => {
            queue_script(pipe, keys, queue_write, client_id, "enq", &seq_member(*seq)).arg(record.as_ref());
        }
        StoreOp::MarkOutgoing { client_id, seq, mark } => {
            queue_script(pipe, keys, queue_write, client_id, "mark", &seq_member(*seq)).arg(encode_mark(*mark));
        }
        StoreOp::Dequeue { client_id, seq } => {
            queue_script(pipe, keys, queue_write, client_id, "deq", &seq_member(*seq));
        }
        StoreOp::AddIncomingQos2 { client_id, packet_id } => {
            pipe.cmd("SADD").arg(keys.client(client_id).incoming_qos2).arg(packet_id.get());
        }
        StoreOp::RemoveIncomingQos2 { client_id, packet_id } => {
            pipe.cmd("SREM").arg(keys.client(client_id).incoming_qos2).arg(packet_id.get());
        }
    }
}

fn queue_script<'a>(
    pipe: &'a mut redis::Pipeline,
    keys: &Keys,
    sha: &str,
    client_id: &tern_core::ClientId,
    op: &str,
    seq: &str,
) -> &'a mut redis::Pipeline {
    let client = keys.client(client_id);
    pipe.cmd("EVALSHA").arg(sha).arg(4).arg(&client.queue).arg(&client.index).arg(&client.marks).arg(&client.bytes);
    pipe.arg(op).arg(seq)
}

//! Group commit: one thread makes writes durable for everyone waiting.
//!
//! Writers never fsync. [`Store::write`](tern_core::Store::write) hands its batch to fjall
//! (which writes it to the journal file, i.e. to the OS) and publishes its ticket in
//! `written`; a [`Commit`] of a ticket not yet durable parks its `Waker` here and wakes the
//! committer thread. The committer reads `written`, fsyncs the journal once, stores that value
//! in `durable` and wakes every waiter it covered. While one fsync runs, new writes and
//! waiters pile up for the next one, so a thousand connections share a handful of fsyncs.
//! A commit that is already durable resolves on its first poll with one atomic load.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tern_core::{Commit, StoreError, Ticket};

use super::journal::JournalSync;
use crate::Durability;

/// What writers, commits and the committer thread share.
pub struct Shared {
    /// The last ticket handed to fjall (its journal holds every write up to it).
    pub written: AtomicU64,
    /// Every write up to this ticket is on disk.
    durable: AtomicU64,
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    waiters: Vec<(u64, Waker)>,
    /// An fsync failed: nothing written since can be promised durable (the page cache may
    /// have dropped the dirty pages), so every later commit fails too.
    failed: Option<StoreError>,
    stop: bool,
}

impl Shared {
    pub fn new(written: u64) -> Arc<Shared> {
        Arc::new(Shared {
            written: AtomicU64::new(written),
            durable: AtomicU64::new(written),
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Syncs everything written so far; wakes the waiters it covered and says how many.
    pub fn sync(&self, journal: &JournalSync) -> Result<usize, StoreError> {
        let target = self.written.load(Ordering::Acquire);
        let result = journal.sync();
        let mut state = self.lock();
        match result {
            Ok(()) => {
                self.durable.fetch_max(target, Ordering::AcqRel);
                let mut covered = Vec::new();
                state.waiters.retain(|(ticket, waker)| {
                    let done = *ticket <= target;
                    if done {
                        covered.push(waker.clone());
                    }
                    !done
                });
                drop(state);
                let woken = covered.len();
                covered.into_iter().for_each(Waker::wake);
                Ok(woken)
            }
            Err(error) => {
                state.failed.get_or_insert_with(|| error.clone());
                let waiters = std::mem::take(&mut state.waiters);
                drop(state);
                waiters.into_iter().for_each(|(_, waker)| waker.wake());
                Err(error)
            }
        }
    }

    /// A future that resolves once `ticket` is durable.
    pub fn commit(self: &Arc<Self>, ticket: Ticket) -> Commit {
        if self.durable.load(Ordering::Acquire) >= ticket.0 {
            return Box::pin(std::future::ready(Ok(())));
        }
        Box::pin(Pending { shared: self.clone(), ticket: ticket.0, registered: false })
    }
}

struct Pending {
    shared: Arc<Shared>,
    ticket: u64,
    registered: bool,
}

impl Future for Pending {
    type Output = Result<(), StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.shared.durable.load(Ordering::Acquire) >= self.ticket {
            return Poll::Ready(Ok(()));
        }
        let shared = self.shared.clone();
        let mut state = shared.lock();
        if let Some(error) = &state.failed {
            return Poll::Ready(Err(error.clone()));
        }
        // Checked again under the lock: the committer publishes `durable` before it takes the
        // lock to wake waiters, so a waiter registered now is not missed.
        if shared.durable.load(Ordering::Acquire) >= self.ticket {
            return Poll::Ready(Ok(()));
        }
        match state.waiters.iter_mut().find(|(ticket, waker)| *ticket == self.ticket && waker.will_wake(cx.waker())) {
            Some(_) if self.registered => {}
            _ => state.waiters.push((self.ticket, cx.waker().clone())),
        }
        self.registered = true;
        drop(state);
        shared.wake.notify_one();
        Poll::Pending
    }
}

/// The committer thread; stopping it (or dropping it) makes everything durable first.
pub struct Committer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Committer {
    pub fn start(
        shared: Arc<Shared>,
        journal: Arc<JournalSync>,
        durability: Durability,
        interval: Duration,
    ) -> Result<Committer, StoreError> {
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("tern-store-commit".to_string())
            .spawn(move || run(&worker, &journal, durability, interval))
            .map_err(|e| StoreError::Backend(format!("cannot start the embedded store's commit thread: {e}")))?;
        Ok(Committer { shared, thread: Some(thread) })
    }

    /// Makes everything written durable, then stops the thread.
    pub fn stop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the embedded store's commit thread panicked");
            }
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How long the committer may wait for more waiters before an fsync (see `run`).
const GATHER: Duration = Duration::from_micros(200);

fn run(shared: &Shared, journal: &JournalSync, durability: Durability, interval: Duration) {
    let mut last_sync = Instant::now();
    // How many waiters the last fsync woke: writers it woke are likely writing again, and an
    // fsync started the moment the first of them is back would leave the rest for the next
    // one. Waiting (at most GATHER) until as many are back keeps batches whole.
    let mut last_batch = 0;
    let mut state = shared.lock();
    loop {
        if state.stop {
            drop(state);
            if let Err(error) = shared.sync(journal) {
                tracing::error!("embedded store: final sync failed: {error}");
            }
            return;
        }
        let behind = shared.written.load(Ordering::Acquire) > shared.durable.load(Ordering::Acquire);
        let periodic = durability == Durability::Relaxed && last_sync.elapsed() >= interval && behind;
        if (!state.waiters.is_empty() || periodic) && state.failed.is_none() {
            let deadline = Instant::now() + GATHER;
            while state.waiters.len() < last_batch && !state.stop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                state = shared.wake.wait_timeout(state, left).unwrap_or_else(|p| p.into_inner()).0;
            }
            drop(state);
            last_sync = Instant::now();
            match shared.sync(journal) {
                Ok(woken) => last_batch = woken,
                // Kept in the state and returned to every waiter.
                Err(error) => tracing::error!("embedded store: sync failed: {error}"),
            }
            state = shared.lock();
            continue;
        }
        state = match durability {
            Durability::Relaxed => {
                let left = interval.saturating_sub(last_sync.elapsed()).max(Duration::from_millis(1));
                shared.wake.wait_timeout(state, left).unwrap_or_else(|p| p.into_inner()).0
            }
            Durability::Sync | Durability::None => shared.wake.wait(state).unwrap_or_else(|p| p.into_inner()),
        };
    }
}

//! Giving back the disk space of dequeued messages.
//!
//! A dequeue writes a tombstone; the LSM tree drops the message's bytes only when a
//! compaction merges the tombstone with them, and fjall's leveled compaction may leave them
//! for a long time when a queue fills and drains (measured in `bench/storage/README.md`:
//! 1M messages dequeued left 136 MiB on disk). So a thread checks every few seconds whether
//! the queue keyspace takes much more disk than the records still queued need, and if so
//! flushes its memtable and compacts it whole. The ratio bounds the work: each compaction
//! rewrites at most a quarter of what it reads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use fjall::Keyspace;
use tern_core::StoreError;

const CHECK_EVERY: Duration = Duration::from_secs(2);
/// Below this the space is not worth a compaction.
const MIN_DISK: u64 = 16 * 1024 * 1024;
const MAX_RATIO: u64 = 4;

pub struct Maintenance {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Maintenance {
    /// `live` is the sum of the queued records' lengths, kept by the writer.
    pub fn start(queue: Keyspace, live: Arc<AtomicU64>) -> Result<Maintenance, StoreError> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = stop.clone();
        let thread = std::thread::Builder::new()
            .name("tern-store-compact".to_string())
            .spawn(move || loop {
                let (lock, wake) = &*signal;
                let stopped = lock.lock().unwrap_or_else(|p| p.into_inner());
                let (stopped, _) = wake.wait_timeout(stopped, CHECK_EVERY).unwrap_or_else(|p| p.into_inner());
                if *stopped {
                    return;
                }
                drop(stopped);
                let disk = queue.disk_space();
                let needed = live.load(Ordering::Relaxed);
                if disk > MIN_DISK && disk > needed.saturating_mul(MAX_RATIO) {
                    tracing::debug!(disk, needed, "embedded store: compacting the queues");
                    if let Err(error) = queue.rotate_memtable_and_wait().and_then(|()| queue.major_compact()) {
                        tracing::warn!("embedded store: compacting the queues failed: {error}");
                    }
                }
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the embedded store's compaction thread: {e}")))?;
        Ok(Maintenance { stop, thread: Some(thread) })
    }

    pub fn stop(&mut self) {
        *self.stop.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.stop.1.notify_all();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the embedded store's compaction thread panicked");
            }
        }
    }
}

impl Drop for Maintenance {
    fn drop(&mut self) {
        self.stop();
    }
}

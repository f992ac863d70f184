//! The candidate engines behind one small trait: queue entries keyed by (session, seq).

use std::path::Path;

/// A queue entry's key: session (big-endian u32) then seq (big-endian u64), so one session's
/// entries are contiguous and in seq order.
pub fn key(session: u32, seq: u64) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..4].copy_from_slice(&session.to_be_bytes());
    key[4..].copy_from_slice(&seq.to_be_bytes());
    key
}

pub trait Engine: Send + Sync {
    /// One enqueue, visible at once, not synced.
    fn put(&self, session: u32, seq: u64, value: &[u8]);
    /// Many enqueues at once (to load quickly).
    fn put_many(&self, items: &[(u32, u64, Vec<u8>)]);
    fn remove(&self, session: u32, seq: u64);
    /// Many removals at once (to empty a big store quickly).
    fn remove_many(&self, items: &[(u32, u64)]);
    /// Makes every earlier write durable (fsync).
    fn sync(&self);
    /// What a naive `sessions()` does: scans every entry, counting entries and value bytes.
    fn scan_summary(&self) -> (u64, u64);
    /// Lets background maintenance (flushes, compaction) reclaim space, if the engine has it.
    fn settle(&mut self);
}

pub struct Fjall {
    db: fjall::Database,
    queue: fjall::Keyspace,
    /// `Some`: sync by fsyncing the active journal file through a descriptor of our own,
    /// outside fjall's journal lock, so writers are not held up by the fsync.
    own_fd: Option<std::sync::Mutex<Option<(u64, std::fs::File)>>>,
    dir: std::path::PathBuf,
}

impl Fjall {
    pub fn open(dir: &Path, own_fd: bool) -> Fjall {
        let db = fjall::Database::builder(dir).open().expect("open fjall");
        let queue = db.keyspace("queue", fjall::KeyspaceCreateOptions::default).expect("keyspace");
        Fjall { db, queue, own_fd: own_fd.then(|| std::sync::Mutex::new(None)), dir: dir.to_path_buf() }
    }

    fn sync_own_fd(&self, cache: &std::sync::Mutex<Option<(u64, std::fs::File)>>) -> std::io::Result<()> {
        let mut newest = None;
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let id = name.to_str().and_then(|n| n.strip_suffix(".jnl")).and_then(|n| n.parse::<u64>().ok());
            newest = newest.max(id);
        }
        let id = newest.ok_or_else(|| std::io::Error::other("no journal"))?;
        let mut cache = cache.lock().expect("lock");
        if cache.as_ref().map(|(cached, _)| *cached) != Some(id) {
            *cache = Some((id, std::fs::File::open(self.dir.join(format!("{id}.jnl")))?));
        }
        cache.as_ref().expect("just set").1.sync_all()
    }
}

impl Engine for Fjall {
    fn put(&self, session: u32, seq: u64, value: &[u8]) {
        self.queue.insert(key(session, seq), value).expect("insert");
    }
    fn put_many(&self, items: &[(u32, u64, Vec<u8>)]) {
        let mut batch = self.db.batch();
        for (session, seq, value) in items {
            batch.insert(&self.queue, key(*session, *seq), value.as_slice());
        }
        batch.commit().expect("batch");
    }
    fn remove(&self, session: u32, seq: u64) {
        self.queue.remove(key(session, seq)).expect("remove");
    }
    fn remove_many(&self, items: &[(u32, u64)]) {
        let mut batch = self.db.batch();
        for (session, seq) in items {
            batch.remove(&self.queue, key(*session, *seq));
        }
        batch.commit().expect("batch");
    }
    fn sync(&self) {
        if let Some(cache) = &self.own_fd {
            if self.sync_own_fd(cache).is_ok() {
                return;
            }
        }
        self.db.persist(fjall::PersistMode::SyncAll).expect("persist");
    }
    fn scan_summary(&self) -> (u64, u64) {
        let (mut count, mut bytes) = (0, 0);
        for guard in self.queue.iter() {
            bytes += guard.size().expect("size") as u64;
            count += 1;
        }
        (count, bytes)
    }
    fn settle(&mut self) {
        self.queue.rotate_memtable_and_wait().expect("flush memtable");
        // Wait for background compaction to run its course (bounded).
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_secs(5) {
            std::thread::sleep(std::time::Duration::from_millis(200));
            if self.db.active_compactions() == 0 && self.db.outstanding_flushes() == 0 {
                break;
            }
        }
    }
}

pub struct Redb {
    db: redb::Database,
}

const QUEUE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("queue");

impl Redb {
    pub fn open(dir: &Path) -> Redb {
        let db = redb::Database::create(dir.join("queue.redb")).expect("open redb");
        let txn = db.begin_write().expect("txn");
        txn.open_table(QUEUE).expect("table");
        txn.commit().expect("commit");
        Redb { db }
    }

    fn txn(&self) -> redb::WriteTransaction {
        let mut txn = self.db.begin_write().expect("txn");
        // Durable only with a later `Immediate` commit: the group commit's fsync.
        txn.set_durability(redb::Durability::None).expect("durability");
        txn
    }
}

impl Engine for Redb {
    fn put(&self, session: u32, seq: u64, value: &[u8]) {
        let txn = self.txn();
        txn.open_table(QUEUE).expect("table").insert(key(session, seq).as_slice(), value).expect("insert");
        txn.commit().expect("commit");
    }
    fn put_many(&self, items: &[(u32, u64, Vec<u8>)]) {
        let txn = self.txn();
        {
            let mut table = txn.open_table(QUEUE).expect("table");
            for (session, seq, value) in items {
                table.insert(key(*session, *seq).as_slice(), value.as_slice()).expect("insert");
            }
        }
        txn.commit().expect("commit");
    }
    fn remove(&self, session: u32, seq: u64) {
        let txn = self.txn();
        txn.open_table(QUEUE).expect("table").remove(key(session, seq).as_slice()).expect("remove");
        txn.commit().expect("commit");
    }
    fn remove_many(&self, items: &[(u32, u64)]) {
        let txn = self.txn();
        {
            let mut table = txn.open_table(QUEUE).expect("table");
            for (session, seq) in items {
                table.remove(key(*session, *seq).as_slice()).expect("remove");
            }
        }
        txn.commit().expect("commit");
    }
    fn sync(&self) {
        let mut txn = self.db.begin_write().expect("txn");
        txn.set_durability(redb::Durability::Immediate).expect("durability");
        txn.commit().expect("commit");
    }
    fn scan_summary(&self) -> (u64, u64) {
        use redb::{ReadableDatabase, ReadableTable};
        let txn = self.db.begin_read().expect("read txn");
        let table = txn.open_table(QUEUE).expect("table");
        let (mut count, mut bytes) = (0, 0);
        for entry in table.iter().expect("iter") {
            let (_key, value) = entry.expect("entry");
            bytes += value.value().len() as u64;
            count += 1;
        }
        (count, bytes)
    }
    fn settle(&mut self) {
        self.sync();
        // redb reuses freed pages but shrinks its file only on an explicit compaction.
        let _ = self.db.compact();
    }
}

//! Making fjall's journal durable without holding up writers.
//!
//! `Database::persist(SyncAll)` fsyncs while holding fjall's journal lock, so every writer
//! (called under a broker session lock) would wait out the whole fsync, and the group commit
//! degenerates to about one write per fsync (see `bench/storage/README.md`). fjall writes
//! each batch to the journal file before `commit` returns (`manual_journal_persist` is off),
//! so the data is in the OS page cache, and fsync on any descriptor of the file makes it
//! durable. So the committer fsyncs the active journal (`<db>/<n>.jnl`, the highest `n`)
//! through a descriptor of its own, outside fjall's lock. When fjall seals a journal it syncs
//! it first and fsyncs the directory for the new one, so a write that went to a journal sealed
//! meanwhile is durable already. Anything unexpected (no journal found, an error) falls back
//! to `persist(SyncAll)`, which is always correct.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Mutex;

use tern_core::StoreError;

pub struct JournalSync {
    db: fjall::Database,
    dir: PathBuf,
    /// The active journal's number and our descriptor of it.
    active: Mutex<Option<(u64, File)>>,
    /// Off: always `persist(SyncAll)` (for measurements).
    own_descriptor: bool,
}

impl JournalSync {
    pub fn new(db: fjall::Database, dir: PathBuf, own_descriptor: bool) -> JournalSync {
        JournalSync { db, dir, active: Mutex::new(None), own_descriptor }
    }

    /// Makes every batch committed to fjall before this call durable.
    pub fn sync(&self) -> Result<(), StoreError> {
        if self.own_descriptor && self.sync_active().is_ok() {
            return Ok(());
        }
        self.db
            .persist(fjall::PersistMode::SyncAll)
            .map_err(|e| StoreError::Backend(format!("embedded store in {}: fsync failed: {e}", self.dir.display())))
    }

    fn sync_active(&self) -> std::io::Result<()> {
        let mut newest = None;
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let number = name.to_str().and_then(|n| n.strip_suffix(".jnl")).and_then(|n| n.parse::<u64>().ok());
            newest = newest.max(number);
        }
        let number = newest.ok_or_else(|| std::io::Error::other("no journal file"))?;
        let mut active = self.active.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let file = match active.take() {
            Some((cached, file)) if cached == number => file,
            _ => File::open(self.dir.join(format!("{number}.jnl")))?,
        };
        let result = file.sync_all();
        *active = Some((number, file));
        result
    }
}

//! Helpers: group commit for the raw engines, disk usage, RSS, percentiles.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::engines::Engine;

pub fn tempdir() -> tempfile::TempDir {
    match std::env::var_os("BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir).expect("tempdir"),
        None => tempfile::tempdir_in(".").expect("tempdir"),
    }
}

/// Bytes allocated on disk under `dir`.
pub fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let entry = entry.expect("entry");
        let meta = entry.metadata().expect("metadata");
        total += if meta.is_dir() { disk_usage(&entry.path()) } else { meta.blocks() * 512 };
    }
    total
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// VmRSS and VmHWM of this process.
pub fn rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status.lines().find(|l| l.starts_with(name)).map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
    };
    let kib = |v: Option<String>| v.and_then(|v| v.parse::<u64>().ok()).map_or("?".to_string(), |k| format!("{} MiB", k / 1024));
    format!("{} (peak {})", kib(field("VmRSS:")), kib(field("VmHWM:")))
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

pub fn reopen_in_child(args: &[&str]) {
    let exe = std::env::current_exe().expect("current exe");
    let output = std::process::Command::new(exe).args(args).output().expect("run child");
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
}

/// Group commit for the raw engines, the way the store does it: writers take a ticket after
/// their write; one thread syncs whatever was written and wakes everyone it covered.
#[derive(Clone)]
pub struct GroupCommit(Arc<Inner>);

struct Inner {
    engine: Arc<dyn Engine>,
    written: AtomicU64,
    state: Mutex<State>,
    wanted: Condvar,
    synced: Condvar,
}

#[derive(Default)]
struct State {
    requested: u64,
    durable: u64,
    syncs: u64,
    stop: bool,
}

impl GroupCommit {
    pub fn start(engine: Arc<dyn Engine>) -> GroupCommit {
        let inner = Arc::new(Inner {
            engine,
            written: AtomicU64::new(0),
            state: Mutex::new(State::default()),
            wanted: Condvar::new(),
            synced: Condvar::new(),
        });
        let worker = inner.clone();
        std::thread::spawn(move || loop {
            {
                let mut state = worker.state.lock().expect("lock");
                while state.requested <= state.durable && !state.stop {
                    state = worker.wanted.wait(state).expect("lock");
                }
                if state.stop {
                    return;
                }
            }
            let target = worker.written.load(Ordering::SeqCst);
            worker.engine.sync();
            let mut state = worker.state.lock().expect("lock");
            state.durable = state.durable.max(target);
            state.syncs += 1;
            worker.synced.notify_all();
        });
        GroupCommit(inner)
    }

    /// Call after a write: its ticket.
    pub fn written(&self) -> u64 {
        self.0.written.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub fn wait(&self, ticket: u64) {
        let mut state = self.0.state.lock().expect("lock");
        if ticket > state.requested {
            state.requested = ticket;
            self.0.wanted.notify_one();
        }
        while state.durable < ticket {
            state = self.0.synced.wait(state).expect("lock");
        }
    }

    /// Stops the syncing thread; returns how many syncs it made.
    pub fn stop(&self) -> u64 {
        let mut state = self.0.state.lock().expect("lock");
        state.stop = true;
        self.0.wanted.notify_one();
        state.syncs
    }
}

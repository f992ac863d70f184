//! The final store, measured through the `Store` trait.

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tern_core::{ClientId, QueueSeq, Store, StoreOp};
use tern_store::embedded::EmbeddedStore;
use tern_store::{Durability, StoreOptions};

use crate::util::{disk_usage, mib, percentile, tempdir};
use crate::{BIG_PER_SESSION, BIG_SESSIONS, RECORD, RUN, WRITERS};

fn open(dir: &Path, durability: Durability, own_descriptor: bool) -> EmbeddedStore {
    let options = StoreOptions { durability, flush_interval: Duration::from_secs(1) };
    EmbeddedStore::open_with(dir, options, own_descriptor).expect("open store")
}

/// `only`: "writes" or "big" runs one half.
pub fn run(only: Option<&str>) {
    println!("== EmbeddedStore (through the Store trait)");
    for (durability, own_descriptor, label) in [
        (Durability::Sync, true, "sync"),
        (Durability::Sync, false, "sync, fsync under fjall's journal lock"),
        (Durability::None, true, "none"),
    ] {
        if only == Some("big") {
            break;
        }
        let dir = tempdir();
        let store = Arc::new(open(dir.path(), durability, own_descriptor));
        writes(&store, label);
    }
    if only != Some("writes") {
        big();
    }
}

fn writes(store: &Arc<EmbeddedStore>, label: &str) {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let threads: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let client_id = ClientId::new(&format!("writer-{writer}"));
                let record = Bytes::from(vec![b'x'; RECORD]);
                let mut latencies = Vec::new();
                let mut seq = 0;
                while !stop.load(Ordering::Relaxed) {
                    seq += 1;
                    let t0 = Instant::now();
                    let op = StoreOp::Enqueue { client_id: client_id.clone(), seq: QueueSeq(seq), record: record.clone() };
                    let ticket = store.write(op).expect("write");
                    latencies.push(t0.elapsed());
                    block_on(store.commit(ticket)).expect("commit");
                }
                latencies
            })
        })
        .collect();
    std::thread::sleep(RUN);
    stop.store(true, Ordering::Relaxed);
    let mut latencies: Vec<Duration> = threads.into_iter().flat_map(|t| t.join().expect("writer")).collect();
    let elapsed = started.elapsed();
    latencies.sort();
    println!(
        "  writes ({label}, 8 writers awaiting commit): {:.0}/s, write() p50 {:?} p99 {:?} max {:?}",
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
    );
}

fn big() {
    let dir = tempdir();
    let record = Bytes::from(vec![b'x'; RECORD]);
    let started = Instant::now();
    {
        let store = open(dir.path(), Durability::None, true);
        for session in 0..BIG_SESSIONS {
            let client_id = ClientId::new(&format!("client-{session:04}"));
            store.write(StoreOp::PutSession { client_id, record: Bytes::from_static(b"session") }).expect("write");
        }
        for seq in 1..=BIG_PER_SESSION {
            for session in 0..BIG_SESSIONS {
                let client_id = ClientId::new(&format!("client-{session:04}"));
                let op = StoreOp::Enqueue { client_id, seq: QueueSeq(seq), record: record.clone() };
                store.write(op).expect("write");
            }
        }
        store.flush().expect("flush");
    }
    println!(
        "  1M enqueues through write() (durability none, 1 thread): {:.1}s, disk {:.0} MiB",
        started.elapsed().as_secs_f64(),
        mib(disk_usage(dir.path()))
    );
    crate::util::reopen_in_child(&["reopen-store", &dir.path().display().to_string()]);
    let store = open(dir.path(), Durability::None, true);
    let started = Instant::now();
    for seq in 1..=BIG_PER_SESSION {
        for session in 0..BIG_SESSIONS {
            let client_id = ClientId::new(&format!("client-{session:04}"));
            store.write(StoreOp::Dequeue { client_id, seq: QueueSeq(seq) }).expect("write");
        }
    }
    store.flush().expect("flush");
    let at_once = disk_usage(dir.path());
    let dequeued_in = started.elapsed();
    std::thread::sleep(Duration::from_secs(8));
    let later = disk_usage(dir.path());
    if std::env::var_os("BENCH_DU").is_some() {
        let out = std::process::Command::new("du").arg("-ak").arg(dir.path()).output().expect("du");
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
        lines.sort_by_key(|l| std::cmp::Reverse(l.split_whitespace().next().and_then(|n| n.parse::<u64>().ok())));
        lines.iter().take(25).for_each(|l| println!("    {l}"));
    }
    drop(store);
    let closed = disk_usage(dir.path());
    let store = open(dir.path(), Durability::None, true);
    let reopened = disk_usage(dir.path());
    let left: u64 = store.sessions().expect("sessions").iter().map(|s| s.queue.messages).sum();
    println!(
        "  dequeued 1M through write(): {:.1}s ({:.0}/s); disk {:.0} MiB at once, {:.0} MiB 8 s later, \
         {:.0} MiB closed, {:.0} MiB reopened ({left} left)",
        dequeued_in.as_secs_f64(),
        1e6 / dequeued_in.as_secs_f64(),
        mib(at_once),
        mib(later),
        mib(closed),
        mib(reopened)
    );
}

pub fn reopen(dir: &Path) {
    let started = Instant::now();
    let store = open(dir, Durability::None, true);
    let opened = started.elapsed();
    let sessions = store.sessions().expect("sessions");
    let listed = started.elapsed() - opened;
    let messages: u64 = sessions.iter().map(|s| s.queue.messages).sum();
    let bytes: u64 = sessions.iter().map(|s| s.queue.bytes).sum();
    let page = store.queue_page(&ClientId::new("client-0500"), QueueSeq(0), 100).expect("page");
    println!(
        "  reopen: open {opened:?}, sessions() {listed:?} ({} sessions, {messages} messages, {} MiB), \
         first page {} records, RSS {}",
        sessions.len(),
        bytes >> 20,
        page.len(),
        crate::util::rss()
    );
}

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}

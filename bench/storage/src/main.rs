//! Measures the embedded store's candidate engines, then the store itself. See README.md.
//!
//! `cargo run --release -- raw [fjall|fjall-fd|redb]...` measures the engines directly;
//! `cargo run --release -- store` measures `tern_store::embedded::EmbeddedStore` through the
//! `Store` trait. Every run is bounded in time or count; data goes to a temporary directory
//! (under `$BENCH_DIR` if set, so it can be put on the disk to measure).

mod engines;
mod store;
mod util;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engines::{Engine, Fjall, Redb};
use util::{disk_usage, mib, percentile, tempdir, GroupCommit};

pub const WRITERS: u32 = 8;
pub const RECORD: usize = 120;
pub const RUN: Duration = Duration::from_secs(3);
pub const BIG_SESSIONS: u32 = 1000;
pub const BIG_PER_SESSION: u64 = 1000;

fn open(engine: &str, dir: &Path) -> Box<dyn Engine> {
    match engine {
        "fjall" => Box::new(Fjall::open(dir, false)),
        "fjall-fd" => Box::new(Fjall::open(dir, true)),
        "redb" => Box::new(Redb::open(dir)),
        other => panic!("unknown engine {other}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("raw") => {
            let engines: Vec<&str> =
                if args.len() > 1 { args[1..].iter().map(String::as_str).collect() } else { vec!["fjall", "fjall-fd", "redb"] };
            for engine in engines {
                raw(engine);
            }
        }
        Some("store") => store::run(args.get(1).map(String::as_str)),
        // Internal: a fresh process reopens a big store, so its RSS is the reopen's alone.
        Some("reopen") => reopen(&args[1], Path::new(&args[2])),
        Some("reopen-store") => store::reopen(Path::new(&args[1])),
        _ => eprintln!("usage: tern-storage-bench raw [fjall|fjall-fd|redb]... | store"),
    }
}

fn raw(name: &str) {
    println!("== {name}");
    for sync in [true, false] {
        let dir = tempdir();
        let engine: Arc<dyn Engine> = Arc::from(open(name, dir.path()));
        writes(&engine, sync);
    }
    {
        let dir = tempdir();
        let engine: Arc<dyn Engine> = Arc::from(open(name, dir.path()));
        dequeues(&engine);
    }
    big(name);
}

/// (1)/(2): 8 writer threads, each enqueueing 120-byte records and (sync) waiting for the
/// group commit that covers its write.
fn writes(engine: &Arc<dyn Engine>, sync: bool) {
    let group = GroupCommit::start(engine.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let threads: Vec<_> = (0..WRITERS)
        .map(|session| {
            let (engine, group, stop) = (engine.clone(), group.clone(), stop.clone());
            std::thread::spawn(move || {
                let value = vec![b'x'; RECORD];
                let mut latencies = Vec::new();
                let mut seq = 0;
                while !stop.load(Ordering::Relaxed) {
                    seq += 1;
                    let t0 = Instant::now();
                    engine.put(session, seq, &value);
                    latencies.push(t0.elapsed());
                    let ticket = group.written();
                    if sync {
                        group.wait(ticket);
                    }
                }
                latencies
            })
        })
        .collect();
    std::thread::sleep(RUN);
    stop.store(true, Ordering::Relaxed);
    let mut latencies: Vec<Duration> = threads.into_iter().flat_map(|t| t.join().expect("writer")).collect();
    let elapsed = started.elapsed();
    let syncs = group.stop();
    latencies.sort();
    println!(
        "  writes ({}): {:.0}/s, {} fsyncs, write() p50 {:?} p99 {:?} max {:?}",
        if sync { "sync, 8 writers" } else { "no fsync, 8 writers" },
        latencies.len() as f64 / elapsed.as_secs_f64(),
        syncs,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
    );
}

/// (3): 8 threads each dequeueing its own session's queue in order, no fsync.
fn dequeues(engine: &Arc<dyn Engine>) {
    const PER_SESSION: u64 = 50_000;
    let value = vec![b'x'; RECORD];
    for session in 0..WRITERS {
        let items: Vec<_> = (1..=PER_SESSION).map(|seq| (session, seq, value.clone())).collect();
        for chunk in items.chunks(10_000) {
            engine.put_many(chunk);
        }
    }
    engine.sync();
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..WRITERS)
        .map(|session| {
            let (engine, done) = (engine.clone(), done.clone());
            std::thread::spawn(move || {
                for seq in 1..=PER_SESSION {
                    engine.remove(session, seq);
                    done.fetch_add(1, Ordering::Relaxed);
                    if started.elapsed() > RUN {
                        break;
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("dequeuer");
    }
    let elapsed = started.elapsed();
    println!("  dequeues (8 threads, no fsync): {:.0}/s", done.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64());
}

/// (4)/(5): a store of 1,000,000 records across 1000 sessions: open time and RSS in a fresh
/// process, then disk usage once everything is dequeued.
fn big(name: &str) {
    let dir = tempdir();
    let empty = disk_usage(dir.path());
    let started = Instant::now();
    {
        let engine = open(name, dir.path());
        let value = vec![b'x'; RECORD];
        let mut items = Vec::with_capacity(10_000);
        for seq in 1..=BIG_PER_SESSION {
            for session in 0..BIG_SESSIONS {
                items.push((session, seq, value.clone()));
                if items.len() == 10_000 {
                    engine.put_many(&items);
                    items.clear();
                }
            }
        }
        engine.sync();
    }
    let loaded = disk_usage(dir.path());
    println!(
        "  1M records: loaded in {:.1}s (batches of 10k), disk {:.0} MiB",
        started.elapsed().as_secs_f64(),
        mib(loaded)
    );
    util::reopen_in_child(&["reopen", name, &dir.path().display().to_string()]);
    let mut engine = open(name, dir.path());
    let started = Instant::now();
    let mut items = Vec::with_capacity(10_000);
    for seq in 1..=BIG_PER_SESSION {
        for session in 0..BIG_SESSIONS {
            items.push((session, seq));
            if items.len() == 10_000 {
                engine.remove_many(&items);
                items.clear();
            }
        }
    }
    engine.sync();
    let removed = disk_usage(dir.path());
    engine.settle();
    let settled = disk_usage(dir.path());
    drop(engine);
    let closed = disk_usage(dir.path());
    println!(
        "  dequeued all in {:.1}s: disk {:.1} MiB at once, {:.1} MiB after settling, {:.1} MiB closed (empty store {:.1} MiB)",
        started.elapsed().as_secs_f64(),
        mib(removed),
        mib(settled),
        mib(closed),
        mib(empty)
    );
}

fn reopen(name: &str, dir: &Path) {
    let started = Instant::now();
    let engine = open(name, dir);
    let opened = started.elapsed();
    let (count, bytes) = engine.scan_summary();
    println!(
        "  reopen: open {:?}, full scan for summaries {:?} ({count} records, {} MiB), RSS {}",
        opened,
        started.elapsed() - opened,
        bytes >> 20,
        util::rss()
    );
}

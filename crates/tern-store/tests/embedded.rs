//! The embedded store against the conformance suite, damaged directories, and a killed process.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tern_core::{ClientId, QueueSeq, Store, StoreError, StoreOp};
use tern_store::embedded::EmbeddedStore;
use tern_store::{Durability, StoreOptions};
use tern_test_support::{block_on, store_conformance, store_persistence_conformance};

fn options(durability: Durability) -> StoreOptions {
    StoreOptions { durability, flush_interval: Duration::from_millis(50) }
}

fn open(dir: &Path) -> Result<EmbeddedStore, StoreError> {
    EmbeddedStore::open(dir, StoreOptions::default())
}

#[test]
fn conformance_at_every_durability_level() {
    for durability in [Durability::Sync, Durability::Relaxed, Durability::None] {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), options(durability)).unwrap();
        store_conformance(&store);
        assert!(store.describe().contains(&dir.path().display().to_string()));
    }
}

#[test]
fn persistence_conformance() {
    for durability in [Durability::Sync, Durability::None] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        store_persistence_conformance(&|| {
            Arc::new(EmbeddedStore::open(&path, options(durability)).expect("reopen")) as Arc<dyn Store>
        });
    }
}

#[test]
fn the_directory_is_created_and_described() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a").join("b");
    let store = open(&path).unwrap();
    assert!(path.join("FORMAT").is_file());
    assert_eq!(store.describe(), format!("embedded store in {} (fjall, sync)", path.display()));
}

/// The error must say which directory is at fault and how to get going again.
fn assert_names_dir_and_recovery(error: &StoreError, dir: &Path) {
    let text = error.to_string();
    assert!(text.contains(&dir.display().to_string()), "names the directory: {text}");
    assert!(text.contains("move") && text.contains("backup"), "says how to recover: {text}");
}

fn expect_error(result: Result<EmbeddedStore, StoreError>) -> StoreError {
    match result {
        Ok(_) => panic!("opened a directory it should have refused"),
        Err(error) => error,
    }
}

#[test]
fn a_garbage_or_future_format_marker_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()).unwrap());
    std::fs::write(dir.path().join("FORMAT"), b"\x00\xffgarbage").unwrap();
    let error = expect_error(open(dir.path()));
    assert!(matches!(error, StoreError::Corrupt(_)), "{error}");
    assert_names_dir_and_recovery(&error, dir.path());

    std::fs::write(dir.path().join("FORMAT"), "tern embedded store\nformat 99\n").unwrap();
    let error = expect_error(open(dir.path()));
    assert!(error.to_string().contains("format 99") && error.to_string().contains("newer"), "{error}");
    assert_names_dir_and_recovery(&error, dir.path());
}

#[test]
fn a_directory_that_is_not_a_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "someone else's files").unwrap();
    let error = expect_error(open(dir.path()));
    assert_names_dir_and_recovery(&error, dir.path());
    assert_eq!(std::fs::read_to_string(dir.path().join("notes.txt")).unwrap(), "someone else's files");

    // The marker without the database it vouches for.
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()).unwrap());
    std::fs::remove_dir_all(dir.path().join("db")).unwrap();
    assert_names_dir_and_recovery(&expect_error(open(dir.path())), dir.path());
}

#[test]
fn garbage_in_the_data_files_is_an_error_not_an_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path()).unwrap();
        store.write(StoreOp::PutSession { client_id: ClientId::new("c"), record: Bytes::from_static(b"s") }).unwrap();
        store.flush().unwrap();
    }
    let mut damaged = 0;
    let mut stack = vec![dir.path().join("db")];
    while let Some(path) = stack.pop() {
        for entry in std::fs::read_dir(&path).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else if entry.file_name() != "lock" {
                std::fs::write(entry.path(), b"\x13\x37 this is not what was written here \xff\xfe").unwrap();
                damaged += 1;
            }
        }
    }
    assert!(damaged > 0);
    let error = expect_error(open(dir.path()));
    assert!(matches!(error, StoreError::Corrupt(_)), "{error}");
    assert_names_dir_and_recovery(&error, dir.path());
}

#[test]
fn a_regular_file_is_not_a_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data");
    std::fs::write(&file, "x").unwrap();
    let text = expect_error(open(&file)).to_string();
    assert!(text.contains(&file.display().to_string()) && text.contains("not a directory"), "{text}");
}

#[test]
fn a_directory_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path()).unwrap();
    let text = expect_error(open(dir.path())).to_string();
    assert!(text.contains(&dir.path().display().to_string()) && text.contains("in use"), "{text}");
    drop(first);
    open(dir.path()).expect("free again once the first is dropped");
}

#[test]
fn queue_sizes_survive_a_reopen_and_dequeues() {
    let dir = tempfile::tempdir().unwrap();
    let client = ClientId::new("sizes");
    {
        let store = open(dir.path()).unwrap();
        store.write(StoreOp::PutSession { client_id: client.clone(), record: Bytes::from_static(b"s") }).unwrap();
        for seq in 1..=100u64 {
            let record = Bytes::from(vec![b'x'; seq as usize]);
            store.write(StoreOp::Enqueue { client_id: client.clone(), seq: QueueSeq(seq), record }).unwrap();
        }
        for seq in 91..=100u64 {
            store.write(StoreOp::Dequeue { client_id: client.clone(), seq: QueueSeq(seq) }).unwrap();
        }
    }
    let store = open(dir.path()).unwrap();
    let summary = store.sessions().unwrap()[0].queue;
    assert_eq!(summary.messages, 90);
    assert_eq!(summary.bytes, (1..=90).sum::<u64>());
    assert_eq!(summary.last_seq, Some(QueueSeq(90)), "the greatest seq still queued");
}

const CRASH_DIR: &str = "TERN_EMBEDDED_CRASH_DIR";
const CRASH_WRITERS: usize = 4;

/// Only does something in the child process that `a_killed_process_loses_nothing_committed`
/// starts: writes and commits from several threads, printing each committed seq, until killed.
#[test]
fn crash_writer_child() {
    let Some(dir) = std::env::var_os(CRASH_DIR) else { return };
    let store = open(Path::new(&dir)).unwrap();
    std::thread::scope(|scope| {
        for writer in 0..CRASH_WRITERS {
            let store = &store;
            scope.spawn(move || {
                let client_id = ClientId::new(&format!("crash-{writer}"));
                for seq in 1.. {
                    let record = Bytes::from(format!("record {seq} of writer {writer}"));
                    let ticket = store
                        .write(StoreOp::Enqueue { client_id: client_id.clone(), seq: QueueSeq(seq), record })
                        .unwrap();
                    block_on(store.commit(ticket)).unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "committed {writer} {seq}").unwrap();
                    out.flush().unwrap();
                }
            });
        }
    });
}

#[test]
fn a_killed_process_loses_nothing_committed() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_writer_child", "--nocapture", "--test-threads=1"])
        .env(CRASH_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut committed = [0u64; CRASH_WRITERS];
    let mut lines = BufReader::new(stdout).lines();
    let mut count = 0;
    while count < 400 {
        let Some(line) = lines.next() else { panic!("the writer stopped early") };
        let line = line.unwrap();
        let Some(rest) = line.strip_prefix("committed ") else { continue };
        let (writer, seq) = rest.split_once(' ').unwrap();
        let (writer, seq): (usize, u64) = (writer.parse().unwrap(), seq.parse().unwrap());
        committed[writer] = committed[writer].max(seq);
        count += 1;
    }
    child.kill().unwrap();
    // Whatever it printed before the kill landed counts as committed too.
    for line in lines.map_while(Result::ok) {
        if let Some((writer, seq)) = line.strip_prefix("committed ").and_then(|rest| rest.split_once(' ')) {
            let writer: usize = writer.parse().unwrap();
            committed[writer] = committed[writer].max(seq.parse().unwrap());
        }
    }
    child.wait().unwrap();
    let store = open(dir.path()).unwrap();
    for (writer, last) in committed.iter().enumerate() {
        let client_id = ClientId::new(&format!("crash-{writer}"));
        let queued = store.queue_page(&client_id, QueueSeq(1), *last as usize).unwrap();
        let seqs: Vec<u64> = queued.iter().map(|queued| queued.seq.0).collect();
        assert_eq!(seqs, (1..=*last).collect::<Vec<_>>(), "writer {writer}: every committed seq is there");
        if let Some(queued) = queued.last() {
            assert_eq!(queued.record, Bytes::from(format!("record {last} of writer {writer}")));
        }
    }
}

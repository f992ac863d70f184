//! The Redis store against a real redis-server: each test starts its own on a free loopback
//! port (no persistence, a temporary directory) and kills it at the end.
//!
//! redis-server is needed: scripts/install-test-deps installs it. With TERN_SKIP_REDIS=1 the
//! tests are skipped with a notice instead of failing.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tern_codec::TopicName;
use tern_core::{ClientId, QueueSeq, Store, StoreError, StoreOp, Ticket};
use tern_store::redis_store::RedisStore;
use tern_store::{Durability, StoreOptions};
use tern_test_support::{block_on, store_conformance, store_persistence_conformance};

const INSTALL_HINT: &str = "redis-server is needed by the Redis store tests: run scripts/install-test-deps \
     (or set TERN_SKIP_REDIS=1 to skip them)";

/// A redis-server of this test's own, killed on drop.
struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts one, or `None` (after a loud notice) when skipping is asked for and there is no
    /// redis-server.
    fn start() -> Option<RedisServer> {
        if Command::new("redis-server").arg("--version").stdout(Stdio::null()).status().is_err() {
            if std::env::var("TERN_SKIP_REDIS").as_deref() == Ok("1") {
                // Straight to stderr: the test harness would hide eprintln! output of a passing test.
                let notice = "\n*** SKIPPED: redis-server is not installed and TERN_SKIP_REDIS=1 ***\n";
                let _ = std::io::stderr().write_all(notice.as_bytes());
                return None;
            }
            panic!("{INSTALL_HINT}");
        }
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("free port").local_addr().expect("addr").port();
        let mut server = RedisServer { child: None, port, dir: tempfile::tempdir().expect("temporary directory") };
        server.spawn();
        Some(server)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string(), "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("{INSTALL_HINT}: {error}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers_ping() {
            assert!(Instant::now() < deadline, "redis-server on port {} did not answer PING", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn answers_ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)) else { return false };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
    }

    /// Sends one inline command on a connection of its own and returns the first reply line.
    fn command(&self, line: &str) -> String {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).expect("connect to redis-server");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("read timeout");
        stream.write_all(format!("{line}\r\n").as_bytes()).expect("send");
        let mut reply = Vec::new();
        let mut byte = [0u8; 1];
        while stream.read_exact(&mut byte).is_ok() && byte[0] != b'\n' {
            reply.push(byte[0]);
        }
        String::from_utf8_lossy(&reply).trim_end().to_string()
    }

    /// SIGKILL: no chance to close connections or save anything.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn options(durability: Durability) -> StoreOptions {
    StoreOptions { durability, ..StoreOptions::default() }
}

fn connect(server: &RedisServer, prefix: &str, durability: Durability) -> RedisStore {
    RedisStore::connect_with_prefix(&server.url(), prefix, options(durability)).expect("connect to redis-server")
}

fn topic(name: &str) -> TopicName {
    TopicName::new(name).expect("valid topic")
}

fn put_retained(store: &dyn Store, name: &str, text: &str) -> Ticket {
    let op = StoreOp::PutRetained { topic: topic(name), record: Bytes::copy_from_slice(text.as_bytes()) };
    store.write(op).expect("write")
}

/// Runs `commit` on another thread and gives up after `limit`, so a hanging commit fails the
/// test instead of blocking it.
fn commit_within(store: &Arc<RedisStore>, ticket: Ticket, limit: Duration) -> Result<(), StoreError> {
    let (done, result) = mpsc::channel();
    let commit = store.commit(ticket);
    std::thread::spawn(move || {
        let _ = done.send(block_on(commit));
    });
    result.recv_timeout(limit).unwrap_or_else(|_| panic!("commit did not resolve within {limit:?}"))
}

fn conformance(durability: Durability) {
    let Some(server) = RedisServer::start() else { return };
    let store = connect(&server, "conformance", durability);
    store_conformance(&store);
}

#[test]
fn conformance_sync() {
    conformance(Durability::Sync);
}

#[test]
fn conformance_relaxed() {
    conformance(Durability::Relaxed);
}

#[test]
fn conformance_none() {
    conformance(Durability::None);
}

#[test]
fn persistence_conformance() {
    let Some(server) = RedisServer::start() else { return };
    let open = || -> Arc<dyn Store> { Arc::new(connect(&server, "persist", Durability::Sync)) };
    store_persistence_conformance(&open);
}

#[test]
fn describe_names_the_url_and_prefix() {
    let Some(server) = RedisServer::start() else { return };
    let store = connect(&server, "described", Durability::Sync);
    assert_eq!(store.describe(), format!("redis store at {} (prefix described), sync", server.url()));
    let with_password = format!("redis://:secret@127.0.0.1:{}/0", server.port);
    // The server has no password; what matters is that no message shows it.
    let error = RedisStore::connect(&with_password, StoreOptions::default()).err().map(|e| e.to_string());
    assert!(!error.unwrap_or_default().contains("secret"), "the password is never shown");
}

#[test]
fn prefixes_on_one_server_are_kept_apart() {
    let Some(server) = RedisServer::start() else { return };
    let one = connect(&server, "one", Durability::Sync);
    let two = connect(&server, "two", Durability::Sync);
    let client = ClientId::new("shared-id");
    one.write(StoreOp::PutSession { client_id: client.clone(), record: Bytes::from_static(b"one's") }).expect("write");
    one.write(StoreOp::Enqueue { client_id: client.clone(), seq: QueueSeq(1), record: Bytes::from_static(b"m") })
        .expect("write");
    put_retained(&one, "r", "one's retained");
    assert!(two.sessions().expect("sessions").is_empty());
    assert!(two.retained().expect("retained").is_empty());
    assert!(two.queue_page(&client, QueueSeq(0), 10).expect("page").is_empty());
    two.write(StoreOp::DeleteSession { client_id: client.clone() }).expect("write");
    two.flush().expect("flush");
    let sessions = one.sessions().expect("sessions");
    assert_eq!(sessions.len(), 1, "deleting in one prefix leaves the other alone");
    assert_eq!(sessions[0].queue.messages, 1);
    assert_eq!(one.retained().expect("retained").len(), 1);
}

#[test]
fn seqs_beyond_2_pow_53_keep_their_order() {
    let Some(server) = RedisServer::start() else { return };
    let store = connect(&server, "bigseq", Durability::Sync);
    let client = ClientId::new("c");
    let seqs = [(1u64 << 53) + 1, (1 << 53) + 2, u64::MAX - 1, u64::MAX];
    for seq in seqs {
        let record = Bytes::from(seq.to_string());
        store.write(StoreOp::Enqueue { client_id: client.clone(), seq: QueueSeq(seq), record }).expect("write");
    }
    let page: Vec<u64> =
        store.queue_page(&client, QueueSeq(1 << 53), 10).expect("page").iter().map(|queued| queued.seq.0).collect();
    assert_eq!(page, seqs);
    let page = store.queue_page(&client, QueueSeq((1 << 53) + 2), 1).expect("page");
    assert_eq!(page[0].seq, QueueSeq((1 << 53) + 2));
}

#[test]
fn a_killed_server_fails_commits_and_a_restarted_one_is_used_again() {
    let Some(mut server) = RedisServer::start() else { return };
    let store = Arc::new(connect(&server, "outage", Durability::Sync));
    let ticket = put_retained(&*store, "before", "1");
    commit_within(&store, ticket, Duration::from_secs(10)).expect("commit while the server runs");

    server.kill();
    let ticket = put_retained(&*store, "during", "2");
    let error = commit_within(&store, ticket, Duration::from_secs(15)).expect_err("a commit fails while it is down");
    assert!(error.to_string().contains(&server.url()), "the error names the URL: {error}");
    // Later commits fail too, each within a bounded time, and nothing panics.
    for n in 0..3 {
        let ticket = put_retained(&*store, "during", &n.to_string());
        commit_within(&store, ticket, Duration::from_secs(15)).expect_err("commits keep failing while it is down");
    }
    assert!(store.flush().is_err(), "flush reports the lost writes");
    assert!(store.retained().is_err(), "reads fail while it is down");

    server.restart();
    let ticket = put_retained(&*store, "after", "3");
    commit_within(&store, ticket, Duration::from_secs(15)).expect("commits work again after a restart");
    // The restarted server kept nothing (no persistence); what was written since is there.
    assert_eq!(store.retained().expect("reads work again"), vec![(topic("after"), Bytes::from_static(b"3"))]);
    store.flush().expect("flush after the restart");
}

#[test]
fn connections_closed_by_the_server_are_replaced_without_an_error() {
    let Some(server) = RedisServer::start() else { return };
    let store = Arc::new(connect(&server, "closed", Durability::Sync));
    let ticket = put_retained(&*store, "one", "1");
    commit_within(&store, ticket, Duration::from_secs(10)).expect("commit");
    assert_eq!(store.retained().expect("read").len(), 1);
    // As a server's idle timeout would: both of the store's connections are closed.
    let killed = server.command("CLIENT KILL TYPE normal");
    assert_eq!(killed, ":2", "the store's writer and reader connections were closed");
    let ticket = put_retained(&*store, "two", "2");
    commit_within(&store, ticket, Duration::from_secs(10)).expect("the batch is sent again on a new connection");
    assert_eq!(store.retained().expect("the read is retried on a new connection").len(), 2);
}

#[test]
fn relaxed_commits_report_an_outage_already_seen() {
    let Some(mut server) = RedisServer::start() else { return };
    let store = Arc::new(connect(&server, "relaxed-outage", Durability::Relaxed));
    server.kill();
    put_retained(&*store, "lost", "1");
    assert!(store.flush().is_err(), "flush waits for the writer and reports the failure");
    let ticket = put_retained(&*store, "lost", "2");
    assert!(block_on(store.commit(ticket)).is_err(), "a relaxed commit reports the known outage at once");
}

#[test]
fn an_unreachable_server_is_a_clear_error_from_connect() {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("free port").local_addr().expect("addr").port();
    let url = format!("redis://127.0.0.1:{port}/0");
    let started = Instant::now();
    let error = RedisStore::connect(&url, StoreOptions::default()).err().expect("nothing listens there");
    assert!(started.elapsed() < Duration::from_secs(5), "connect gives up quickly");
    let StoreError::Backend(message) = &error else { panic!("a backend error: {error:?}") };
    assert!(message.contains(&url) && message.contains("cannot connect"), "{message}");
    let error = RedisStore::connect("not a url", StoreOptions::default()).err().expect("an invalid URL");
    assert!(error.to_string().contains("not a url"), "{error}");
}

/// Many threads writing and committing share batches (group commit); prints the rate.
#[test]
fn concurrent_writers_share_batches() {
    let Some(server) = RedisServer::start() else { return };
    let store = connect(&server, "throughput", Durability::Sync);
    let (threads, per_thread) = (8, 1000);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let store = &store;
            scope.spawn(move || {
                let client = ClientId::new(&format!("writer-{thread}"));
                for seq in 1..=per_thread {
                    let record = Bytes::from(vec![b'x'; 100]);
                    let op = StoreOp::Enqueue { client_id: client.clone(), seq: QueueSeq(seq), record };
                    let ticket = store.write(op).expect("write");
                    block_on(store.commit(ticket)).expect("commit");
                }
            });
        }
    });
    let elapsed = started.elapsed();
    let writes = threads * per_thread;
    eprintln!(
        "{writes} committed writes from {threads} threads in {elapsed:?}: {:.0}/s",
        writes as f64 / elapsed.as_secs_f64()
    );
    for thread in 0..threads {
        let page = store.queue_page(&ClientId::new(&format!("writer-{thread}")), QueueSeq(0), 2000).expect("page");
        assert_eq!(page.len(), per_thread as usize);
    }
}

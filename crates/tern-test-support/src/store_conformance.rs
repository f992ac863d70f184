//! The conformance suite every storage backend passes, the in-memory reference first.
//!
//! [`store_conformance`] checks what any store does within one process; durable backends
//! also pass [`store_persistence_conformance`], which closes and reopens the store.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use bytes::Bytes;
use tern_codec::{PacketId, TopicName};
use tern_core::{ClientId, OutgoingMark, QueueSeq, QueueSummary, QueuedRecord, Store, StoreOp, Ticket};

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs a future to completion on this thread (stores' commits are runtime-agnostic).
pub fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park_timeout(std::time::Duration::from_millis(100));
    }
}

fn id(client: &str) -> ClientId {
    ClientId::new(client)
}

fn topic(name: &str) -> TopicName {
    TopicName::new(name).expect("valid topic")
}

fn pid(value: u16) -> PacketId {
    PacketId::new(value).expect("non-zero packet id")
}

fn record(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

fn write(store: &dyn Store, op: StoreOp) -> Ticket {
    store.write(op).expect("write")
}

fn enqueue(store: &dyn Store, client: &str, seq: u64, text: &str) -> Ticket {
    write(store, StoreOp::Enqueue { client_id: id(client), seq: QueueSeq(seq), record: record(text) })
}

fn put_session(store: &dyn Store, client: &str, text: &str) -> Ticket {
    write(store, StoreOp::PutSession { client_id: id(client), record: record(text) })
}

fn page(store: &dyn Store, client: &str, from: u64, limit: usize) -> Vec<(u64, Bytes, Option<OutgoingMark>)> {
    store
        .queue_page(&id(client), QueueSeq(from), limit)
        .expect("queue page")
        .into_iter()
        .map(|QueuedRecord { seq, record, mark }| (seq.0, record, mark))
        .collect()
}

/// Runs every in-process conformance check against `store`, which must start empty.
pub fn store_conformance(store: &dyn Store) {
    assert!(store.sessions().expect("list sessions").is_empty(), "store must start empty");
    assert!(store.retained().expect("list retained").is_empty(), "store must start empty");
    assert!(!store.describe().is_empty());
    retained_messages_are_kept_replaced_and_deleted(store);
    sessions_are_kept_replaced_and_deleted(store);
    queues_are_paged_in_order_and_summarised(store);
    outgoing_marks_are_kept_with_their_message(store);
    incoming_qos2_ids_are_kept_until_released(store);
    clients_whose_ids_share_a_prefix_are_kept_apart(store);
    deleting_a_session_removes_everything_kept_for_it(store);
    tickets_grow_and_commit(store);
}

/// Checks for durable backends: what was written and committed (or flushed) is there after
/// the store is dropped and opened again from the same place. `open` opens that place.
pub fn store_persistence_conformance(open: &dyn Fn() -> Arc<dyn Store>) {
    {
        let store = open();
        assert!(store.sessions().expect("list sessions").is_empty(), "store must start empty");
        put_session(&*store, "keeper", "session record");
        write(&*store, StoreOp::PutRetained { topic: topic("r/1"), record: record("retained") });
        for seq in 1..=5 {
            enqueue(&*store, "keeper", seq, &format!("message {seq}"));
        }
        write(&*store, StoreOp::Dequeue { client_id: id("keeper"), seq: QueueSeq(1) });
        let mark = OutgoingMark { packet_id: pid(7), released: true };
        write(&*store, StoreOp::MarkOutgoing { client_id: id("keeper"), seq: QueueSeq(2), mark });
        write(&*store, StoreOp::AddIncomingQos2 { client_id: id("keeper"), packet_id: pid(42) });
        let last = enqueue(&*store, "keeper", 6, "message 6");
        block_on(store.commit(last)).expect("commit");
        put_session(&*store, "gone", "to be deleted");
        write(&*store, StoreOp::DeleteSession { client_id: id("gone") });
        store.flush().expect("flush");
    }
    let store = open();
    let sessions = store.sessions().expect("list sessions after reopening");
    assert_eq!(sessions.len(), 1, "one session survives: {sessions:?}");
    let keeper = &sessions[0];
    assert_eq!(keeper.client_id, id("keeper"));
    assert_eq!(keeper.record, record("session record"));
    assert_eq!(keeper.incoming_qos2, vec![pid(42)]);
    assert_eq!(keeper.queue.messages, 5);
    assert_eq!(keeper.queue.last_seq, Some(QueueSeq(6)));
    assert_eq!(store.retained().expect("retained"), vec![(topic("r/1"), record("retained"))]);
    let queued = page(&*store, "keeper", 0, 100);
    let seqs: Vec<u64> = queued.iter().map(|(seq, _, _)| *seq).collect();
    assert_eq!(seqs, vec![2, 3, 4, 5, 6]);
    assert_eq!(queued[0].2, Some(OutgoingMark { packet_id: pid(7), released: true }));
    assert_eq!(queued[4].1, record("message 6"));
    // Writing goes on after a reopen, after what was there.
    enqueue(&*store, "keeper", 7, "message 7");
    assert_eq!(page(&*store, "keeper", 7, 10).len(), 1);
}

fn retained_messages_are_kept_replaced_and_deleted(store: &dyn Store) {
    write(store, StoreOp::PutRetained { topic: topic("b/1"), record: record("one") });
    write(store, StoreOp::PutRetained { topic: topic("a/1"), record: record("first") });
    write(store, StoreOp::PutRetained { topic: topic("a/1"), record: record("second") });
    // Records are bytes: any value, including ones that are not text.
    write(store, StoreOp::PutRetained { topic: topic("c/ü/ x"), record: Bytes::from_static(&[0, 255, 1, 0]) });
    assert_eq!(
        store.retained().expect("list retained"),
        vec![
            (topic("a/1"), record("second")),
            (topic("b/1"), record("one")),
            (topic("c/ü/ x"), Bytes::from_static(&[0, 255, 1, 0])),
        ],
        "retained messages in topic order, replaced in place"
    );
    write(store, StoreOp::DeleteRetained { topic: topic("a/1") });
    write(store, StoreOp::DeleteRetained { topic: topic("never/stored") });
    write(store, StoreOp::DeleteRetained { topic: topic("c/ü/ x") });
    assert_eq!(store.retained().expect("list retained"), vec![(topic("b/1"), record("one"))]);
    write(store, StoreOp::DeleteRetained { topic: topic("b/1") });
    assert!(store.retained().expect("list retained").is_empty());
}

fn sessions_are_kept_replaced_and_deleted(store: &dyn Store) {
    put_session(store, "zeta", "z1");
    put_session(store, "alpha", "a1");
    put_session(store, "alpha", "a2");
    let all = store.sessions().expect("list sessions");
    let listed: Vec<(ClientId, Bytes)> = all.iter().map(|s| (s.client_id.clone(), s.record.clone())).collect();
    assert_eq!(listed, vec![(id("alpha"), record("a2")), (id("zeta"), record("z1"))], "client id order, replaced");
    assert_eq!(all[0].queue, QueueSummary::default());
    assert!(all[0].incoming_qos2.is_empty());
    write(store, StoreOp::DeleteSession { client_id: id("zeta") });
    write(store, StoreOp::DeleteSession { client_id: id("nobody") });
    assert_eq!(store.sessions().expect("list sessions").len(), 1);
    write(store, StoreOp::DeleteSession { client_id: id("alpha") });
    assert!(store.sessions().expect("list sessions").is_empty());
}

fn queues_are_paged_in_order_and_summarised(store: &dyn Store) {
    put_session(store, "q", "session");
    for seq in 1..=250u64 {
        enqueue(store, "q", seq, &format!("m{seq:03}"));
    }
    // Reads see writes at once, before any commit.
    let first = page(store, "q", 0, 100);
    assert_eq!(first.len(), 100);
    assert_eq!(first[0], (1, record("m001"), None));
    assert_eq!(first[99].0, 100);
    let rest = page(store, "q", 101, 1000);
    assert_eq!(rest.len(), 150);
    assert!(rest.windows(2).all(|w| w[0].0 < w[1].0), "seq order");
    // Removing from the middle and the front.
    for seq in (1..=250u64).filter(|seq| seq % 2 == 1 || *seq <= 100) {
        write(store, StoreOp::Dequeue { client_id: id("q"), seq: QueueSeq(seq) });
    }
    write(store, StoreOp::Dequeue { client_id: id("q"), seq: QueueSeq(9999) });
    let left = page(store, "q", 0, 1000);
    let seqs: Vec<u64> = left.iter().map(|(seq, _, _)| *seq).collect();
    let expected: Vec<u64> = (101..=250).filter(|seq| seq % 2 == 0).collect();
    assert_eq!(seqs, expected);
    assert_eq!(page(store, "q", 201, 3).iter().map(|(seq, _, _)| *seq).collect::<Vec<_>>(), vec![202, 204, 206]);
    let summary = store.sessions().expect("list sessions")[0].queue;
    assert_eq!(summary.messages, 75);
    assert_eq!(summary.bytes, 75 * 4, "bytes are the records' lengths");
    assert_eq!(summary.last_seq, Some(QueueSeq(250)));
    assert!(page(store, "nobody", 0, 10).is_empty());
    write(store, StoreOp::DeleteSession { client_id: id("q") });
    assert!(page(store, "q", 0, 1000).is_empty());
}

fn outgoing_marks_are_kept_with_their_message(store: &dyn Store) {
    put_session(store, "m", "session");
    enqueue(store, "m", 1, "one");
    enqueue(store, "m", 2, "two");
    let sent = OutgoingMark { packet_id: pid(1), released: false };
    write(store, StoreOp::MarkOutgoing { client_id: id("m"), seq: QueueSeq(1), mark: sent });
    write(store, StoreOp::MarkOutgoing { client_id: id("m"), seq: QueueSeq(2), mark: sent });
    let released = OutgoingMark { packet_id: pid(1), released: true };
    write(store, StoreOp::MarkOutgoing { client_id: id("m"), seq: QueueSeq(1), mark: released });
    // A mark for a message that is not queued is ignored and creates nothing.
    write(store, StoreOp::MarkOutgoing { client_id: id("m"), seq: QueueSeq(77), mark: sent });
    let queued = page(store, "m", 0, 10);
    assert_eq!(queued, vec![(1, record("one"), Some(released)), (2, record("two"), Some(sent))]);
    write(store, StoreOp::Dequeue { client_id: id("m"), seq: QueueSeq(1) });
    // Enqueueing again never brings a mark back (a new seq is a new message).
    enqueue(store, "m", 3, "three");
    assert_eq!(page(store, "m", 0, 10), vec![(2, record("two"), Some(sent)), (3, record("three"), None)]);
    write(store, StoreOp::DeleteSession { client_id: id("m") });
}

fn incoming_qos2_ids_are_kept_until_released(store: &dyn Store) {
    put_session(store, "i", "session");
    for packet_id in [300, 2, 65535, 7] {
        write(store, StoreOp::AddIncomingQos2 { client_id: id("i"), packet_id: pid(packet_id) });
    }
    write(store, StoreOp::AddIncomingQos2 { client_id: id("i"), packet_id: pid(7) });
    write(store, StoreOp::RemoveIncomingQos2 { client_id: id("i"), packet_id: pid(300) });
    write(store, StoreOp::RemoveIncomingQos2 { client_id: id("i"), packet_id: pid(4) });
    let sessions = store.sessions().expect("list sessions");
    assert_eq!(sessions[0].incoming_qos2, vec![pid(2), pid(7), pid(65535)], "ascending, no duplicates");
    write(store, StoreOp::DeleteSession { client_id: id("i") });
}

fn clients_whose_ids_share_a_prefix_are_kept_apart(store: &dyn Store) {
    // Ids that are prefixes of one another, contain separators or are not ASCII.
    let clients = ["a", "ab", "a:b", "a/b", "a\u{0}b", "ä", "a b", "a*"];
    for (n, client) in clients.iter().enumerate() {
        put_session(store, client, &format!("s{n}"));
        enqueue(store, client, 1, &format!("{n}"));
        write(store, StoreOp::AddIncomingQos2 { client_id: id(client), packet_id: pid(n as u16 + 1) });
    }
    let sessions = store.sessions().expect("list sessions");
    assert_eq!(sessions.len(), clients.len());
    for (n, client) in clients.iter().enumerate() {
        let found = sessions.iter().find(|s| s.client_id == id(client)).expect("every session listed");
        assert_eq!(found.record, record(&format!("s{n}")));
        assert_eq!(found.queue.messages, 1, "client {client:?}");
        assert_eq!(found.incoming_qos2, vec![pid(n as u16 + 1)], "client {client:?}");
        assert_eq!(page(store, client, 0, 10), vec![(1, record(&format!("{n}")), None)], "client {client:?}");
    }
    write(store, StoreOp::DeleteSession { client_id: id("a") });
    let left = store.sessions().expect("list sessions");
    assert_eq!(left.len(), clients.len() - 1);
    assert!(left.iter().all(|s| s.queue.messages == 1 && s.incoming_qos2.len() == 1), "only 'a' was removed");
    for client in clients {
        write(store, StoreOp::DeleteSession { client_id: id(client) });
    }
    assert!(store.sessions().expect("list sessions").is_empty());
}

fn deleting_a_session_removes_everything_kept_for_it(store: &dyn Store) {
    put_session(store, "d", "session");
    enqueue(store, "d", 1, "one");
    let mark = OutgoingMark { packet_id: pid(9), released: false };
    write(store, StoreOp::MarkOutgoing { client_id: id("d"), seq: QueueSeq(1), mark });
    write(store, StoreOp::AddIncomingQos2 { client_id: id("d"), packet_id: pid(3) });
    write(store, StoreOp::DeleteSession { client_id: id("d") });
    // A new session of the same id starts with nothing.
    put_session(store, "d", "again");
    let sessions = store.sessions().expect("list sessions");
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].queue, QueueSummary::default());
    assert!(sessions[0].incoming_qos2.is_empty());
    assert!(page(store, "d", 0, 10).is_empty());
    write(store, StoreOp::DeleteSession { client_id: id("d") });
}

fn tickets_grow_and_commit(store: &dyn Store) {
    let mut last = Ticket(0);
    for n in 0..100 {
        let ticket = write(store, StoreOp::PutRetained { topic: topic("t"), record: record(&n.to_string()) });
        assert!(ticket > last, "tickets grow with every write");
        last = ticket;
    }
    block_on(store.commit(last)).expect("the last ticket commits");
    block_on(store.commit(Ticket(1))).expect("an old ticket commits at once");
    // Many writers sharing commits (group commit) from several threads.
    std::thread::scope(|scope| {
        for thread in 0..4 {
            scope.spawn(move || {
                for n in 0..50 {
                    let ticket = write(
                        store,
                        StoreOp::PutRetained { topic: topic(&format!("g/{thread}")), record: record(&n.to_string()) },
                    );
                    block_on(store.commit(ticket)).expect("commit");
                }
            });
        }
    });
    store.flush().expect("flush");
    assert_eq!(store.retained().expect("retained").len(), 5);
    for name in ["t", "g/0", "g/1", "g/2", "g/3"] {
        write(store, StoreOp::DeleteRetained { topic: topic(name) });
    }
    assert!(store.retained().expect("retained").is_empty());
}

//! What a store keeps across a broker restart (the in-memory reference store, shared by two
//! brokers started one after the other), and acknowledgements held until the store says a
//! write is durable.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use tern_codec::{Packet, ProtocolVersion, QoS, TopicName};
use tern_core::{
    ClientId, Commit, MemoryStore, QueueSeq, QueuedRecord, SessionRecord, Store, StoreError, StoreOp, Ticket,
};
use tern_server::Config;
use tern_test_support::{connect, puback, pubcomp, publish, pubrec, pubrel, RawClient, TestServer};

const QUIET: Duration = Duration::from_millis(300);

/// A persistent session (5.0: with a session expiry) subscribed to `filter`, then offline.
async fn subscribed_offline(server: &TestServer, version: ProtocolVersion, id: &str, filter: &str, qos: QoS) {
    let mut hello = connect(version, id, false);
    if version == ProtocolVersion::V5 {
        hello.properties.session_expiry_interval = Some(600);
    }
    let (mut subscriber, _) = RawClient::connect_with(server.addr, hello).await;
    subscriber.subscribe(1, &[(filter, qos)]).await;
    subscriber.disconnect().await;
}

/// Messages queued for an offline persistent session are still there after a restart, in
/// order, each exactly once; the queue is paged back in through a window smaller than it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_messages_survive_a_restart_in_order() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    let mut config = Config::default();
    config.limits.max_queued_messages = 7;
    let server = TestServer::start_with_store(config.clone(), store.clone()).await;
    subscribed_offline(&server, ProtocolVersion::V3_1_1, "keeper", "q/#", QoS::ExactlyOnce).await;
    let (mut publisher, _) = RawClient::connect(server.addr, ProtocolVersion::V3_1_1, "pub", true).await;
    for n in 0..40u16 {
        let qos = if n.is_multiple_of(2) { QoS::AtLeastOnce } else { QoS::ExactlyOnce };
        publisher.publish_and_ack("q/t", n.to_string().as_bytes(), qos, false, n + 1).await;
    }
    publisher.disconnect().await;
    server.stop().await;
    assert_eq!(store.sessions().expect("sessions")[0].queue.messages, 40, "all 40 are stored");

    let server = TestServer::start_with_store(config, store.clone()).await;
    let (mut subscriber, connack) = RawClient::connect(server.addr, ProtocolVersion::V3_1_1, "keeper", false).await;
    assert!(connack.session_present);
    // Deliveries are pipelined: acknowledge each packet as it comes.
    let mut received = Vec::new();
    let mut unreleased = 0;
    while received.len() < 40 || unreleased > 0 {
        match subscriber.recv().await {
            Packet::Publish(publish) => {
                let id = publish.packet_id.expect("QoS 1/2").get();
                let n: u16 = std::str::from_utf8(&publish.payload).expect("text").parse().expect("number");
                let qos = if n.is_multiple_of(2) { QoS::AtLeastOnce } else { QoS::ExactlyOnce };
                assert_eq!(publish.qos, qos, "message {n}");
                if qos == QoS::AtLeastOnce {
                    subscriber.send(puback(id)).await;
                } else {
                    subscriber.send(pubrec(id)).await;
                    unreleased += 1;
                }
                received.push(n);
            }
            Packet::PubRel(rel) => {
                subscriber.send(pubcomp(rel.packet_id.get())).await;
                unreleased -= 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(received, (0..40).collect::<Vec<u16>>(), "every message once, in order");
    subscriber.expect_nothing(QUIET).await;
    // Delivered and acknowledged: nothing is left in the store.
    subscriber.send(Packet::PingReq).await;
    assert_eq!(subscriber.recv().await, Packet::PingResp);
    assert_eq!(store.sessions().expect("sessions")[0].queue.messages, 0);
    server.stop().await;
}

/// A QoS 2 message sent and not yet acknowledged is sent again after a restart with the same
/// packet id and DUP; one whose PUBREC came gets only PUBREL again ([MQTT-4.4.0-1]), so the
/// client never sees it twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_qos2_state_survives_a_restart() {
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let server = TestServer::start_with_store(Config::default(), store.clone()).await;
        let mut hello = connect(version, "q2", false);
        hello.properties.session_expiry_interval = (version == ProtocolVersion::V5).then_some(600);
        let (mut subscriber, _) = RawClient::connect_with(server.addr, hello.clone()).await;
        subscriber.subscribe(1, &[("x/#", QoS::ExactlyOnce)]).await;
        let (mut publisher, _) = RawClient::connect(server.addr, version, "pub", true).await;
        publisher.publish_and_ack("x/1", b"released", QoS::ExactlyOnce, false, 1).await;
        publisher.publish_and_ack("x/2", b"unanswered", QoS::ExactlyOnce, false, 2).await;
        let first = subscriber.expect_publish().await;
        let second = subscriber.expect_publish().await;
        assert_eq!(first.payload.as_ref(), b"released");
        let first_id = first.packet_id.expect("QoS 2 has an id").get();
        subscriber.send(pubrec(first_id)).await;
        assert_eq!(subscriber.recv().await, pubrel(first_id));
        // The broker stops before the subscriber answers anything more.
        server.stop().await;
        drop(subscriber);

        let server = TestServer::start_with_store(Config::default(), store.clone()).await;
        let (mut subscriber, connack) = RawClient::connect_with(server.addr, hello).await;
        assert!(connack.session_present);
        assert_eq!(subscriber.recv().await, pubrel(first_id), "{version:?}: only PUBREL for the released one");
        let again = subscriber.expect_publish().await;
        assert!(again.dup, "{version:?}: resent with DUP");
        assert_eq!(again.packet_id, second.packet_id, "{version:?}: under the same packet id");
        assert_eq!(again.payload.as_ref(), b"unanswered");
        subscriber.send(pubcomp(first_id)).await;
        subscriber.ack(&again).await;
        subscriber.expect_nothing(QUIET).await;
        server.stop().await;
    }
}

/// A QoS 2 packet id received and not yet released is remembered across a restart: the
/// publisher's resent PUBLISH is not delivered a second time ([MQTT-4.3.3-?] method A).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_qos2_ids_survive_a_restart() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    let server = TestServer::start_with_store(Config::default(), store.clone()).await;
    subscribed_offline(&server, ProtocolVersion::V3_1_1, "reader", "in/#", QoS::ExactlyOnce).await;
    let (mut publisher, _) = RawClient::connect(server.addr, ProtocolVersion::V3_1_1, "writer", false).await;
    publisher.send(publish("in/t", b"once", QoS::ExactlyOnce, false, Some(5))).await;
    assert_eq!(publisher.recv().await, pubrec(5));
    server.stop().await;
    drop(publisher);

    let server = TestServer::start_with_store(Config::default(), store.clone()).await;
    let (mut publisher, connack) = RawClient::connect(server.addr, ProtocolVersion::V3_1_1, "writer", false).await;
    assert!(connack.session_present);
    let mut resent = publish("in/t", b"once", QoS::ExactlyOnce, false, Some(5));
    if let Packet::Publish(p) = &mut resent {
        p.dup = true;
    }
    publisher.send(resent).await;
    assert_eq!(publisher.recv().await, pubrec(5));
    publisher.send(pubrel(5)).await;
    assert_eq!(publisher.recv().await, pubcomp(5));
    let (mut reader, _) = RawClient::connect(server.addr, ProtocolVersion::V3_1_1, "reader", false).await;
    assert_eq!(reader.recv_acked().await.payload.as_ref(), b"once");
    reader.expect_nothing(QUIET).await;
    server.stop().await;
}

/// The stored budget of a session: beyond it new messages are refused, counted, and the
/// ones kept are delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_budget_refuses_beyond_the_limit() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    let mut config = Config::default();
    config.limits.max_stored_messages_per_session = 3;
    let server = TestServer::start_with_store(config, store.clone()).await;
    subscribed_offline(&server, ProtocolVersion::V3_1_1, "small", "b/#", QoS::AtLeastOnce).await;
    let (mut publisher, _) = RawClient::connect(server.addr, ProtocolVersion::V3_1_1, "pub", true).await;
    for n in 0..5u16 {
        publisher.publish_and_ack("b/t", n.to_string().as_bytes(), QoS::AtLeastOnce, false, n + 1).await;
    }
    assert_eq!(store.sessions().expect("sessions")[0].queue.messages, 3);
    let (mut subscriber, _) = RawClient::connect(server.addr, ProtocolVersion::V3_1_1, "small", false).await;
    for n in 0..3u16 {
        assert_eq!(subscriber.recv_acked().await.payload.as_ref(), n.to_string().as_bytes());
    }
    subscriber.expect_nothing(QUIET).await;
    server.stop().await;
}

/// A store whose commits wait for a gate (or fail), to see what waits for durability.
#[derive(Default)]
struct GatedStore {
    inner: MemoryStore,
    open: AtomicBool,
    fail: AtomicBool,
    waiting: Mutex<Vec<Waker>>,
}

impl GatedStore {
    fn open_gate(&self) {
        self.open.store(true, Ordering::SeqCst);
        for waker in self.waiting.lock().expect("waiters").drain(..) {
            waker.wake();
        }
    }
}

struct Gate(Arc<GatedStore>);

impl Future for Gate {
    type Output = Result<(), StoreError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.0.fail.load(Ordering::SeqCst) {
            return Poll::Ready(Err(StoreError::Backend("disk on fire".into())));
        }
        if self.0.open.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(()));
        }
        self.0.waiting.lock().expect("waiters").push(cx.waker().clone());
        Poll::Pending
    }
}

struct GatedHandle(Arc<GatedStore>);

impl Store for GatedHandle {
    fn write(&self, op: StoreOp) -> Result<Ticket, StoreError> {
        self.0.inner.write(op)
    }
    fn commit(&self, _ticket: Ticket) -> Commit {
        Box::pin(Gate(self.0.clone()))
    }
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
    fn sessions(&self) -> Result<Vec<SessionRecord>, StoreError> {
        self.0.inner.sessions()
    }
    fn retained(&self) -> Result<Vec<(TopicName, Bytes)>, StoreError> {
        self.0.inner.retained()
    }
    fn queue_page(&self, client_id: &ClientId, from: QueueSeq, limit: usize) -> Result<Vec<QueuedRecord>, StoreError> {
        self.0.inner.queue_page(client_id, from, limit)
    }
    fn describe(&self) -> String {
        "gated test store".into()
    }
}

/// PUBACK for a message stored for a persistent session is sent only once the store says the
/// write is durable; a message that stores nothing (no persistent subscriber) is not held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puback_waits_for_the_store_commit() {
    let gated = Arc::new(GatedStore::default());
    gated.open_gate();
    let server = TestServer::start_with_store(Config::default(), Arc::new(GatedHandle(gated.clone()))).await;
    subscribed_offline(&server, ProtocolVersion::V3_1_1, "durable", "d/#", QoS::AtLeastOnce).await;
    gated.open.store(false, Ordering::SeqCst);
    let (mut publisher, _) = RawClient::connect(server.addr, ProtocolVersion::V3_1_1, "pub", true).await;
    publisher.publish_and_ack("other/topic", b"not stored", QoS::AtLeastOnce, false, 1).await;
    publisher.send(publish("d/t", b"stored", QoS::AtLeastOnce, false, Some(2))).await;
    publisher.expect_nothing(QUIET).await;
    gated.open_gate();
    assert_eq!(publisher.recv().await, puback(2), "PUBACK once the write is durable");
    server.stop().await;
}

/// A store that fails its commit: the message is not acknowledged and a 5.0 client is told
/// why (DISCONNECT 0x80).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_commit_closes_without_acknowledging() {
    let gated = Arc::new(GatedStore::default());
    gated.open_gate();
    let server = TestServer::start_with_store(Config::default(), Arc::new(GatedHandle(gated.clone()))).await;
    subscribed_offline(&server, ProtocolVersion::V5, "durable", "d/#", QoS::AtLeastOnce).await;
    let (mut publisher, _) = RawClient::connect(server.addr, ProtocolVersion::V5, "pub", true).await;
    gated.fail.store(true, Ordering::SeqCst);
    publisher.send(publish("d/t", b"stored", QoS::AtLeastOnce, false, Some(2))).await;
    let seen = publisher.expect_closed().await;
    assert!(!seen.iter().any(|p| matches!(p, Packet::PubAck(_))), "no PUBACK: {seen:?}");
    assert!(
        seen.iter().any(|p| matches!(p, Packet::Disconnect(d) if d.reason_code == 0x80)),
        "DISCONNECT 0x80: {seen:?}"
    );
    server.stop().await;
}

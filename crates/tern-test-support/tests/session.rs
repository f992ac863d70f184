//! Sessions across connections ([MQTT-3.1.2-4] to [MQTT-3.1.2-6], [MQTT-4.4]): what a
//! persistent session keeps while the client is away, what clean session discards, and how
//! unacknowledged messages are sent again.

use std::time::Duration;

use tern_codec::{Packet, ProtocolVersion, Publish, QoS};
use tern_server::Config;
use tern_test_support::*;

const QUIET: Duration = Duration::from_millis(300);

// [MQTT-3.1.2-4], [MQTT-3.1.2-5]: a persistent session keeps its subscriptions and queues
// QoS 1 and QoS 2 messages (not QoS 0) while the client is away; they arrive on reconnect.
async fn persistent_session_keeps_subscriptions_and_queues_qos1_qos2(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut subscriber, _) = RawClient::connect(server.addr, version, "persist-sub", false).await;
    subscriber.subscribe(1, &[("persist/t", QoS::ExactlyOnce)]).await;
    subscriber.disconnect().await;

    let (mut publisher, _) = RawClient::connect(server.addr, version, "persist-pub", true).await;
    publisher.publish_and_ack("persist/t", b"q1", QoS::AtLeastOnce, false, 1).await;
    publisher.publish_and_ack("persist/t", b"q0", QoS::AtMostOnce, false, 2).await;
    publisher.publish_and_ack("persist/t", b"q2", QoS::ExactlyOnce, false, 3).await;

    let (mut subscriber, connack) = RawClient::connect(server.addr, version, "persist-sub", false).await;
    assert_eq!(connack.session_present, version == ProtocolVersion::V3_1_1);
    let first = subscriber.recv_acked().await;
    assert_eq!((first.payload.as_ref(), first.qos), (&b"q1"[..], QoS::AtLeastOnce));
    let second = subscriber.recv_acked().await;
    assert_eq!((second.payload.as_ref(), second.qos), (&b"q2"[..], QoS::ExactlyOnce));
    subscriber.expect_nothing(QUIET).await;

    // The subscription itself survived: live messages flow without subscribing again.
    publisher.publish_and_ack("persist/t", b"live", QoS::AtLeastOnce, false, 4).await;
    assert_eq!(subscriber.recv_acked().await.payload.as_ref(), b"live");
}

// [MQTT-3.1.2-6]: clean session 1 discards the previous session: no queued messages, no
// subscriptions.
async fn clean_session_discards_previous_session(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut subscriber, _) = RawClient::connect(server.addr, version, "discard-sub", false).await;
    subscriber.subscribe(1, &[("discard/t", QoS::AtLeastOnce)]).await;
    subscriber.disconnect().await;
    let (mut publisher, _) = RawClient::connect(server.addr, version, "discard-pub", true).await;
    publisher.publish_and_ack("discard/t", b"queued", QoS::AtLeastOnce, false, 1).await;

    let (mut subscriber, connack) = RawClient::connect(server.addr, version, "discard-sub", true).await;
    assert!(!connack.session_present);
    subscriber.expect_nothing(QUIET).await;
    publisher.publish_and_ack("discard/t", b"live", QoS::AtLeastOnce, false, 2).await;
    subscriber.expect_nothing(QUIET).await;
}

/// Reads `count` PUBLISHes without acknowledging them.
async fn recv_unacked(client: &mut RawClient, count: usize) -> Vec<Publish> {
    let mut received = Vec::new();
    for _ in 0..count {
        received.push(client.expect_publish().await);
    }
    received
}

// [MQTT-4.4.0-1]: unacknowledged QoS 1 and QoS 2 messages are sent again on reconnect with a
// persistent session, with DUP 1, the same packet ids and in the original order.
async fn unacknowledged_messages_resent_with_dup_same_ids_in_order(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut subscriber, _) = RawClient::connect(server.addr, version, "resend-sub", false).await;
    subscriber.subscribe(1, &[("resend/t", QoS::ExactlyOnce)]).await;
    let (mut publisher, _) = RawClient::connect(server.addr, version, "resend-pub", true).await;
    let sent =
        [(&b"a"[..], QoS::AtLeastOnce), (b"b", QoS::ExactlyOnce), (b"c", QoS::AtLeastOnce), (b"d", QoS::ExactlyOnce)];
    for (i, (payload, qos)) in sent.iter().enumerate() {
        publisher.publish_and_ack("resend/t", payload, *qos, false, i as u16 + 1).await;
    }
    let first = recv_unacked(&mut subscriber, sent.len()).await;
    for (publish, (payload, qos)) in first.iter().zip(&sent) {
        assert_eq!((publish.payload.as_ref(), publish.qos, publish.dup), (*payload, *qos, false));
    }
    drop(subscriber);

    let (mut subscriber, _) = RawClient::connect(server.addr, version, "resend-sub", false).await;
    let again = recv_unacked(&mut subscriber, sent.len()).await;
    for (original, resent) in first.iter().zip(&again) {
        assert!(resent.dup, "resent without DUP: {resent:?}");
        assert_eq!(resent.packet_id, original.packet_id, "packet id changed");
        assert_eq!(
            (resent.payload.as_ref(), resent.qos),
            (original.payload.as_ref(), original.qos),
            "order or content changed"
        );
    }
    for publish in &again {
        subscriber.ack(publish).await;
    }
    subscriber.expect_nothing(QUIET).await;
}

// [MQTT-4.4.0-1], [MQTT-4.3.3-1]: for a QoS 2 message whose PUBREC was sent before the
// connection broke, the PUBREL is sent again on reconnect, not the PUBLISH.
async fn pubrel_resent_after_reconnect(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut subscriber, _) = RawClient::connect(server.addr, version, "rel-sub", false).await;
    subscriber.subscribe(1, &[("rel/t", QoS::ExactlyOnce)]).await;
    let (mut publisher, _) = RawClient::connect(server.addr, version, "rel-pub", true).await;
    publisher.publish_and_ack("rel/t", b"two", QoS::ExactlyOnce, false, 1).await;
    let publish = subscriber.expect_publish().await;
    let id = publish.packet_id.expect("QoS 2 has a packet id").get();
    subscriber.send(pubrec(id)).await;
    assert_eq!(subscriber.recv().await, pubrel(id));
    drop(subscriber);

    let (mut subscriber, _) = RawClient::connect(server.addr, version, "rel-sub", false).await;
    assert_eq!(subscriber.recv().await, pubrel(id));
    subscriber.send(pubcomp(id)).await;
    subscriber.expect_nothing(QUIET).await;
}

// A persistent session's queue is bounded by the stored budget (the in-memory window is
// smaller still): with max_stored_messages_per_session = 5 an offline session keeps the
// first 5 QoS 1 messages; newer ones are refused while it is full.
async fn offline_queue_limit_keeps_first_messages(version: ProtocolVersion) {
    let mut config = Config::default();
    config.limits.max_queued_messages = 2;
    config.limits.max_stored_messages_per_session = 5;
    let server = TestServer::start_with(config).await;
    let (mut subscriber, _) = RawClient::connect(server.addr, version, "qlimit-sub", false).await;
    subscriber.subscribe(1, &[("qlimit/t", QoS::AtLeastOnce)]).await;
    subscriber.disconnect().await;
    let (mut publisher, _) = RawClient::connect(server.addr, version, "qlimit-pub", true).await;
    for i in 0..8u16 {
        publisher.publish_and_ack("qlimit/t", i.to_string().as_bytes(), QoS::AtLeastOnce, false, i + 1).await;
    }
    let (mut subscriber, _) = RawClient::connect(server.addr, version, "qlimit-sub", false).await;
    for i in 0..5u16 {
        let publish = subscriber.recv_acked().await;
        assert_eq!(publish.payload.as_ref(), i.to_string().as_bytes(), "queued message {i}");
    }
    subscriber.expect_nothing(QUIET).await;
}

// A resumed session gets the messages queued while it was away before new live ones
// ([MQTT-4.6.0-6]).
async fn queued_messages_arrive_before_live_ones(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut subscriber, _) = RawClient::connect(server.addr, version, "qorder-sub", false).await;
    subscriber.subscribe(1, &[("qorder/t", QoS::AtLeastOnce)]).await;
    subscriber.disconnect().await;
    let (mut publisher, _) = RawClient::connect(server.addr, version, "qorder-pub", true).await;
    for i in 0..3u16 {
        publisher.publish_and_ack("qorder/t", i.to_string().as_bytes(), QoS::AtLeastOnce, false, i + 1).await;
    }
    let (mut subscriber, _) = RawClient::connect(server.addr, version, "qorder-sub", false).await;
    publisher.publish_and_ack("qorder/t", b"3", QoS::AtLeastOnce, false, 4).await;
    for i in 0..4u16 {
        assert_eq!(subscriber.recv_acked().await.payload.as_ref(), i.to_string().as_bytes());
    }
    subscriber.send(Packet::PingReq).await;
    assert_eq!(subscriber.recv().await, Packet::PingResp);
}

v3_tests!(
    persistent_session_keeps_subscriptions_and_queues_qos1_qos2,
    clean_session_discards_previous_session,
    unacknowledged_messages_resent_with_dup_same_ids_in_order,
    pubrel_resent_after_reconnect,
    offline_queue_limit_keeps_first_messages,
    queued_messages_arrive_before_live_ones,
);

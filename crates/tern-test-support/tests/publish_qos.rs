//! PUBLISH and the QoS flows ([MQTT-3.3] to [MQTT-3.7], [MQTT-4.3]): delivery at each QoS,
//! exactly-once, the delivered QoS, overlapping subscriptions, ordering and payload integrity.

use std::time::Duration;

use tern_codec::{Packet, ProtocolVersion, QoS};
use tern_test_support::*;

const QUIET: Duration = Duration::from_millis(300);
const ALL_QOS: [QoS; 3] = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];

async fn qos0_delivered(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut subscriber, _) = RawClient::connect(server.addr, version, "q0-sub", true).await;
    subscriber.subscribe(1, &[("q0/t", QoS::AtMostOnce)]).await;
    let (mut publisher, _) = RawClient::connect(server.addr, version, "q0-pub", true).await;
    publisher.publish_and_ack("q0/t", b"zero", QoS::AtMostOnce, false, 1).await;
    let publish = subscriber.expect_publish().await;
    assert_eq!((publish.topic.as_str(), publish.payload.as_ref()), ("q0/t", &b"zero"[..]));
    assert_eq!((publish.qos, publish.packet_id, publish.dup, publish.retain), (QoS::AtMostOnce, None, false, false));
}

// [MQTT-4.3.2]: PUBACK with the publisher's id; the subscriber's copy has its own packet id and
// is not sent again once acknowledged.
async fn qos1_flow(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut subscriber, _) = RawClient::connect(server.addr, version, "q1-sub", true).await;
    subscriber.subscribe(1, &[("q1/t", QoS::AtLeastOnce)]).await;
    let (mut publisher, _) = RawClient::connect(server.addr, version, "q1-pub", true).await;
    publisher.send(publish("q1/t", b"one", QoS::AtLeastOnce, false, Some(1234))).await;
    assert_eq!(publisher.recv().await, puback(1234));
    let publish = subscriber.expect_publish().await;
    assert_eq!((publish.qos, publish.dup, publish.payload.as_ref()), (QoS::AtLeastOnce, false, &b"one"[..]));
    let id = publish.packet_id.expect("QoS 1 PUBLISH has a packet id").get();
    subscriber.send(puback(id)).await;
    subscriber.expect_nothing(QUIET).await;
}

// [MQTT-4.3.3]: both directions of the QoS 2 flow.
async fn qos2_flow_both_directions(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut subscriber, _) = RawClient::connect(server.addr, version, "q2-sub", true).await;
    subscriber.subscribe(1, &[("q2/t", QoS::ExactlyOnce)]).await;
    let (mut publisher, _) = RawClient::connect(server.addr, version, "q2-pub", true).await;
    publisher.send(publish("q2/t", b"two", QoS::ExactlyOnce, false, Some(5))).await;
    assert_eq!(publisher.recv().await, pubrec(5));
    publisher.send(pubrel(5)).await;
    assert_eq!(publisher.recv().await, pubcomp(5));

    let publish = subscriber.expect_publish().await;
    assert_eq!((publish.qos, publish.dup, publish.payload.as_ref()), (QoS::ExactlyOnce, false, &b"two"[..]));
    let id = publish.packet_id.expect("QoS 2 PUBLISH has a packet id").get();
    subscriber.send(pubrec(id)).await;
    assert_eq!(subscriber.recv().await, pubrel(id));
    subscriber.send(pubcomp(id)).await;
    subscriber.expect_nothing(QUIET).await;
}

// [MQTT-4.3.3-2]: a QoS 2 PUBLISH sent again (DUP) before PUBREL is acknowledged again but
// delivered once.
async fn qos2_duplicate_before_pubrel_delivered_once(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut subscriber, _) = RawClient::connect(server.addr, version, "q2dup-sub", true).await;
    subscriber.subscribe(1, &[("q2dup/t", QoS::AtLeastOnce)]).await;
    let (mut publisher, _) = RawClient::connect(server.addr, version, "q2dup-pub", true).await;
    let first = publish("q2dup/t", b"once", QoS::ExactlyOnce, false, Some(7));
    let mut again = first.clone();
    if let Packet::Publish(publish) = &mut again {
        publish.dup = true;
    }
    publisher.send(first).await;
    assert_eq!(publisher.recv().await, pubrec(7));
    publisher.send(again).await;
    assert_eq!(publisher.recv().await, pubrec(7));
    publisher.send(pubrel(7)).await;
    assert_eq!(publisher.recv().await, pubcomp(7));

    let publish = subscriber.recv_acked().await;
    assert_eq!(publish.payload.as_ref(), b"once");
    subscriber.expect_nothing(QUIET).await;
}

// [MQTT-4.3.3-2]: PUBREL for an id the broker does not know still gets PUBCOMP.
async fn pubrel_unknown_packet_id_gets_pubcomp(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut client, _) = RawClient::connect(server.addr, version, "pubrel-unknown", true).await;
    client.send(pubrel(42)).await;
    assert_eq!(client.recv().await, pubcomp(42));
}

// [MQTT-3.8.4-6]: the delivered QoS is the minimum of the published and the granted QoS.
async fn delivered_qos_is_min_of_published_and_granted(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut publisher, _) = RawClient::connect(server.addr, version, "qmin-pub", true).await;
    for granted in ALL_QOS {
        let topic = format!("qmin/granted{}", granted as u8);
        let (mut subscriber, _) =
            RawClient::connect(server.addr, version, &format!("qmin-sub{}", granted as u8), true).await;
        subscriber.subscribe(1, &[(&topic, granted)]).await;
        for (i, published) in ALL_QOS.into_iter().enumerate() {
            publisher.publish_and_ack(&topic, b"m", published, false, 10 + i as u16).await;
            let publish = subscriber.recv_acked().await;
            assert_eq!(publish.qos, published.min(granted), "published {published:?}, granted {granted:?}");
        }
        subscriber.expect_nothing(Duration::from_millis(100)).await;
    }
}

// [MQTT-3.3.5-1]: overlapping subscriptions give one copy, at the highest granted QoS.
async fn overlapping_subscriptions_deliver_one_copy_at_highest_qos(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut subscriber, _) = RawClient::connect(server.addr, version, "overlap-sub", true).await;
    subscriber
        .subscribe(
            1,
            &[("overlap/#", QoS::ExactlyOnce), ("overlap/+", QoS::AtLeastOnce), ("overlap/b", QoS::AtMostOnce)],
        )
        .await;
    let (mut publisher, _) = RawClient::connect(server.addr, version, "overlap-pub", true).await;
    publisher.publish_and_ack("overlap/b", b"one copy", QoS::ExactlyOnce, false, 1).await;
    let publish = subscriber.recv_acked().await;
    assert_eq!((publish.qos, publish.payload.as_ref()), (QoS::ExactlyOnce, &b"one copy"[..]));
    subscriber.expect_nothing(QUIET).await;
}

/// Publishes `count` messages numbered from 0 on `topic` without waiting in between, then
/// collects the publisher's acknowledgements.
async fn publish_numbered(publisher: &mut RawClient, topic: &str, count: u16, qos: QoS) {
    for i in 0..count {
        let id = (qos != QoS::AtMostOnce).then_some(i + 1);
        publisher.send(publish(topic, i.to_string().as_bytes(), qos, false, id)).await;
    }
    if qos == QoS::AtLeastOnce {
        for i in 0..count {
            assert_eq!(publisher.recv().await, puback(i + 1));
        }
    }
}

// [MQTT-4.6.0-6]: messages on one topic arrive in the order published, at QoS 0 and QoS 1.
async fn hundred_messages_arrive_in_order(version: ProtocolVersion) {
    let server = TestServer::start().await;
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
        let topic = format!("order/q{}", qos as u8);
        let (mut subscriber, _) =
            RawClient::connect(server.addr, version, &format!("order-sub{}", qos as u8), true).await;
        subscriber.subscribe(1, &[(&topic, qos)]).await;
        let (mut publisher, _) =
            RawClient::connect(server.addr, version, &format!("order-pub{}", qos as u8), true).await;
        publish_numbered(&mut publisher, &topic, 100, qos).await;
        for i in 0..100u16 {
            let publish = subscriber.recv_acked().await;
            assert_eq!(publish.payload.as_ref(), i.to_string().as_bytes(), "QoS {qos:?}: message {i} out of order");
            assert_eq!(publish.qos, qos);
        }
        subscriber.expect_nothing(Duration::from_millis(100)).await;
    }
}

// The in-flight window (limits.max_inflight_messages, 32 by default) holds back QoS 1
// messages beyond it until PUBACKs arrive; a slow subscriber still gets all, in order.
async fn slow_acker_gets_everything_in_order_through_inflight_window(version: ProtocolVersion) {
    const WINDOW: usize = 32;
    let server = TestServer::start().await;
    let (mut subscriber, _) = RawClient::connect(server.addr, version, "window-sub", true).await;
    subscriber.subscribe(1, &[("window/t", QoS::AtLeastOnce)]).await;
    let (mut publisher, _) = RawClient::connect(server.addr, version, "window-pub", true).await;
    // Every PUBACK to the publisher means the message is queued for the subscriber.
    publish_numbered(&mut publisher, "window/t", 100, QoS::AtLeastOnce).await;

    let mut unacked = std::collections::VecDeque::new();
    for _ in 0..WINDOW {
        unacked.push_back(subscriber.expect_publish().await);
    }
    subscriber.expect_nothing(QUIET).await;
    let mut received = Vec::new();
    while received.len() < 100 {
        let oldest = unacked.pop_front().expect("a message is in flight");
        subscriber.ack(&oldest).await;
        received.push(oldest);
        if received.len() + unacked.len() < 100 {
            unacked.push_back(subscriber.expect_publish().await);
        }
        assert!(unacked.len() <= WINDOW);
    }
    for (i, publish) in received.iter().enumerate() {
        assert_eq!(publish.payload.as_ref(), i.to_string().as_bytes(), "message {i} out of order");
    }
    subscriber.expect_nothing(Duration::from_millis(100)).await;
}

// [MQTT-3.3.3]: the payload arrives byte for byte: binary, empty and 100 KB.
async fn payload_integrity(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut subscriber, _) = RawClient::connect(server.addr, version, "payload-sub", true).await;
    subscriber.subscribe(1, &[("payload/t", QoS::AtLeastOnce)]).await;
    let (mut publisher, _) = RawClient::connect(server.addr, version, "payload-pub", true).await;
    let binary: Vec<u8> = (0..=255u8).rev().chain(0..=255u8).collect();
    let large: Vec<u8> = (0..100 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    for (i, payload) in [binary, Vec::new(), large].into_iter().enumerate() {
        publisher.publish_and_ack("payload/t", &payload, QoS::AtLeastOnce, false, i as u16 + 1).await;
        let publish = subscriber.recv_acked().await;
        assert_eq!(publish.payload.len(), payload.len(), "payload {i}: length");
        assert!(publish.payload.as_ref() == payload.as_slice(), "payload {i}: content differs");
    }
}

v3_tests!(
    qos0_delivered,
    qos1_flow,
    qos2_flow_both_directions,
    qos2_duplicate_before_pubrel_delivered_once,
    pubrel_unknown_packet_id_gets_pubcomp,
    delivered_qos_is_min_of_published_and_granted,
    overlapping_subscriptions_deliver_one_copy_at_highest_qos,
    hundred_messages_arrive_in_order,
    slow_acker_gets_everything_in_order_through_inflight_window,
    payload_integrity,
);

//! Flow control (section 4.9, [MQTT-3.3.4-7], [MQTT-3.3.4-8]) and the client's Maximum Packet
//! Size ([MQTT-3.1.2-24], [MQTT-3.1.2-25]): what the broker sends a 5.0 client that limits
//! it, and what it does to a client that exceeds the broker's own Receive Maximum.

use std::time::Duration;

use tern_codec::{encoded_len, Packet, Properties, ProtocolVersion, Publish, QoS};
use tern_server::Config;
use tern_test_support::*;

const QUIET: Duration = Duration::from_millis(400);

async fn connected(server: &TestServer, client_id: &str) -> RawClient {
    RawClient::connect_v5(server.addr, client_id, true, Properties::default()).await.0
}

/// A subscriber whose CONNECT carries `properties`, subscribed to `filter` at `qos`.
async fn limited_subscriber(
    server: &TestServer,
    client_id: &str,
    properties: Properties,
    filter: &str,
    qos: QoS,
) -> RawClient {
    let (mut subscriber, _) = RawClient::connect_v5(server.addr, client_id, true, properties).await;
    subscriber.subscribe(1, &[(filter, qos)]).await;
    subscriber
}

async fn publish_numbered(publisher: &mut RawClient, topic: &str, qos: QoS, count: u8) {
    for n in 1..=count {
        let id = (qos != QoS::AtMostOnce).then_some(u16::from(n));
        publisher.send(publish_v5(topic, &[n], qos, false, id, Properties::default())).await;
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => assert_eq!(publisher.expect_puback().await.packet_id.get(), u16::from(n)),
            QoS::ExactlyOnce => {
                assert_eq!(publisher.expect_pubrec().await.packet_id.get(), u16::from(n));
                publisher.send(pubrel(u16::from(n))).await;
                assert_eq!(publisher.expect_pubcomp().await.packet_id.get(), u16::from(n));
            }
        }
    }
}

// [MQTT-3.3.4-7]: a subscriber with Receive Maximum 2 has at most 2 unacknowledged QoS 1
// messages at a time: of 5, it gets 2, then one more for each PUBACK, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_maximum_limits_unacked_qos1_v5() {
    let server = TestServer::start().await;
    let two = Properties { receive_maximum: Some(2), ..Default::default() };
    let mut subscriber = limited_subscriber(&server, "rm1-sub", two, "rm1/t", QoS::AtLeastOnce).await;
    let mut publisher = connected(&server, "rm1-pub").await;
    publish_numbered(&mut publisher, "rm1/t", QoS::AtLeastOnce, 5).await;

    let mut in_flight: Vec<Publish> = vec![subscriber.expect_publish().await, subscriber.expect_publish().await];
    subscriber.expect_nothing(QUIET).await;
    let mut received = Vec::new();
    while !in_flight.is_empty() {
        let oldest = in_flight.remove(0);
        subscriber.ack(&oldest).await;
        received.push(oldest.payload[0]);
        if received.len() + in_flight.len() < 5 {
            in_flight.push(subscriber.expect_publish().await);
            subscriber.expect_nothing(Duration::from_millis(150)).await;
        }
    }
    assert_eq!(received, [1, 2, 3, 4, 5]);
    subscriber.expect_nothing(QUIET).await;
}

// [MQTT-3.3.4-8]: a QoS 2 message counts against Receive Maximum until PUBCOMP, not PUBREC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_maximum_counts_qos2_until_pubcomp_v5() {
    let server = TestServer::start().await;
    let one = Properties { receive_maximum: Some(1), ..Default::default() };
    let mut subscriber = limited_subscriber(&server, "rm2-sub", one, "rm2/t", QoS::ExactlyOnce).await;
    let mut publisher = connected(&server, "rm2-pub").await;
    publish_numbered(&mut publisher, "rm2/t", QoS::ExactlyOnce, 2).await;

    let first = subscriber.expect_publish().await;
    let id = first.packet_id.expect("QoS 2 packet id").get();
    subscriber.expect_nothing(QUIET).await;
    subscriber.send(pubrec(id)).await;
    assert_eq!(subscriber.recv().await, pubrel(id));
    subscriber.expect_nothing(QUIET).await;
    subscriber.send(pubcomp(id)).await;
    let second = subscriber.recv_acked().await;
    assert_eq!((first.payload.as_ref(), second.payload.as_ref()), (&[1u8][..], &[2u8][..]));
}

// Section 4.9: Receive Maximum limits only QoS 1 and 2; QoS 0 messages still flow while the
// window is full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_maximum_does_not_hold_back_qos0_v5() {
    let server = TestServer::start().await;
    let one = Properties { receive_maximum: Some(1), ..Default::default() };
    let mut subscriber = limited_subscriber(&server, "rm0-sub", one, "rm0/#", QoS::AtLeastOnce).await;
    let mut publisher = connected(&server, "rm0-pub").await;
    publish_numbered(&mut publisher, "rm0/q1", QoS::AtLeastOnce, 2).await;
    let held = subscriber.expect_publish().await;
    assert_eq!(held.payload.as_ref(), [1]);
    publish_numbered(&mut publisher, "rm0/q0", QoS::AtMostOnce, 3).await;
    for n in 1..=3u8 {
        let publish = subscriber.expect_publish().await;
        assert_eq!(
            (publish.topic.as_str(), publish.qos, publish.payload.as_ref()),
            ("rm0/q0", QoS::AtMostOnce, &[n][..])
        );
    }
    subscriber.ack(&held).await;
    assert_eq!(subscriber.recv_acked().await.payload.as_ref(), [2]);
}

// limits.max_inflight_messages caps the window even when the client's Receive Maximum is
// larger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_inflight_messages_caps_large_receive_maximum_v5() {
    let mut config = Config::default();
    config.limits.max_inflight_messages = 3;
    let server = TestServer::start_with(config).await;
    let many = Properties { receive_maximum: Some(100), ..Default::default() };
    let mut subscriber = limited_subscriber(&server, "cap-sub", many, "cap/t", QoS::AtLeastOnce).await;
    let mut publisher = connected(&server, "cap-pub").await;
    publish_numbered(&mut publisher, "cap/t", QoS::AtLeastOnce, 5).await;
    let mut first = Vec::new();
    for _ in 0..3 {
        first.push(subscriber.expect_publish().await);
    }
    subscriber.expect_nothing(QUIET).await;
    subscriber.ack(&first[0]).await;
    assert_eq!(subscriber.expect_publish().await.payload.as_ref(), [4]);
}

// Section 3.3.4 (reason 0x93, Receive Maximum exceeded): a client with more unreleased QoS 2
// PUBLISHes than the broker's Receive Maximum (2 here) is disconnected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_exceeding_receive_maximum_disconnects_with_0x93_v5() {
    let mut config = Config::default();
    config.limits.receive_maximum = 2;
    let server = TestServer::start_with(config).await;
    let (mut client, connack) = RawClient::connect_v5(server.addr, "rm-exceed", true, Properties::default()).await;
    assert_eq!(connack.properties.receive_maximum, Some(2));
    for id in 1..=2 {
        client.send(publish_v5("rm-exceed/t", b"x", QoS::ExactlyOnce, false, Some(id), Properties::default())).await;
        assert_eq!(client.expect_pubrec().await.packet_id.get(), id);
    }
    client.send(publish_v5("rm-exceed/t", b"x", QoS::ExactlyOnce, false, Some(3), Properties::default())).await;
    client.expect_disconnect(0x93).await;
}

// A client within the broker's Receive Maximum that releases its QoS 2 messages can go on
// publishing as long as it likes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_releasing_qos2_stays_within_receive_maximum_v5() {
    let mut config = Config::default();
    config.limits.receive_maximum = 2;
    let server = TestServer::start_with(config).await;
    let mut client = connected(&server, "rm-within").await;
    publish_numbered(&mut client, "rm-within/t", QoS::ExactlyOnce, 6).await;
    client.send(Packet::PingReq).await;
    assert_eq!(client.recv().await, Packet::PingResp);
}

// [MQTT-3.1.2-24], [MQTT-3.1.2-25]: a message whose PUBLISH would exceed a subscriber's Maximum
// Packet Size is not sent to it (dropped for that subscriber only); another subscriber gets it,
// and later small messages still reach the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_over_client_maximum_packet_size_dropped_for_that_client_v5() {
    let server = TestServer::start().await;
    let small = Properties { maximum_packet_size: Some(100), ..Default::default() };
    let mut limited = limited_subscriber(&server, "mps-limited", small, "mps/t", QoS::AtLeastOnce).await;
    let mut unlimited = limited_subscriber(&server, "mps-free", Properties::default(), "mps/t", QoS::AtLeastOnce).await;
    let mut publisher = connected(&server, "mps-pub").await;

    let big = vec![b'b'; 200];
    let as_delivered = publish_v5("mps/t", &big, QoS::AtLeastOnce, false, Some(1), Properties::default());
    assert!(encoded_len(&as_delivered, ProtocolVersion::V5).expect("encodes") > 100);
    publisher.publish_qos1_v5("mps/t", &big, 1, Properties::default()).await;
    assert_eq!(unlimited.recv_acked().await.payload.len(), 200);
    limited.expect_nothing(QUIET).await;

    for (id, payload) in [(2, &b"small"[..]), (3, &[b's'; 80][..])] {
        publisher.publish_qos1_v5("mps/t", payload, id, Properties::default()).await;
        let publish = limited.recv_acked().await;
        assert_eq!(publish.payload.as_ref(), payload);
        let packet = Packet::Publish(publish);
        assert!(encoded_len(&packet, ProtocolVersion::V5).expect("encodes") <= 100);
        assert_eq!(unlimited.recv_acked().await.payload.as_ref(), payload);
    }
}

// [MQTT-3.1.2-25]: the size counted is the whole packet as it would be sent, properties
// included: a small payload with large user properties is dropped too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maximum_packet_size_counts_properties_v5() {
    let server = TestServer::start().await;
    let small = Properties { maximum_packet_size: Some(100), ..Default::default() };
    let mut limited = limited_subscriber(&server, "mpsp-limited", small, "mpsp/t", QoS::AtMostOnce).await;
    let mut publisher = connected(&server, "mpsp-pub").await;
    let heavy = Properties { user_properties: vec![("k".to_string(), "v".repeat(120))], ..Default::default() };
    publisher.send(publish_v5("mpsp/t", b"tiny", QoS::AtMostOnce, false, None, heavy)).await;
    publisher.send(publish_v5("mpsp/t", b"plain", QoS::AtMostOnce, false, None, Properties::default())).await;
    assert_eq!(limited.expect_publish().await.payload.as_ref(), b"plain");
}

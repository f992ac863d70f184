//! Malformed and forbidden input ([MQTT-1.5.3], [MQTT-2.2], [MQTT-2.3.1], [MQTT-3.3],
//! [MQTT-4.7.3], [MQTT-4.8]): the offending connection is closed without an answer, and no
//! other client notices.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tern_codec::{Packet, ProtocolVersion, QoS};
use tern_test_support::*;

/// Connects `client_id`, sends `bytes`, and asserts the broker closes the connection without
/// sending anything first.
async fn assert_closes(server: &TestServer, version: ProtocolVersion, client_id: &str, what: &str, bytes: &[u8]) {
    let (mut client, _) = RawClient::connect(server.addr, version, client_id, true).await;
    client.send_raw(bytes).await;
    let before = client.expect_closed().await;
    assert!(before.is_empty(), "{what}: broker answered {before:?} before closing");
}

/// A subscriber and a publisher that prove the broker still routes messages.
async fn assert_round_trip(server: &TestServer, version: ProtocolVersion, name: &str) {
    let topic = format!("{name}/healthy");
    let (mut subscriber, _) = RawClient::connect(server.addr, version, &format!("{name}-sub"), true).await;
    subscriber.subscribe(1, &[(&topic, QoS::AtLeastOnce)]).await;
    let (mut publisher, _) = RawClient::connect(server.addr, version, &format!("{name}-pub"), true).await;
    publisher.publish_and_ack(&topic, b"alive", QoS::AtLeastOnce, false, 1).await;
    assert_eq!(subscriber.recv_acked().await.payload.as_ref(), b"alive");
}

// One client's garbage closes only that client; a healthy client on the same broker keeps
// publishing and receiving.
async fn malformed_input_never_affects_other_clients(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut healthy, _) = RawClient::connect(server.addr, version, "isolated-healthy", true).await;
    healthy.subscribe(1, &[("isolated/t", QoS::AtLeastOnce)]).await;
    assert_closes(&server, version, "isolated-bad", "garbage", &[0x00, 0x00]).await;
    healthy.publish_and_ack("isolated/t", b"fine", QoS::AtMostOnce, false, 1).await;
    assert_eq!(healthy.expect_publish().await.payload.as_ref(), b"fine");
}

// [MQTT-2.2], [MQTT-2.2.3]: reserved packet types, AUTH before 5.0 and a remaining length
// longer than four bytes are malformed.
async fn garbage_bytes_close_connection(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let garbage: [(&str, &[u8]); 4] = [
        ("reserved type 0", &[0x00, 0x00]),
        ("AUTH (type 15) on 3.x", &[0xF0, 0x00]),
        ("five-byte remaining length", &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
        ("PINGREQ with flags", &[0xC1, 0x00]),
    ];
    for (i, (what, bytes)) in garbage.into_iter().enumerate() {
        assert_closes(&server, version, &format!("garbage-{i}"), what, bytes).await;
        // The same bytes in place of CONNECT.
        let mut client = RawClient::open(server.addr, version).await;
        client.send_raw(bytes).await;
        let before = client.expect_closed().await;
        assert!(before.is_empty(), "{what} as first packet: broker answered {before:?}");
    }
}

// [MQTT-3.3.1-4]: PUBLISH with both QoS bits set is malformed.
async fn publish_qos3_closes(version: ProtocolVersion) {
    let server = TestServer::start().await;
    assert_closes(&server, version, "qos3", "QoS 3 PUBLISH", &raw_publish(0b0110, b"qos3/t", Some(1), b"x")).await;
}

// [MQTT-3.3.2-2]: a topic name must not contain wildcards.
async fn publish_wildcard_topic_closes(version: ProtocolVersion) {
    let server = TestServer::start().await;
    for (i, topic) in ["wild/+/t", "wild/#", "+", "#"].into_iter().enumerate() {
        let bytes = raw_publish(0, topic.as_bytes(), None, b"x");
        assert_closes(&server, version, &format!("wild-topic-{i}"), topic, &bytes).await;
    }
}

// [MQTT-4.7.3-1]: a topic name must be at least one character long.
async fn publish_empty_topic_closes(version: ProtocolVersion) {
    let server = TestServer::start().await;
    assert_closes(&server, version, "empty-topic-0", "empty topic QoS 0", &raw_publish(0, b"", None, b"x")).await;
    assert_closes(&server, version, "empty-topic-1", "empty topic QoS 1", &raw_publish(0b0010, b"", Some(1), b"x"))
        .await;
}

// [MQTT-1.5.3-1]: strings must be well-formed UTF-8 (no stray bytes, no UTF-16 surrogates).
async fn publish_invalid_utf8_topic_closes(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let topics: [&[u8]; 3] = [b"bad/\xFF", b"bad/\xC3", b"bad/\xED\xA0\x80"];
    for (i, topic) in topics.into_iter().enumerate() {
        let bytes = raw_publish(0, topic, None, b"x");
        assert_closes(&server, version, &format!("utf8-{i}"), &format!("topic {topic:?}"), &bytes).await;
    }
}

// [MQTT-1.5.3-2]: strings must not contain U+0000.
async fn publish_null_character_topic_closes(version: ProtocolVersion) {
    let server = TestServer::start().await;
    assert_closes(&server, version, "null-topic", "U+0000 in topic", &raw_publish(0, b"null/\0/t", None, b"x")).await;
}

// [MQTT-2.3.1-1]: packet id 0 is not a packet id.
async fn qos1_publish_with_packet_id_0_closes(version: ProtocolVersion) {
    let server = TestServer::start().await;
    assert_closes(&server, version, "pid0-q1", "QoS 1 id 0", &raw_publish(0b0010, b"pid0/t", Some(0), b"x")).await;
    assert_closes(&server, version, "pid0-q2", "QoS 2 id 0", &raw_publish(0b0100, b"pid0/t", Some(0), b"x")).await;
}

// Packets only a server sends (CONNACK, SUBACK, UNSUBACK, PINGRESP) close a client's
// connection.
async fn server_only_packets_from_client_close(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let packets: [(&str, &[u8]); 4] = [
        ("CONNACK", &[0x20, 0x02, 0x00, 0x00]),
        ("SUBACK", &[0x90, 0x03, 0x00, 0x01, 0x00]),
        ("UNSUBACK", &[0xB0, 0x02, 0x00, 0x01]),
        ("PINGRESP", &[0xD0, 0x00]),
    ];
    for (what, bytes) in packets {
        assert_closes(&server, version, &format!("server-only-{what}"), what, bytes).await;
    }
}

// A storm of 50 connections sending seeded random bytes (half after a valid CONNECT) leaves
// the broker up, and a healthy client still round-trips a message afterwards.
async fn random_bytes_storm_leaves_broker_healthy(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let addr = server.addr;
    let mut storm = tokio::task::JoinSet::new();
    for i in 0..50u64 {
        storm.spawn(async move {
            let mut rng = StdRng::seed_from_u64(0x7e57_0000 + i);
            let len = rng.gen_range(1..4096);
            let garbage: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let mut client = RawClient::open(addr, version).await;
            if i % 2 == 0 {
                client.send(Packet::Connect(Box::new(connect(version, &format!("storm-{i}"), true)))).await;
            }
            client.send_raw(&garbage).await;
            // Either outcome is fine: the broker may close at once or wait for more bytes.
            let _ = client.closed_within(Duration::from_millis(200)).await;
            drop(client);
        });
    }
    while let Some(result) = storm.join_next().await {
        result.expect("storm task");
    }
    assert_round_trip(&server, version, "after-storm").await;
}

v3_tests!(
    malformed_input_never_affects_other_clients,
    garbage_bytes_close_connection,
    publish_qos3_closes,
    publish_wildcard_topic_closes,
    publish_empty_topic_closes,
    publish_invalid_utf8_topic_closes,
    publish_null_character_topic_closes,
    qos1_publish_with_packet_id_0_closes,
    server_only_packets_from_client_close,
    random_bytes_storm_leaves_broker_healthy,
);

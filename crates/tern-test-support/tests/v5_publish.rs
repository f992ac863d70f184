//! 5.0 PUBLISH ([MQTT-3.3]): reason codes in the acknowledgements, the payload format
//! indicator, properties passed through untouched, and message expiry.

use std::time::Duration;

use bytes::Bytes;
use tern_codec::{Packet, Properties, ProtocolVersion, QoS};
use tern_test_support::*;

const QUIET: Duration = Duration::from_millis(300);

async fn connected(server: &TestServer, client_id: &str) -> RawClient {
    RawClient::connect_v5(server.addr, client_id, true, Properties::default()).await.0
}

/// Publishes at QoS 1 and QoS 2 on `topic` and checks PUBACK and PUBREC carry `code`; the QoS 2
/// flow is completed (PUBCOMP 0x00).
async fn assert_ack_codes(publisher: &mut RawClient, topic: &str, code: u8) {
    let ack = publisher.publish_qos1_v5(topic, b"q1", 1, Properties::default()).await;
    assert_eq!(ack.reason_code, code, "{ack:?}");
    publisher.send(publish_v5(topic, b"q2", QoS::ExactlyOnce, false, Some(2), Properties::default())).await;
    let rec = publisher.expect_pubrec().await;
    assert_eq!((rec.packet_id.get(), rec.reason_code), (2, code), "{rec:?}");
    publisher.send(pubrel(2)).await;
    let comp = publisher.expect_pubcomp().await;
    assert_eq!((comp.packet_id.get(), comp.reason_code), (2, 0x00), "{comp:?}");
}

// Sections 3.4.2.1 and 3.5.2.1: PUBACK and PUBREC say 0x10 (No matching subscribers) when
// nobody is subscribed, and 0x00 once somebody is; the QoS 2 flow completes either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_report_no_matching_subscribers_v5() {
    let server = TestServer::start().await;
    let mut publisher = connected(&server, "nomatch-pub").await;
    assert_ack_codes(&mut publisher, "nomatch/t", 0x10).await;
    let mut subscriber = connected(&server, "nomatch-sub").await;
    subscriber.subscribe(1, &[("nomatch/#", QoS::AtMostOnce)]).await;
    assert_ack_codes(&mut publisher, "nomatch/t", 0x00).await;
    assert_eq!(subscriber.expect_publish().await.payload.as_ref(), b"q1");
}

// Section 3.7.2.1: PUBREL for a packet id the broker does not know gets PUBCOMP 0x92 (Packet
// Identifier not found).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubrel_unknown_packet_id_gets_pubcomp_0x92_v5() {
    let server = TestServer::start().await;
    let mut client = connected(&server, "pubrel-unknown").await;
    client.send(pubrel(42)).await;
    let comp = client.expect_pubcomp().await;
    assert_eq!((comp.packet_id.get(), comp.reason_code), (42, 0x92), "{comp:?}");
}

// [MQTT-3.3.2-4], section 3.3.2.3.2: a payload declared UTF-8 (format indicator 1) that is not
// is refused with PUBACK 0x99 (Payload format invalid) and reaches nobody; a valid one is
// delivered with its format indicator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_payload_with_format_indicator_refused_v5() {
    let server = TestServer::start().await;
    let mut subscriber = connected(&server, "pfi-sub").await;
    subscriber.subscribe(1, &[("pfi/t", QoS::AtLeastOnce)]).await;
    let mut publisher = connected(&server, "pfi-pub").await;
    let utf8 = Properties { payload_format_indicator: Some(1), ..Default::default() };

    let ack = publisher.publish_qos1_v5("pfi/t", b"bad \xFF\xFE", 1, utf8.clone()).await;
    assert_eq!(ack.reason_code, 0x99, "{ack:?}");
    subscriber.expect_nothing(QUIET).await;

    let ack = publisher.publish_qos1_v5("pfi/t", "gr\u{fc}\u{df}e".as_bytes(), 2, utf8).await;
    assert_eq!(ack.reason_code, 0x00, "{ack:?}");
    let publish = subscriber.recv_acked().await;
    assert_eq!(publish.payload.as_ref(), "gr\u{fc}\u{df}e".as_bytes());
    assert_eq!(publish.properties.payload_format_indicator, Some(1));
}

// [MQTT-3.3.2-4], [MQTT-3.3.2-15] to [MQTT-3.3.2-20]: the payload format indicator, response
// topic, correlation data, user properties (in order, duplicate keys kept) and content type
// reach the subscriber unaltered; the message expiry interval is at most the one sent; the
// publisher's topic alias is not forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_properties_passed_through_unaltered_v5() {
    let server = TestServer::start().await;
    let mut subscriber = connected(&server, "props-sub").await;
    subscriber.subscribe(1, &[("props/t", QoS::AtLeastOnce)]).await;
    let mut publisher = connected(&server, "props-pub").await;
    let user_properties: Vec<(String, String)> = [("k", "1"), ("z", "last?"), ("k", "2"), ("a", ""), ("k", "1")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let sent = Properties {
        payload_format_indicator: Some(1),
        content_type: Some("application/json; charset=utf-8".to_string()),
        response_topic: Some("props/reply/\u{e9}".to_string()),
        correlation_data: Some(Bytes::from_static(b"\x00\x01corr\xFF")),
        user_properties: user_properties.clone(),
        message_expiry_interval: Some(300),
        topic_alias: Some(3),
        ..Default::default()
    };
    publisher.publish_qos1_v5("props/t", b"{}", 1, sent).await;
    let publish = subscriber.recv_acked().await;
    let p = &publish.properties;
    assert_eq!(publish.topic.as_str(), "props/t");
    assert_eq!(p.payload_format_indicator, Some(1));
    assert_eq!(p.content_type.as_deref(), Some("application/json; charset=utf-8"));
    assert_eq!(p.response_topic.as_deref(), Some("props/reply/\u{e9}"));
    assert_eq!(p.correlation_data.as_deref(), Some(&b"\x00\x01corr\xFF"[..]));
    assert_eq!(p.user_properties, user_properties);
    let expiry = p.message_expiry_interval.expect("message expiry interval dropped");
    assert!((290..=300).contains(&expiry), "message expiry {expiry}, sent 300");
    assert_eq!(p.topic_alias, None, "publisher's topic alias forwarded to a subscriber without aliases");
    assert!(p.subscription_identifiers.is_empty(), "{p:?}");
}

// A message without properties arrives without any: the broker adds none of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_without_properties_arrives_without_properties_v5() {
    let server = TestServer::start().await;
    let mut subscriber = connected(&server, "noprops-sub").await;
    subscriber.subscribe(1, &[("noprops/t", QoS::AtLeastOnce)]).await;
    let mut publisher = connected(&server, "noprops-pub").await;
    publisher.publish_qos1_v5("noprops/t", b"bare", 1, Properties::default()).await;
    let publish = subscriber.recv_acked().await;
    assert_eq!(publish.properties, Properties::default());
}

// [MQTT-3.3.2-5], [MQTT-3.3.2-6]: a message queued for an offline session is dropped once its
// expiry interval has passed; one still valid is delivered with the time it has left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_message_expires_v5() {
    let server = TestServer::start().await;
    let session = Properties { session_expiry_interval: Some(60), ..Default::default() };
    let (mut subscriber, _) = RawClient::connect_v5(server.addr, "mexp-sub", false, session.clone()).await;
    subscriber.subscribe(1, &[("mexp/t", QoS::AtLeastOnce)]).await;
    subscriber.disconnect().await;

    let mut publisher = connected(&server, "mexp-pub").await;
    let short = Properties { message_expiry_interval: Some(1), ..Default::default() };
    let long = Properties { message_expiry_interval: Some(60), ..Default::default() };
    publisher.publish_qos1_v5("mexp/t", b"short", 1, short).await;
    publisher.publish_qos1_v5("mexp/t", b"long", 2, long).await;
    // Time passing is the behaviour under test.
    publisher.expect_nothing(Duration::from_millis(2100)).await;

    let (mut subscriber, connack) = RawClient::connect_v5(server.addr, "mexp-sub", false, session).await;
    assert!(connack.session_present);
    let publish = subscriber.recv_acked().await;
    assert_eq!(publish.payload.as_ref(), b"long", "expired message delivered");
    let left = publish.properties.message_expiry_interval.expect("message expiry interval dropped");
    assert!((50..=58).contains(&left), "{left} s left after waiting 2 s of 60");
    subscriber.expect_nothing(QUIET).await;
}

// [MQTT-3.3.2-5]: an expired retained message is not sent to a new subscriber; an unexpired
// one is, with its remaining expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_message_expires_v5() {
    let server = TestServer::start().await;
    let mut publisher = connected(&server, "rexp-pub").await;
    for (topic, seconds) in [("rexp/short", 1), ("rexp/long", 60)] {
        let properties = Properties { message_expiry_interval: Some(seconds), ..Default::default() };
        publisher.send(publish_v5(topic, b"kept", QoS::AtLeastOnce, true, Some(1), properties)).await;
        assert_eq!(publisher.expect_puback().await.packet_id.get(), 1);
    }
    // Both are stored at first.
    let mut early = connected(&server, "rexp-early").await;
    early.subscribe(1, &[("rexp/+", QoS::AtLeastOnce)]).await;
    let mut topics = [early.recv_acked().await.topic, early.recv_acked().await.topic];
    topics.sort();
    assert_eq!(topics.iter().map(|t| t.as_str()).collect::<Vec<_>>(), ["rexp/long", "rexp/short"]);

    publisher.expect_nothing(Duration::from_millis(2100)).await;
    let mut late = connected(&server, "rexp-late").await;
    late.subscribe(1, &[("rexp/+", QoS::AtLeastOnce)]).await;
    let publish = late.recv_acked().await;
    assert_eq!((publish.topic.as_str(), publish.retain), ("rexp/long", true));
    let left = publish.properties.message_expiry_interval.expect("message expiry interval dropped");
    assert!((50..=58).contains(&left), "{left} s left after waiting 2 s of 60");
    late.expect_nothing(QUIET).await;
}

// [MQTT-3.3.4-6] is in v5_disconnect.rs; here: a QoS 0 message to a topic nobody subscribes to
// gets no answer at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos0_publish_is_not_answered_v5() {
    let server = TestServer::start().await;
    let mut publisher = connected(&server, "qos0-pub").await;
    publisher.send(publish_v5("qos0/t", b"x", QoS::AtMostOnce, false, None, Properties::default())).await;
    publisher.send(Packet::PingReq).await;
    assert_eq!(publisher.recv().await, Packet::PingResp);
}

// Section 3.3.2.3: properties are a 5.0 matter: a 3.1.1 subscriber gets a 5.0 message without
// them (the payload intact), and a 5.0 subscriber gets a 3.1.1 message with none but its
// subscription identifier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_cross_protocol_versions_v5() {
    let server = TestServer::start().await;
    let (mut old, _) = RawClient::connect(server.addr, ProtocolVersion::V3_1_1, "cross-311", true).await;
    old.subscribe(1, &[("cross/#", QoS::AtLeastOnce)]).await;
    let mut new = connected(&server, "cross-5").await;
    let suback = new.subscribe_v5(1, &[("cross/#", options(QoS::AtLeastOnce))], Some(5)).await;
    assert_eq!(suback.return_codes, [0x01]);

    let properties = Properties {
        user_properties: vec![("k".to_string(), "v".to_string())],
        content_type: Some("text/plain".to_string()),
        ..Default::default()
    };
    let mut publisher = connected(&server, "cross-pub-5").await;
    publisher.publish_qos1_v5("cross/from5", b"five", 1, properties.clone()).await;
    let publish = old.recv_acked().await;
    assert_eq!((publish.topic.as_str(), publish.payload.as_ref()), ("cross/from5", &b"five"[..]));
    let publish = new.recv_acked().await;
    assert_eq!(publish.properties, Properties { subscription_identifiers: vec![5], ..properties });

    let (mut publisher, _) = RawClient::connect(server.addr, ProtocolVersion::V3_1_1, "cross-pub-311", true).await;
    publisher.publish_and_ack("cross/from311", b"four", QoS::AtLeastOnce, false, 1).await;
    assert_eq!(old.recv_acked().await.payload.as_ref(), b"four");
    let publish = new.recv_acked().await;
    assert_eq!((publish.topic.as_str(), publish.payload.as_ref()), ("cross/from311", &b"four"[..]));
    assert_eq!(publish.properties, Properties { subscription_identifiers: vec![5], ..Default::default() });
}

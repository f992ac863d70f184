//! SUBSCRIBE and UNSUBSCRIBE ([MQTT-3.8] to [MQTT-3.11], [MQTT-4.7]): wildcard matching,
//! per-filter return codes, `$` topics, resubscribing and unsubscribing.

use std::time::Duration;

use tern_codec::{Packet, ProtocolVersion, QoS};
use tern_test_support::*;

const QUIET: Duration = Duration::from_millis(300);

/// Receives PUBLISHes until one on `sentinel` arrives; returns the topics before it, in order.
async fn topics_until(client: &mut RawClient, sentinel: &str) -> Vec<String> {
    let mut topics = Vec::new();
    loop {
        let publish = client.recv_acked().await;
        if publish.topic.as_str() == sentinel {
            return topics;
        }
        topics.push(publish.topic.to_string());
    }
}

// [MQTT-4.7.1-1] to [MQTT-4.7.1-3]: `+` matches exactly one level, `#` any number including
// the parent level.
async fn wildcard_matching(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let topics = [
        "sport",
        "sport/tennis",
        "sport/tennis/player1",
        "sport/tennis/player1/ranking",
        "sport/golf/player1",
        "/finance",
        "finance",
    ];
    let cases: [(&str, &[&str]); 8] = [
        ("sport/tennis/player1", &["sport/tennis/player1"]),
        ("sport/tennis/+", &["sport/tennis/player1"]),
        (
            "sport/#",
            &["sport", "sport/tennis", "sport/tennis/player1", "sport/tennis/player1/ranking", "sport/golf/player1"],
        ),
        ("sport/+/player1", &["sport/tennis/player1", "sport/golf/player1"]),
        ("+/+", &["sport/tennis", "/finance"]),
        ("+", &["sport", "finance"]),
        ("/+", &["/finance"]),
        ("#", &topics),
    ];
    let sentinel = "wild-sentinel";
    let mut subscribers = Vec::new();
    for (i, (filter, _)) in cases.iter().enumerate() {
        let (mut subscriber, _) = RawClient::connect(server.addr, version, &format!("wild-sub{i}"), true).await;
        // "#" and "+" match the sentinel too; the overlap is merged into one copy.
        subscriber.subscribe(1, &[(filter, QoS::AtLeastOnce), (sentinel, QoS::AtLeastOnce)]).await;
        subscribers.push(subscriber);
    }
    let (mut publisher, _) = RawClient::connect(server.addr, version, "wild-pub", true).await;
    for (i, topic) in topics.iter().enumerate() {
        publisher.publish_and_ack(topic, b"m", QoS::AtLeastOnce, false, i as u16 + 1).await;
    }
    publisher.publish_and_ack(sentinel, b"end", QoS::AtLeastOnce, false, 100).await;
    for ((filter, expected), subscriber) in cases.iter().zip(&mut subscribers) {
        assert_eq!(topics_until(subscriber, sentinel).await, *expected, "filter {filter}");
    }
}

// [MQTT-3.8.4-5]: each filter gets its own return code, in order; invalid filters get 0x80
// while the valid ones in the same SUBSCRIBE are granted and work.
async fn invalid_filters_get_0x80_valid_ones_granted(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut client, _) = RawClient::connect(server.addr, version, "sub-invalid", true).await;
    let filters = [
        ("sub-invalid/ok1", QoS::AtLeastOnce),
        ("a/#/b", QoS::AtLeastOnce),
        ("a+", QoS::AtMostOnce),
        ("#x", QoS::ExactlyOnce),
        ("sub-invalid/ok2", QoS::ExactlyOnce),
        ("sub-invalid/+x/c", QoS::AtMostOnce),
    ];
    client.send(subscribe(9, &filters)).await;
    match client.recv().await {
        Packet::SubAck(suback) => {
            assert_eq!(suback.packet_id.get(), 9);
            assert_eq!(suback.return_codes, [0x01, 0x80, 0x80, 0x80, 0x02, 0x80]);
        }
        other => panic!("expected SUBACK, got {other:?}"),
    }
    let (mut publisher, _) = RawClient::connect(server.addr, version, "sub-invalid-pub", true).await;
    publisher.publish_and_ack("sub-invalid/ok2", b"granted", QoS::ExactlyOnce, false, 1).await;
    let publish = client.recv_acked().await;
    assert_eq!((publish.topic.as_str(), publish.qos), ("sub-invalid/ok2", QoS::ExactlyOnce));
}

// [MQTT-4.7.2-1]: `#` and `+/...` do not match topics starting with `$`; `$x/#` does.
async fn dollar_topics_not_matched_by_leading_wildcards(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let sentinel = "dollar-sentinel";
    let cases: [(&str, &[&str]); 4] =
        [("#", &[]), ("+/status", &[]), ("$dollar/#", &["$dollar/status"]), ("$dollar/+", &["$dollar/status"])];
    let mut subscribers = Vec::new();
    for (i, (filter, _)) in cases.iter().enumerate() {
        let (mut subscriber, _) = RawClient::connect(server.addr, version, &format!("dollar-sub{i}"), true).await;
        subscriber.subscribe(1, &[(filter, QoS::AtMostOnce), (sentinel, QoS::AtMostOnce)]).await;
        subscribers.push(subscriber);
    }
    let (mut publisher, _) = RawClient::connect(server.addr, version, "dollar-pub", true).await;
    publisher.publish_and_ack("$dollar/status", b"m", QoS::AtLeastOnce, false, 1).await;
    publisher.publish_and_ack(sentinel, b"end", QoS::AtLeastOnce, false, 2).await;
    for ((filter, expected), subscriber) in cases.iter().zip(&mut subscribers) {
        assert_eq!(topics_until(subscriber, sentinel).await, *expected, "filter {filter}");
    }
}

// [MQTT-3.8.4-3]: subscribing again to the same filter replaces the subscription (its QoS);
// one copy is delivered at the new QoS.
async fn resubscribe_replaces_qos(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut subscriber, _) = RawClient::connect(server.addr, version, "resub-sub", true).await;
    subscriber.subscribe(1, &[("resub/t", QoS::AtMostOnce)]).await;
    subscriber.subscribe(2, &[("resub/t", QoS::ExactlyOnce)]).await;
    let (mut publisher, _) = RawClient::connect(server.addr, version, "resub-pub", true).await;
    publisher.publish_and_ack("resub/t", b"upgraded", QoS::ExactlyOnce, false, 1).await;
    let publish = subscriber.recv_acked().await;
    assert_eq!((publish.qos, publish.payload.as_ref()), (QoS::ExactlyOnce, &b"upgraded"[..]));
    subscriber.expect_nothing(QUIET).await;
}

// [MQTT-3.10.4-4]: UNSUBACK carries the UNSUBSCRIBE's packet id, and delivery stops.
async fn unsubscribe_stops_delivery(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut subscriber, _) = RawClient::connect(server.addr, version, "unsub-sub", true).await;
    subscriber.subscribe(1, &[("unsub/t", QoS::AtLeastOnce), ("unsub/other", QoS::AtLeastOnce)]).await;
    let (mut publisher, _) = RawClient::connect(server.addr, version, "unsub-pub", true).await;
    publisher.publish_and_ack("unsub/t", b"before", QoS::AtLeastOnce, false, 1).await;
    assert_eq!(subscriber.recv_acked().await.payload.as_ref(), b"before");

    subscriber.send(unsubscribe(4321, &["unsub/t"])).await;
    match subscriber.recv().await {
        Packet::UnsubAck(unsuback) => assert_eq!(unsuback.packet_id.get(), 4321),
        other => panic!("expected UNSUBACK, got {other:?}"),
    }
    publisher.publish_and_ack("unsub/t", b"after", QoS::AtLeastOnce, false, 2).await;
    // The remaining subscription still delivers, and after the dropped one's message would be.
    publisher.publish_and_ack("unsub/other", b"other", QoS::AtLeastOnce, false, 3).await;
    let publish = subscriber.recv_acked().await;
    assert_eq!((publish.topic.as_str(), publish.payload.as_ref()), ("unsub/other", &b"other"[..]));
    subscriber.expect_nothing(QUIET).await;
}

// [MQTT-3.10.4-5]: UNSUBSCRIBE of a filter never subscribed is still acknowledged.
async fn unsubscribe_unknown_filter_gets_unsuback(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut client, _) = RawClient::connect(server.addr, version, "unsub-unknown", true).await;
    client.send(unsubscribe(77, &["never/subscribed", "never/+"])).await;
    match client.recv().await {
        Packet::UnsubAck(unsuback) => assert_eq!(unsuback.packet_id.get(), 77),
        other => panic!("expected UNSUBACK, got {other:?}"),
    }
}

// [MQTT-3.8.1-1]: SUBSCRIBE's fixed header flags must be 0010.
async fn subscribe_with_wrong_reserved_flags_closes(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut client, _) = RawClient::connect(server.addr, version, "sub-flags", true).await;
    let mut body = vec![0x00, 0x01];
    body.extend(raw_field(b"sub-flags/t"));
    body.push(0x00);
    client.send_raw(&raw_packet(0x80, &body)).await;
    let before = client.expect_closed().await;
    assert!(before.is_empty(), "SUBSCRIBE with flags 0000 was answered: {before:?}");
}

// [MQTT-3-8.3-4]: a requested QoS of 3 (or other reserved bits) closes the connection.
async fn subscribe_requesting_qos3_closes(version: ProtocolVersion) {
    let server = TestServer::start().await;
    for (i, options) in [0x03u8, 0x04].into_iter().enumerate() {
        let (mut client, _) = RawClient::connect(server.addr, version, &format!("sub-qos3-{i}"), true).await;
        let mut body = vec![0x00, 0x01];
        body.extend(raw_field(b"sub-qos3/t"));
        body.push(options);
        client.send_raw(&raw_packet(0x82, &body)).await;
        let before = client.expect_closed().await;
        assert!(before.is_empty(), "SUBSCRIBE options {options:#04x} were answered: {before:?}");
    }
}

v3_tests!(
    wildcard_matching,
    invalid_filters_get_0x80_valid_ones_granted,
    dollar_topics_not_matched_by_leading_wildcards,
    resubscribe_replaces_qos,
    unsubscribe_stops_delivery,
    unsubscribe_unknown_filter_gets_unsuback,
    subscribe_with_wrong_reserved_flags_closes,
    subscribe_requesting_qos3_closes,
);

//! Retained messages ([MQTT-3.3.1-5] to [MQTT-3.3.1-10]): stored, replaced, deleted, sent on
//! SUBSCRIBE with retain 1 and at the right QoS, never flagged on live delivery.

use std::collections::BTreeMap;
use std::time::Duration;

use tern_codec::{ProtocolVersion, Publish, QoS};
use tern_test_support::*;

const QUIET: Duration = Duration::from_millis(300);
const ALL_QOS: [QoS; 3] = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];

/// Receives `count` PUBLISHes, then acknowledges them (all were sent at once, so a QoS 2
/// PUBREL would otherwise interleave with the next PUBLISH), and returns them by topic.
async fn recv_by_topic(client: &mut RawClient, count: usize) -> BTreeMap<String, Publish> {
    let mut by_topic = BTreeMap::new();
    for _ in 0..count {
        let publish = client.expect_publish().await;
        let topic = publish.topic.to_string();
        assert!(by_topic.insert(topic.clone(), publish).is_none(), "{topic} delivered twice");
    }
    for publish in by_topic.values() {
        client.ack(publish).await;
    }
    by_topic
}

// [MQTT-3.3.1-6], [MQTT-3.3.1-8]: a retained message is stored and sent to a new subscriber
// with retain 1.
async fn retained_sent_on_subscribe_with_retain_flag(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut publisher, _) = RawClient::connect(server.addr, version, "ret-pub", true).await;
    publisher.publish_and_ack("ret/stored", b"kept", QoS::AtLeastOnce, true, 1).await;
    let (mut subscriber, _) = RawClient::connect(server.addr, version, "ret-sub", true).await;
    subscriber.subscribe(1, &[("ret/stored", QoS::AtLeastOnce)]).await;
    let publish = subscriber.recv_acked().await;
    assert_eq!((publish.topic.as_str(), publish.payload.as_ref()), ("ret/stored", &b"kept"[..]));
    assert!(publish.retain, "retained message sent on SUBSCRIBE without the retain flag");
    assert_eq!(publish.qos, QoS::AtLeastOnce);
    subscriber.expect_nothing(QUIET).await;
}

// [MQTT-3.3.1-5]: a newer retained message replaces the old one.
async fn retained_replaced_by_newer(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut publisher, _) = RawClient::connect(server.addr, version, "ret-replace-pub", true).await;
    publisher.publish_and_ack("ret/replace", b"old", QoS::AtLeastOnce, true, 1).await;
    publisher.publish_and_ack("ret/replace", b"new", QoS::AtLeastOnce, true, 2).await;
    let (mut subscriber, _) = RawClient::connect(server.addr, version, "ret-replace-sub", true).await;
    subscriber.subscribe(1, &[("ret/replace", QoS::AtLeastOnce)]).await;
    assert_eq!(subscriber.recv_acked().await.payload.as_ref(), b"new");
    subscriber.expect_nothing(QUIET).await;
}

// [MQTT-3.3.1-10]: a retained message with an empty payload deletes the retained message.
async fn retained_empty_payload_deletes(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut publisher, _) = RawClient::connect(server.addr, version, "ret-delete-pub", true).await;
    publisher.publish_and_ack("ret/delete", b"doomed", QoS::AtLeastOnce, true, 1).await;
    publisher.publish_and_ack("ret/delete", b"", QoS::AtLeastOnce, true, 2).await;
    let (mut subscriber, _) = RawClient::connect(server.addr, version, "ret-delete-sub", true).await;
    subscriber.subscribe(1, &[("ret/delete", QoS::AtLeastOnce), ("ret/#", QoS::AtLeastOnce)]).await;
    subscriber.expect_nothing(QUIET).await;
}

// [MQTT-3.3.1-9]: a message published retained goes to existing subscribers with retain 0.
async fn live_delivery_has_retain_0(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut subscriber, _) = RawClient::connect(server.addr, version, "ret-live-sub", true).await;
    subscriber.subscribe(1, &[("ret/live", QoS::AtLeastOnce)]).await;
    let (mut publisher, _) = RawClient::connect(server.addr, version, "ret-live-pub", true).await;
    publisher.publish_and_ack("ret/live", b"now", QoS::AtLeastOnce, true, 1).await;
    let publish = subscriber.recv_acked().await;
    assert_eq!(publish.payload.as_ref(), b"now");
    assert!(!publish.retain, "live delivery carries retain 1");
    // It was still stored: a later subscriber gets it with retain 1.
    let (mut later, _) = RawClient::connect(server.addr, version, "ret-live-later", true).await;
    later.subscribe(1, &[("ret/live", QoS::AtLeastOnce)]).await;
    assert!(later.recv_acked().await.retain);
}

// [MQTT-3.8.4-6] for retained messages: delivered at min(retained QoS, granted QoS).
async fn retained_delivered_at_min_qos(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut publisher, _) = RawClient::connect(server.addr, version, "ret-qos-pub", true).await;
    for (i, qos) in ALL_QOS.into_iter().enumerate() {
        let topic = format!("ret-qos/p{}", qos as u8);
        publisher.publish_and_ack(&topic, b"r", qos, true, i as u16 + 1).await;
    }
    for granted in ALL_QOS {
        let (mut subscriber, _) =
            RawClient::connect(server.addr, version, &format!("ret-qos-sub{}", granted as u8), true).await;
        subscriber.subscribe(1, &[("ret-qos/#", granted)]).await;
        let received = recv_by_topic(&mut subscriber, 3).await;
        for published in ALL_QOS {
            let publish = &received[&format!("ret-qos/p{}", published as u8)];
            assert_eq!(publish.qos, published.min(granted), "retained {published:?}, granted {granted:?}");
            assert!(publish.retain);
        }
        subscriber.expect_nothing(Duration::from_millis(100)).await;
    }
}

// [MQTT-3.3.1-6]: a wildcard subscription gets every matching retained message, and only
// those.
async fn wildcard_subscribe_gets_all_matching_retained(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut publisher, _) = RawClient::connect(server.addr, version, "ret-wild-pub", true).await;
    let topics = ["ret-wild/a/1", "ret-wild/a/2", "ret-wild/a/2/deep", "ret-wild/b/1", "ret-other/a/1"];
    for (i, topic) in topics.iter().enumerate() {
        publisher.publish_and_ack(topic, topic.as_bytes(), QoS::AtLeastOnce, true, i as u16 + 1).await;
    }
    let cases: [(&str, &[&str]); 4] = [
        ("ret-wild/a/+", &["ret-wild/a/1", "ret-wild/a/2"]),
        ("ret-wild/#", &["ret-wild/a/1", "ret-wild/a/2", "ret-wild/a/2/deep", "ret-wild/b/1"]),
        ("+/a/1", &["ret-other/a/1", "ret-wild/a/1"]),
        ("ret-wild/+/1", &["ret-wild/a/1", "ret-wild/b/1"]),
    ];
    for (i, (filter, expected)) in cases.into_iter().enumerate() {
        let (mut subscriber, _) = RawClient::connect(server.addr, version, &format!("ret-wild-sub{i}"), true).await;
        subscriber.subscribe(1, &[(filter, QoS::AtLeastOnce)]).await;
        let received = recv_by_topic(&mut subscriber, expected.len()).await;
        assert_eq!(received.keys().map(String::as_str).collect::<Vec<_>>(), expected, "filter {filter}");
        assert!(received.values().all(|p| p.retain && p.payload.as_ref() == p.topic.as_str().as_bytes()));
        subscriber.expect_nothing(Duration::from_millis(150)).await;
    }
}

// [MQTT-4.7.2-1]: retained messages on `$` topics are not sent to `#` or `+/...`
// subscribers, but are to `$x/#`.
async fn dollar_retained_not_sent_to_wildcard_subscriber(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut publisher, _) = RawClient::connect(server.addr, version, "ret-dollar-pub", true).await;
    publisher.publish_and_ack("$ret-dollar/x", b"dollar", QoS::AtLeastOnce, true, 1).await;
    publisher.publish_and_ack("ret-dollar/x", b"plain", QoS::AtLeastOnce, true, 2).await;

    for (i, filter) in ["#", "+/x"].into_iter().enumerate() {
        let (mut wildcard, _) = RawClient::connect(server.addr, version, &format!("ret-dollar-wild{i}"), true).await;
        wildcard.subscribe(1, &[(filter, QoS::AtLeastOnce)]).await;
        assert_eq!(wildcard.recv_acked().await.topic.as_str(), "ret-dollar/x", "filter {filter}");
        wildcard.expect_nothing(QUIET).await;
    }

    let (mut dollar, _) = RawClient::connect(server.addr, version, "ret-dollar-sys", true).await;
    dollar.subscribe(1, &[("$ret-dollar/#", QoS::AtLeastOnce)]).await;
    let publish = dollar.recv_acked().await;
    assert_eq!((publish.topic.as_str(), publish.payload.as_ref()), ("$ret-dollar/x", &b"dollar"[..]));
    dollar.expect_nothing(Duration::from_millis(100)).await;
}

v3_tests!(
    retained_sent_on_subscribe_with_retain_flag,
    retained_replaced_by_newer,
    retained_empty_payload_deletes,
    live_delivery_has_retain_0,
    retained_delivered_at_min_qos,
    wildcard_subscribe_gets_all_matching_retained,
    dollar_retained_not_sent_to_wildcard_subscriber,
);

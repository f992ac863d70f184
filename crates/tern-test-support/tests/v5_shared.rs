//! Shared subscriptions `$share/{group}/{filter}` (section 4.8.2, [MQTT-4.8.2-1] to
//! [MQTT-4.8.2-6]), for 5.0 and 3.1.1 clients alike: each message goes to one member of each
//! group, chosen by `mqtt.shared_subscription_strategy`.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use tern_codec::{Packet, Properties, ProtocolVersion, QoS, SubscriptionOptions};
use tern_server::Config;
use tern_test_support::*;

const QUIET: Duration = Duration::from_millis(300);

/// Generates, for each named `async fn behaviour(version: ProtocolVersion)`, a module with the
/// tests `v5` and `v311`.
macro_rules! shared_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn v5() {
                    super::$name(tern_codec::ProtocolVersion::V5).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn v311() {
                    super::$name(tern_codec::ProtocolVersion::V3_1_1).await;
                }
            }
        )*
    };
}

async fn server_with_strategy(strategy: &str) -> TestServer {
    let mut config = Config::default();
    config.mqtt.shared_subscription_strategy = strategy.to_string();
    TestServer::start_with(config).await
}

/// A client (clean session) subscribed to `filter` at QoS 1.
async fn member(server: &TestServer, version: ProtocolVersion, client_id: &str, filter: &str) -> RawClient {
    let (mut client, _) = RawClient::connect(server.addr, version, client_id, true).await;
    client.subscribe(1, &[(filter, QoS::AtLeastOnce)]).await;
    client
}

/// Every PUBLISH that arrives until the client has been quiet for [`QUIET`], acknowledged;
/// their payloads as strings.
async fn drain(client: &mut RawClient) -> Vec<String> {
    let mut payloads = Vec::new();
    while let Some(packet) = client.try_recv(QUIET).await {
        let Packet::Publish(publish) = packet else { panic!("expected PUBLISH, got {packet:?}") };
        client.ack(&publish).await;
        payloads.push(String::from_utf8(publish.payload.to_vec()).expect("test payloads are UTF-8"));
    }
    payloads
}

/// Publishes QoS 1 messages "0".."count" on `topic`.
async fn publish_count(publisher: &mut RawClient, topic: &str, count: u16) -> Vec<String> {
    let mut sent = Vec::new();
    for n in 0..count {
        publisher.publish_and_ack(topic, n.to_string().as_bytes(), QoS::AtLeastOnce, false, n + 1).await;
        sent.push(n.to_string());
    }
    sent
}

/// Asserts that `parts` together hold each of `sent` exactly once.
fn assert_partition(parts: &[&Vec<String>], sent: &[String]) {
    let mut all: Vec<&String> = parts.iter().flat_map(|part| part.iter()).collect();
    all.sort();
    let mut expected: Vec<&String> = sent.iter().collect();
    expected.sort();
    assert_eq!(all, expected, "messages lost or duplicated across the group: {parts:?}");
}

// [MQTT-4.8.2-3] (section 4.8.2): each message goes to exactly one member of the group; with
// round robin (the default) two members get half each.
async fn shared_group_delivers_each_message_to_one_member(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let mut a = member(&server, version, "rr-a", "$share/g/rr/t").await;
    let mut b = member(&server, version, "rr-b", "$share/g/rr/t").await;
    let (mut publisher, _) = RawClient::connect(server.addr, version, "rr-pub", true).await;
    let sent = publish_count(&mut publisher, "rr/t", 10).await;
    let (got_a, got_b) = (drain(&mut a).await, drain(&mut b).await);
    assert_partition(&[&got_a, &got_b], &sent);
    assert_eq!((got_a.len(), got_b.len()), (5, 5), "round robin split {got_a:?} / {got_b:?}");
}

// Section 4.8.2: every group gets every message, and so does an ordinary subscription to the
// same topic.
async fn every_group_and_plain_subscriber_get_every_message(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let mut g1 = member(&server, version, "groups-1", "$share/one/groups/t").await;
    let mut g2 = member(&server, version, "groups-2", "$share/two/groups/+").await;
    let mut plain = member(&server, version, "groups-plain", "groups/t").await;
    let (mut publisher, _) = RawClient::connect(server.addr, version, "groups-pub", true).await;
    let sent = publish_count(&mut publisher, "groups/t", 10).await;
    for client in [&mut g1, &mut g2, &mut plain] {
        assert_eq!(drain(client).await, sent);
    }
}

// Section 3.3.1.3 / 4.8.2: retained messages are not sent when a shared subscription is made;
// live messages are.
async fn shared_subscribe_gets_no_retained_messages(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut publisher, _) = RawClient::connect(server.addr, version, "ret-pub", true).await;
    // Nobody is subscribed yet, so a 5.0 PUBACK may say 0x10 (No matching subscribers).
    publisher.send(publish("ret/t", b"retained", QoS::AtLeastOnce, true, Some(1))).await;
    let Packet::PubAck(ack) = publisher.recv().await else { panic!("expected PUBACK") };
    assert_eq!(ack.packet_id.get(), 1);
    assert!(ack.reason_code < 0x80, "retained PUBLISH refused: {ack:?}");
    let mut client = member(&server, version, "ret-member", "$share/g/ret/t").await;
    client.expect_nothing(QUIET).await;
    publisher.publish_and_ack("ret/t", b"live", QoS::AtLeastOnce, false, 2).await;
    let publish = client.recv_acked().await;
    assert_eq!((publish.payload.as_ref(), publish.retain), (&b"live"[..], false));
}

// [MQTT-4.8.2-1], [MQTT-4.8.2-2]: a share name must be non-empty, without '/', '+' or '#', and
// be followed by '/' and a filter; otherwise the filter is refused (0x8F in 5.0, 0x80 in
// 3.1.1), while a valid filter in the same SUBSCRIBE is granted.
async fn malformed_shared_filters_refused(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut client, _) = RawClient::connect(server.addr, version, "malformed", true).await;
    let filters = ["$share/g", "$share//x", "$share/g+/x", "$share/g#/x", "$share/g/", "$share/g/x"];
    client.send(subscribe(1, &filters.map(|filter| (filter, QoS::AtLeastOnce)))).await;
    let Packet::SubAck(suback) = client.recv().await else { panic!("expected SUBACK") };
    let refused = if version == ProtocolVersion::V5 { 0x8F } else { 0x80 };
    let expected = [refused, refused, refused, refused, refused, 0x01];
    assert_eq!(suback.return_codes, expected, "SUBACK for {filters:?}");
}

// Section 4.8.2: a member whose connection ends (its session with it) before acknowledging a
// QoS 1 message does not take the message with it: another member of the group gets it.
async fn unacked_message_of_leaving_member_goes_to_another(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let mut a = member(&server, version, "leave-a", "$share/g/leave/t").await;
    let (mut publisher, _) = RawClient::connect(server.addr, version, "leave-pub", true).await;
    publisher.publish_and_ack("leave/t", b"pending", QoS::AtLeastOnce, false, 1).await;
    let unacked = a.expect_publish().await;
    assert_eq!(unacked.payload.as_ref(), b"pending");
    let mut b = member(&server, version, "leave-b", "$share/g/leave/t").await;
    b.expect_nothing(QUIET).await;
    drop(a);
    let redelivered = b.recv_acked().await;
    assert_eq!((redelivered.topic.as_str(), redelivered.payload.as_ref()), ("leave/t", &b"pending"[..]));
    b.expect_nothing(QUIET).await;
}

/// Drains members `a` and `b`; maps each payload to the member ('a' or 'b') that received it.
async fn delivered_to(a: &mut RawClient, b: &mut RawClient) -> HashMap<String, char> {
    let mut by_payload = HashMap::new();
    for (name, client) in [('a', a), ('b', b)] {
        for payload in drain(client).await {
            assert!(by_payload.insert(payload.clone(), name).is_none(), "{payload} delivered twice");
        }
    }
    by_payload
}

// mqtt.shared_subscription_strategy = "hash_client_id": all messages from one publisher go to
// the same member, whatever their topic.
async fn hash_client_id_keeps_each_publisher_on_one_member(version: ProtocolVersion) {
    let server = server_with_strategy("hash_client_id").await;
    let mut a = member(&server, version, "hc-a", "$share/g/hc/#").await;
    let mut b = member(&server, version, "hc-b", "$share/g/hc/#").await;
    let mut publishers = Vec::new();
    for id in ["hc-pub-1", "hc-pub-2", "hc-pub-3"] {
        publishers.push(RawClient::connect(server.addr, version, id, true).await.0);
    }
    let mut packet_id = 0;
    for round in 0..4 {
        for (p, publisher) in publishers.iter_mut().enumerate() {
            packet_id += 1;
            let payload = format!("{p}:{round}");
            publisher
                .publish_and_ack(&format!("hc/{round}"), payload.as_bytes(), QoS::AtLeastOnce, false, packet_id)
                .await;
        }
    }
    let by_payload = delivered_to(&mut a, &mut b).await;
    assert_eq!(by_payload.len(), 12, "messages lost: {by_payload:?}");
    for p in 0..3 {
        let members: BTreeSet<char> = (0..4).map(|round| by_payload[&format!("{p}:{round}")]).collect();
        assert_eq!(members.len(), 1, "publisher {p}'s messages went to members {members:?}");
    }
}

// mqtt.shared_subscription_strategy = "hash_topic": all messages on one topic go to the same
// member, whoever publishes them.
async fn hash_topic_keeps_each_topic_on_one_member(version: ProtocolVersion) {
    let server = server_with_strategy("hash_topic").await;
    let mut a = member(&server, version, "ht-a", "$share/g/ht/#").await;
    let mut b = member(&server, version, "ht-b", "$share/g/ht/#").await;
    let mut publishers = Vec::new();
    for id in ["ht-pub-1", "ht-pub-2"] {
        publishers.push(RawClient::connect(server.addr, version, id, true).await.0);
    }
    // An odd number of topics per round, so that alternating members would split each topic.
    let topics = ["ht/a", "ht/b", "ht/c"];
    let mut packet_id = 0;
    for round in 0..4 {
        for topic in topics {
            packet_id += 1;
            let publisher = &mut publishers[packet_id as usize % 2];
            let payload = format!("{topic}:{round}");
            publisher.publish_and_ack(topic, payload.as_bytes(), QoS::AtLeastOnce, false, packet_id).await;
        }
    }
    let by_payload = delivered_to(&mut a, &mut b).await;
    assert_eq!(by_payload.len(), 12, "messages lost: {by_payload:?}");
    for topic in topics {
        let members: BTreeSet<char> = (0..4).map(|round| by_payload[&format!("{topic}:{round}")]).collect();
        assert_eq!(members.len(), 1, "{topic}'s messages went to members {members:?}");
    }
}

// mqtt.shared_subscription_strategy = "sticky": one member gets every message while it stays
// connected; when it leaves, the other takes over.
async fn sticky_keeps_one_member_while_connected(version: ProtocolVersion) {
    let server = server_with_strategy("sticky").await;
    let mut a = member(&server, version, "st-a", "$share/g/st/#").await;
    let mut b = member(&server, version, "st-b", "$share/g/st/#").await;
    let (mut publisher, _) = RawClient::connect(server.addr, version, "st-pub", true).await;
    for n in 0..6u16 {
        publisher
            .publish_and_ack(&format!("st/{n}"), format!("first:{n}").as_bytes(), QoS::AtLeastOnce, false, n + 1)
            .await;
    }
    let (got_a, got_b) = (drain(&mut a).await, drain(&mut b).await);
    let (chosen, mut other) = match (got_a.len(), got_b.len()) {
        (6, 0) => (a, b),
        (0, 6) => (b, a),
        split => panic!("sticky split the messages {split:?}: {got_a:?} / {got_b:?}"),
    };
    chosen.disconnect().await;
    let sent = publish_count(&mut publisher, "st/after", 3).await;
    assert_eq!(drain(&mut other).await, sent, "remaining member did not take over");
}

// mqtt.shared_subscription_strategy = "random": still exactly one member per message.
async fn random_delivers_each_message_once(version: ProtocolVersion) {
    let server = server_with_strategy("random").await;
    let mut a = member(&server, version, "rnd-a", "$share/g/rnd/t").await;
    let mut b = member(&server, version, "rnd-b", "$share/g/rnd/t").await;
    let (mut publisher, _) = RawClient::connect(server.addr, version, "rnd-pub", true).await;
    let sent = publish_count(&mut publisher, "rnd/t", 20).await;
    let (got_a, got_b) = (drain(&mut a).await, drain(&mut b).await);
    assert_partition(&[&got_a, &got_b], &sent);
}

shared_tests!(
    shared_group_delivers_each_message_to_one_member,
    every_group_and_plain_subscriber_get_every_message,
    shared_subscribe_gets_no_retained_messages,
    malformed_shared_filters_refused,
    unacked_message_of_leaving_member_goes_to_another,
    hash_client_id_keeps_each_publisher_on_one_member,
    hash_topic_keeps_each_topic_on_one_member,
    sticky_keeps_one_member_while_connected,
    random_delivers_each_message_once,
);

// [MQTT-3.8.3-4]: No Local on a shared subscription is a protocol error: DISCONNECT 0x82.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_local_on_shared_subscription_disconnects_with_0x82_v5() {
    let server = TestServer::start().await;
    let (mut client, _) = RawClient::connect_v5(server.addr, "shared-nolocal", true, Properties::default()).await;
    let no_local = SubscriptionOptions { no_local: true, ..options(QoS::AtLeastOnce) };
    client.send(subscribe_v5(1, &[("$share/g/nl/t", no_local)], None)).await;
    client.expect_disconnect(0x82).await;
}

// Section 4.8.2: a shared subscription can carry a subscription identifier like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_subscription_carries_subscription_identifier_v5() {
    let server = TestServer::start().await;
    let (mut client, _) = RawClient::connect_v5(server.addr, "shared-subid", true, Properties::default()).await;
    let suback = client.subscribe_v5(1, &[("$share/g/sid/t", options(QoS::AtLeastOnce))], Some(77)).await;
    assert_eq!(suback.return_codes, [0x01]);
    let (mut publisher, _) = RawClient::connect_v5(server.addr, "shared-subid-pub", true, Properties::default()).await;
    publisher.publish_qos1_v5("sid/t", b"x", 1, Properties::default()).await;
    assert_eq!(client.recv_acked().await.properties.subscription_identifiers, [77]);
}

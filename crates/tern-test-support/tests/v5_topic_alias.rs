//! Topic aliases (section 3.3.2.3.4, [MQTT-3.3.2-7] to [MQTT-3.3.2-12], [MQTT-3.1.2-26],
//! [MQTT-3.1.2-27]): aliases a client sets up for the broker, and aliases the broker sets up
//! for a subscriber that allows them.

use std::collections::HashMap;
use std::time::Duration;

use tern_codec::{Properties, Publish, QoS};
use tern_server::Config;
use tern_test_support::*;

const QUIET: Duration = Duration::from_millis(300);

fn alias(alias: u16) -> Properties {
    Properties { topic_alias: Some(alias), ..Default::default() }
}

async fn connected(server: &TestServer, client_id: &str) -> RawClient {
    RawClient::connect_v5(server.addr, client_id, true, Properties::default()).await.0
}

/// A subscriber to `filter` at QoS 1.
async fn subscriber(server: &TestServer, client_id: &str, filter: &str) -> RawClient {
    let mut subscriber = connected(server, client_id).await;
    subscriber.subscribe(1, &[(filter, QoS::AtLeastOnce)]).await;
    subscriber
}

// [MQTT-3.3.2-12]: a PUBLISH with a topic name and an alias sets the alias up; a later PUBLISH
// with an empty topic and that alias is for the same topic, and subscribers get the full name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_alias_stands_for_its_topic_v5() {
    let server = TestServer::start().await;
    let mut subscriber = subscriber(&server, "in-sub", "in/#").await;
    let mut publisher = connected(&server, "in-pub").await;
    publisher.publish_qos1_v5("in/a", b"1", 1, alias(1)).await;
    publisher.publish_qos1_v5("", b"2", 2, alias(1)).await;
    for payload in [b"1", b"2"] {
        let publish = subscriber.recv_acked().await;
        assert_eq!((publish.topic.as_str(), publish.payload.as_ref()), ("in/a", &payload[..]));
        assert_eq!(publish.properties.topic_alias, None);
    }
}

// Section 3.3.2.3.4: sending a topic name with an alias already in use maps the alias to the
// new topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_alias_can_be_remapped_v5() {
    let server = TestServer::start().await;
    let mut subscriber = subscriber(&server, "remap-sub", "remap/#").await;
    let mut publisher = connected(&server, "remap-pub").await;
    publisher.publish_qos1_v5("remap/a", b"1", 1, alias(1)).await;
    publisher.publish_qos1_v5("remap/b", b"2", 2, alias(1)).await;
    publisher.publish_qos1_v5("", b"3", 3, alias(1)).await;
    let topics: Vec<String> =
        [subscriber.recv_acked().await.topic, subscriber.recv_acked().await.topic, subscriber.recv_acked().await.topic]
            .iter()
            .map(|t| t.as_str().to_string())
            .collect();
    assert_eq!(topics, ["remap/a", "remap/b", "remap/b"]);
}

// Section 3.3.2.3.4: an empty topic with an alias that was never set up is a protocol error:
// DISCONNECT 0x82, and nothing is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_inbound_alias_disconnects_with_0x82_v5() {
    let server = TestServer::start().await;
    let mut subscriber = subscriber(&server, "unknown-sub", "#").await;
    let mut publisher = connected(&server, "unknown-pub").await;
    publisher.send(publish_v5("", b"x", QoS::AtLeastOnce, false, Some(1), alias(5))).await;
    publisher.expect_disconnect(0x82).await;
    subscriber.expect_nothing(QUIET).await;
}

// [MQTT-4.7.3-1]: an empty topic without an alias is a protocol error too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_topic_without_alias_disconnects_with_0x82_v5() {
    let server = TestServer::start().await;
    let mut publisher = connected(&server, "empty-pub").await;
    publisher.send(publish_v5("", b"x", QoS::AtLeastOnce, false, Some(1), Properties::default())).await;
    publisher.expect_disconnect(0x82).await;
}

// [MQTT-3.3.2-8], [MQTT-3.3.2-9]: an alias of 0, or above the Topic Alias Maximum the broker
// advertised (64), gets DISCONNECT 0x94 (Topic Alias invalid).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_inbound_alias_disconnects_with_0x94_v5() {
    let server = TestServer::start().await;
    for value in [0, 65, u16::MAX] {
        let mut publisher = connected(&server, &format!("invalid-{value}")).await;
        publisher.send(publish_v5("invalid/t", b"x", QoS::AtLeastOnce, false, Some(1), alias(value))).await;
        publisher.expect_disconnect(0x94).await;
    }
}

// [MQTT-3.2.2-17], [MQTT-3.3.2-9]: with limits.topic_alias_maximum = 0 the broker accepts no
// aliases at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alias_refused_when_maximum_is_zero_v5() {
    let mut config = Config::default();
    config.limits.topic_alias_maximum = 0;
    let server = TestServer::start_with(config).await;
    let (mut publisher, connack) = RawClient::connect_v5(server.addr, "zero-pub", true, Properties::default()).await;
    assert!(matches!(connack.properties.topic_alias_maximum, None | Some(0)), "{connack:?}");
    publisher.send(publish_v5("zero/t", b"x", QoS::AtLeastOnce, false, Some(1), alias(1))).await;
    publisher.expect_disconnect(0x94).await;
}

// [MQTT-3.3.2-7]: aliases belong to one network connection; the next connection of the same
// client (even resuming its session) cannot use them: DISCONNECT 0x82.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_aliases_do_not_outlive_connection_v5() {
    let server = TestServer::start().await;
    let session = Properties { session_expiry_interval: Some(60), ..Default::default() };
    let (mut publisher, _) = RawClient::connect_v5(server.addr, "conn-pub", false, session.clone()).await;
    publisher.publish_qos1_v5("conn/t", b"1", 1, alias(1)).await;
    publisher.disconnect().await;
    let (mut publisher, connack) = RawClient::connect_v5(server.addr, "conn-pub", false, session).await;
    assert!(connack.session_present);
    publisher.send(publish_v5("", b"2", QoS::AtLeastOnce, false, Some(2), alias(1))).await;
    publisher.expect_disconnect(0x82).await;
}

/// A subscriber whose CONNECT allows `maximum` topic aliases, subscribed to `filter` at QoS 1.
async fn alias_subscriber(server: &TestServer, client_id: &str, maximum: Option<u16>, filter: &str) -> RawClient {
    let properties = Properties { topic_alias_maximum: maximum, ..Default::default() };
    let (mut subscriber, _) = RawClient::connect_v5(server.addr, client_id, true, properties).await;
    subscriber.subscribe(1, &[(filter, QoS::AtLeastOnce)]).await;
    subscriber
}

// [MQTT-3.1.2-26], [MQTT-3.3.2-10], [MQTT-3.3.2-11]: for a subscriber allowing 2 aliases, the
// broker aliases the first two topics: their first PUBLISH has the topic name and an alias in
// 1..=2, later ones an empty topic and the same alias; a third topic always has its name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_aliases_assigned_to_first_topics_v5() {
    let server = TestServer::start().await;
    let mut subscriber = alias_subscriber(&server, "out-sub", Some(2), "out/#").await;
    let mut publisher = connected(&server, "out-pub").await;
    let topics = ["out/a", "out/b", "out/c"];
    let mut id = 0;
    for topic in topics.iter().chain(&topics).chain(&topics) {
        id += 1;
        publisher.publish_qos1_v5(topic, topic.as_bytes(), id, Properties::default()).await;
    }
    let mut aliases: HashMap<u16, String> = HashMap::new();
    for round in 0..3 {
        for topic in topics {
            let publish: Publish = subscriber.recv_acked().await;
            assert_eq!(publish.payload.as_ref(), topic.as_bytes(), "out of order");
            let alias = publish.properties.topic_alias;
            if topic == "out/c" {
                assert_eq!((publish.topic.as_str(), alias), ("out/c", None), "round {round}: a third alias");
                continue;
            }
            let alias = alias.unwrap_or_else(|| panic!("round {round}: {topic} without an alias: {publish:?}"));
            assert!((1..=2).contains(&alias), "alias {alias} beyond the subscriber's maximum of 2");
            if round == 0 {
                assert_eq!(publish.topic.as_str(), topic, "first PUBLISH with alias {alias} lacks the topic");
                assert!(aliases.insert(alias, topic.to_string()).is_none(), "alias {alias} given to two topics");
            } else {
                assert_eq!(publish.topic.as_str(), "", "round {round}: {topic} sent in full again");
                assert_eq!(aliases.get(&alias).map(String::as_str), Some(topic), "alias {alias} changed topic");
            }
        }
    }
}

// [MQTT-3.1.2-27]: a subscriber that allows no aliases (maximum 0 or absent) never gets one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_outbound_aliases_without_maximum_v5() {
    let server = TestServer::start().await;
    let mut absent = alias_subscriber(&server, "none-absent", None, "none/t").await;
    let mut zero = alias_subscriber(&server, "none-zero", Some(0), "none/t").await;
    let mut publisher = connected(&server, "none-pub").await;
    for id in 1..=3 {
        publisher.publish_qos1_v5("none/t", b"x", id, Properties::default()).await;
    }
    for subscriber in [&mut absent, &mut zero] {
        for _ in 0..3 {
            let publish = subscriber.recv_acked().await;
            assert_eq!((publish.topic.as_str(), publish.properties.topic_alias), ("none/t", None));
        }
    }
}

// [MQTT-3.3.2-7]: outbound aliases also end with the connection: after reconnecting, the
// first PUBLISH on a topic carries its name again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_aliases_reset_on_reconnect_v5() {
    let server = TestServer::start().await;
    let properties =
        Properties { topic_alias_maximum: Some(4), session_expiry_interval: Some(60), ..Default::default() };
    let (mut subscriber, _) = RawClient::connect_v5(server.addr, "reset-sub", false, properties.clone()).await;
    subscriber.subscribe(1, &[("reset/t", QoS::AtLeastOnce)]).await;
    let mut publisher = connected(&server, "reset-pub").await;
    publisher.publish_qos1_v5("reset/t", b"1", 1, Properties::default()).await;
    publisher.publish_qos1_v5("reset/t", b"2", 2, Properties::default()).await;
    assert_eq!(subscriber.recv_acked().await.topic.as_str(), "reset/t");
    assert_eq!(subscriber.recv_acked().await.topic.as_str(), "", "second PUBLISH not aliased");
    subscriber.disconnect().await;

    let (mut subscriber, connack) = RawClient::connect_v5(server.addr, "reset-sub", false, properties).await;
    assert!(connack.session_present);
    publisher.publish_qos1_v5("reset/t", b"3", 3, Properties::default()).await;
    let publish = subscriber.recv_acked().await;
    assert_eq!((publish.topic.as_str(), publish.payload.as_ref()), ("reset/t", &b"3"[..]));
}

//! Interoperability with rumqttc, an MQTT client written by others: its 3.1.1 client (the
//! crate root) and its 5.0 client (`rumqttc::v5`) against a broker running in-process.
//!
//! Each client's event loop is polled by a spawned task that forwards every event over a
//! channel and stops at the first error, so a client the broker disconnected does not
//! reconnect behind the test's back. Every wait is bounded by [`DEFAULT_TIMEOUT`].

use std::fmt::Debug;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5;
use rumqttc::v5::mqttbytes::v5 as p5;
use rumqttc::v5::mqttbytes::QoS as QoS5;
use rumqttc::QoS;
use tern_test_support::{TestServer, DEFAULT_TIMEOUT};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};

/// How long a test waits to be sure that nothing more arrives.
const QUIET: Duration = Duration::from_millis(300);
/// Large enough for the biggest payload here; rumqttc refuses packets over 10 KiB by default.
const MAX_PACKET: usize = 256 * 1024;

/// An item of a client's event stream: an incoming packet, something to skip (outgoing
/// packets), or an error, which fails the test unless the test waits for one.
trait Item: Debug + Send + 'static {
    type Packet: Debug;
    type Publish: Debug;
    fn incoming(self) -> Option<Self::Packet>;
    fn publish(packet: Self::Packet) -> Option<Self::Publish>;
    fn failed(&self) -> bool;
    /// Whether this is rumqttc's report that the broker closed the connection.
    fn aborted(&self) -> bool;
}

type Item3 = Result<rumqttc::Event, rumqttc::ConnectionError>;
type Item5 = Result<v5::Event, v5::ConnectionError>;

macro_rules! impl_item {
    ($item:ty, $m:ident, $packets:ident) => {
        impl Item for $item {
            type Packet = $packets::Packet;
            type Publish = $packets::Publish;
            fn incoming(self) -> Option<$packets::Packet> {
                match self {
                    Ok($m::Event::Incoming(packet)) => Some(packet),
                    Ok($m::Event::Outgoing(_)) => None,
                    Err(error) => panic!("rumqttc event loop failed: {error:?}"),
                }
            }
            fn publish(packet: $packets::Packet) -> Option<$packets::Publish> {
                if let $packets::Packet::Publish(publish) = packet {
                    Some(publish)
                } else {
                    None
                }
            }
            fn failed(&self) -> bool {
                self.is_err()
            }
            fn aborted(&self) -> bool {
                matches!(self, Err($m::ConnectionError::MqttState($m::StateError::ConnectionAborted)))
            }
        }
    };
}
impl_item!(Item3, rumqttc, rumqttc);
impl_item!(Item5, v5, p5);

/// A rumqttc client and the events of its event loop.
struct Conn<C, E> {
    client: C,
    events: mpsc::UnboundedReceiver<E>,
    task: JoinHandle<()>,
}

type Conn3 = Conn<rumqttc::AsyncClient, Item3>;
type Conn5 = Conn<v5::AsyncClient, Item5>;

/// Spawns the task that polls `$eventloop` and forwards its events until the first error.
macro_rules! forward {
    ($eventloop:expr) => {{
        let mut eventloop = $eventloop;
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let event = eventloop.poll().await;
                let failed = event.is_err();
                if tx.send(event).is_err() || failed {
                    break;
                }
            }
        });
        (rx, task)
    }};
}

impl<C, E: Item> Conn<C, E> {
    /// The next raw item of the event stream.
    async fn next_item(&mut self, deadline: Instant, what: &str) -> E {
        match timeout_at(deadline, self.events.recv()).await {
            Ok(Some(item)) => item,
            Ok(None) => panic!("event loop ended while waiting for {what}"),
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }

    /// Skips incoming packets until `pick` takes one.
    async fn until<T>(&mut self, what: &str, mut pick: impl FnMut(E::Packet) -> Option<T>) -> T {
        let deadline = Instant::now() + DEFAULT_TIMEOUT;
        loop {
            if let Some(found) = self.next_item(deadline, what).await.incoming().and_then(&mut pick) {
                return found;
            }
        }
    }

    /// The incoming packets of the next `duration`.
    async fn incoming_during(&mut self, duration: Duration) -> Vec<E::Packet> {
        let deadline = Instant::now() + duration;
        let mut packets = Vec::new();
        while let Ok(Some(item)) = timeout_at(deadline, self.events.recv()).await {
            packets.extend(item.incoming());
        }
        packets
    }

    async fn next_publish(&mut self) -> E::Publish {
        self.until("PUBLISH", E::publish).await
    }

    /// Asserts that no PUBLISH arrives for a while.
    async fn expect_no_publish(&mut self) {
        let publishes: Vec<_> = self.incoming_during(QUIET).await.into_iter().filter_map(E::publish).collect();
        assert!(publishes.is_empty(), "unexpected {publishes:?}");
    }

    /// Waits until the event loop fails, which is how rumqttc reports a closed connection.
    async fn closed(&mut self) -> E {
        let deadline = Instant::now() + DEFAULT_TIMEOUT;
        loop {
            let item = self.next_item(deadline, "the connection to close").await;
            if item.failed() {
                return item;
            }
        }
    }

    /// Waits until the broker closed the connection after the client's DISCONNECT.
    async fn closed_after_disconnect(&mut self) {
        let closed = self.closed().await;
        assert!(closed.aborted(), "expected the broker to close the connection, got {closed:?}");
    }

    /// Drops the connection without DISCONNECT: when this returns, the event loop and its
    /// socket are gone.
    async fn kill(&mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl<C, E> Drop for Conn<C, E> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---- MQTT 3.1.1 ----

fn options3(server: &TestServer, client_id: &str) -> rumqttc::MqttOptions {
    let mut options = rumqttc::MqttOptions::new(client_id, "127.0.0.1", server.addr.port());
    options.set_max_packet_size(MAX_PACKET, MAX_PACKET);
    options
}

impl Conn3 {
    /// Connects and returns the client with its CONNACK, which must accept.
    async fn connect(options: rumqttc::MqttOptions) -> (Conn3, rumqttc::ConnAck) {
        let (client, eventloop) = rumqttc::AsyncClient::new(options, 16);
        let (events, task) = forward!(eventloop);
        let mut conn = Conn { client, events, task };
        let connack = conn.until("CONNACK", |p| if let rumqttc::Packet::ConnAck(c) = p { Some(c) } else { None }).await;
        assert_eq!(connack.code, rumqttc::ConnectReturnCode::Success, "{connack:?}");
        (conn, connack)
    }

    async fn subscribe(&mut self, filter: &str, qos: QoS) {
        self.client.subscribe(filter, qos).await.expect("subscribe queued");
        let suback = self.until("SUBACK", |p| if let rumqttc::Packet::SubAck(s) = p { Some(s) } else { None }).await;
        assert_eq!(suback.return_codes, [rumqttc::SubscribeReasonCode::Success(qos)], "{suback:?}");
    }

    /// Publishes and, for QoS 1 and 2, waits until the broker completed the flow.
    async fn publish(&mut self, topic: &str, qos: QoS, retain: bool, payload: impl Into<Vec<u8>>) {
        self.client.publish(topic, qos, retain, payload).await.expect("publish queued");
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.until("PUBACK", |p| matches!(p, rumqttc::Packet::PubAck(_)).then_some(())).await,
            QoS::ExactlyOnce => self.until("PUBCOMP", |p| matches!(p, rumqttc::Packet::PubComp(_)).then_some(())).await,
        }
    }
}

/// Payloads that a broker which mangled bytes would get wrong: every byte value, a large
/// pattern, and text with NULs.
fn payloads() -> [Vec<u8>; 3] {
    [
        (0..=255u8).collect(),
        (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect(),
        b"gr\xc3\xbc\x00\x00\xff!".to_vec(),
    ]
}

/// Checks the messages published on `{prefix}/{i}` at QoS i with `payloads()[i]`: each arrived
/// once, at QoS i, not retained, byte for byte.
fn check_round_trip(prefix: &str, mut got: Vec<(String, u8, bool, Vec<u8>)>) {
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let topics: Vec<_> = got.iter().map(|g| g.0.as_str()).collect();
    assert_eq!(topics, (0..3).map(|i| format!("{prefix}/{i}")).collect::<Vec<_>>());
    for ((topic, qos, retain, payload), (i, sent)) in got.iter().zip(payloads().into_iter().enumerate()) {
        assert_eq!((*qos, *retain), (i as u8, false), "QoS and retain on {topic}");
        assert!(*payload == sent, "payload on {topic} differs: {} bytes received, {} sent", payload.len(), sent.len());
    }
}

// QoS 0, 1 and 2 each reach a QoS 2 subscriber at the QoS they were sent with, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos_round_trip_keeps_payloads_v311() {
    let server = TestServer::start().await;
    let (mut sub, _) = Conn3::connect(options3(&server, "rq3-sub")).await;
    sub.subscribe("rt3/#", QoS::ExactlyOnce).await;
    let (mut publisher, _) = Conn3::connect(options3(&server, "rq3-pub")).await;
    let qos = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];
    for (i, payload) in payloads().into_iter().enumerate() {
        publisher.publish(&format!("rt3/{i}"), qos[i], false, payload).await;
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        let p = sub.next_publish().await;
        got.push((p.topic, p.qos as u8, p.retain, p.payload.to_vec()));
    }
    check_round_trip("rt3", got);
}

// A retained message reaches a later subscriber with the retain flag set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_message_reaches_later_subscriber_v311() {
    let server = TestServer::start().await;
    let (mut publisher, _) = Conn3::connect(options3(&server, "ret3-pub")).await;
    publisher.publish("ret3/t", QoS::AtLeastOnce, true, "kept").await;
    let (mut sub, _) = Conn3::connect(options3(&server, "ret3-sub")).await;
    sub.subscribe("ret3/#", QoS::AtLeastOnce).await;
    let p = sub.next_publish().await;
    assert_eq!(
        (p.topic.as_str(), p.retain, p.qos, text(&p.payload)),
        ("ret3/t", true, QoS::AtLeastOnce, "kept".into())
    );
}

// A clean_session=false client gets, on reconnecting, the QoS 1 messages published while it was
// away, in order, and CONNACK says the session was present.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_session_receives_offline_messages_v311() {
    let server = TestServer::start().await;
    let mut options = options3(&server, "persist3");
    options.set_clean_session(false);
    let (mut sub, connack) = Conn3::connect(options.clone()).await;
    assert!(!connack.session_present);
    sub.subscribe("persist3/t", QoS::AtLeastOnce).await;
    sub.client.disconnect().await.expect("disconnect queued");
    sub.closed_after_disconnect().await;
    drop(sub);

    let (mut publisher, _) = Conn3::connect(options3(&server, "persist3-pub")).await;
    for i in 0..3 {
        publisher.publish("persist3/t", QoS::AtLeastOnce, false, format!("offline {i}")).await;
    }
    let (mut sub, connack) = Conn3::connect(options).await;
    assert!(connack.session_present, "{connack:?}");
    for i in 0..3 {
        let p = sub.next_publish().await;
        assert_eq!((p.qos, text(&p.payload)), (QoS::AtLeastOnce, format!("offline {i}")));
    }
    sub.expect_no_publish().await;
}

// A client whose connection drops without DISCONNECT has its will published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_published_when_connection_drops_v311() {
    let server = TestServer::start().await;
    let (mut watcher, _) = Conn3::connect(options3(&server, "will3-watch")).await;
    watcher.subscribe("will3/t", QoS::AtLeastOnce).await;
    let mut options = options3(&server, "will3-dying");
    options.set_last_will(rumqttc::LastWill::new("will3/t", "gone", QoS::AtLeastOnce, false));
    let (mut dying, _) = Conn3::connect(options).await;
    dying.kill().await;
    let p = watcher.next_publish().await;
    assert_eq!((p.topic.as_str(), p.qos, text(&p.payload)), ("will3/t", QoS::AtLeastOnce, "gone".into()));
}

// 200 QoS 1 messages from one publisher arrive once each and in order ([MQTT-4.6.0-6]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_qos1_messages_in_order_v311() {
    let server = TestServer::start().await;
    let (mut sub, _) = Conn3::connect(options3(&server, "order3-sub")).await;
    sub.subscribe("order3/t", QoS::AtLeastOnce).await;
    let (publisher, _) = Conn3::connect(options3(&server, "order3-pub")).await;
    for i in 0..200 {
        publisher.client.publish("order3/t", QoS::AtLeastOnce, false, i.to_string()).await.expect("publish queued");
    }
    for i in 0..200 {
        let p = sub.next_publish().await;
        assert_eq!(text(&p.payload), i.to_string(), "message {i} out of order");
    }
    sub.expect_no_publish().await;
}

// ---- MQTT 5.0 ----

fn options5(server: &TestServer, client_id: &str) -> v5::MqttOptions {
    let mut options = v5::MqttOptions::new(client_id, "127.0.0.1", server.addr.port());
    options.set_max_packet_size(Some(MAX_PACKET as u32));
    options
}

impl Conn5 {
    async fn connect(options: v5::MqttOptions) -> (Conn5, p5::ConnAck) {
        let (client, eventloop) = v5::AsyncClient::new(options, 16);
        let (events, task) = forward!(eventloop);
        let mut conn = Conn { client, events, task };
        let connack = conn.until("CONNACK", |p| if let p5::Packet::ConnAck(c) = p { Some(c) } else { None }).await;
        assert_eq!(connack.code, p5::ConnectReturnCode::Success, "{connack:?}");
        (conn, connack)
    }

    async fn subscribe_filters(&mut self, filters: Vec<p5::Filter>, id: Option<usize>) {
        let expected: Vec<_> = filters.iter().map(|f| p5::SubscribeReasonCode::Success(f.qos)).collect();
        let properties = p5::SubscribeProperties { id, user_properties: Vec::new() };
        self.client.subscribe_many_with_properties(filters, properties).await.expect("subscribe queued");
        let suback = self.until("SUBACK", |p| if let p5::Packet::SubAck(s) = p { Some(s) } else { None }).await;
        assert_eq!(suback.return_codes, expected, "{suback:?}");
    }

    async fn subscribe(&mut self, filter: &str, qos: QoS5) {
        self.subscribe_filters(vec![p5::Filter::new(filter, qos)], None).await;
    }

    /// Publishes and, for QoS 1 and 2, waits until the broker completed the flow; returns the
    /// PUBACK's reason for QoS 1.
    async fn publish(
        &mut self,
        topic: &str,
        qos: QoS5,
        payload: impl Into<Bytes>,
        props: p5::PublishProperties,
    ) -> Option<p5::PubAckReason> {
        self.client.publish_with_properties(topic, qos, false, payload, props).await.expect("publish queued");
        match qos {
            QoS5::AtMostOnce => None,
            QoS5::AtLeastOnce => {
                Some(self.until("PUBACK", |p| if let p5::Packet::PubAck(a) = p { Some(a.reason) } else { None }).await)
            }
            QoS5::ExactlyOnce => self.until("PUBCOMP", |p| matches!(p, p5::Packet::PubComp(_)).then_some(None)).await,
        }
    }
}

/// A payload as text, so that failed assertions are readable.
fn text(payload: &[u8]) -> String {
    String::from_utf8_lossy(payload).into_owned()
}

fn props(f: impl FnOnce(&mut p5::PublishProperties)) -> p5::PublishProperties {
    let mut properties = p5::PublishProperties::default();
    f(&mut properties);
    properties
}

// CONNACK carries the limits and features Tern advertises, as rumqttc decodes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connack_properties_visible_v5() {
    let server = TestServer::start().await;
    let (_conn, connack) = Conn5::connect(options5(&server, "connack5")).await;
    assert!(!connack.session_present);
    let p = connack.properties.expect("CONNACK properties");
    assert_eq!((p.receive_max, p.topic_alias_max), (Some(256), Some(64)), "{p:?}");
    assert_eq!(p.max_packet_size, Some(tern_server::Config::default().limits.max_packet_size as u32), "{p:?}");
    let available = [
        p.retain_available,
        p.wildcard_subscription_available,
        p.subscription_identifiers_available,
        p.shared_subscription_available,
    ];
    assert_eq!(available, [Some(1); 4], "retain, wildcard, subscription id, shared: {p:?}");
    assert_eq!(p.max_qos, None, "absent means QoS 2 is supported: {p:?}");
    assert_eq!(p.assigned_client_identifier, None, "the client chose its id: {p:?}");
}

// QoS 0, 1 and 2 each reach a QoS 2 subscriber at the QoS they were sent with, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos_round_trip_keeps_payloads_v5() {
    let server = TestServer::start().await;
    let (mut sub, _) = Conn5::connect(options5(&server, "rq5-sub")).await;
    sub.subscribe("rt5/#", QoS5::ExactlyOnce).await;
    let (mut publisher, _) = Conn5::connect(options5(&server, "rq5-pub")).await;
    let qos = [QoS5::AtMostOnce, QoS5::AtLeastOnce, QoS5::ExactlyOnce];
    for (i, payload) in payloads().into_iter().enumerate() {
        publisher.publish(&format!("rt5/{i}"), qos[i], payload, Default::default()).await;
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        let p = sub.next_publish().await;
        got.push((text(&p.topic), p.qos as u8, p.retain, p.payload.to_vec()));
    }
    check_round_trip("rt5", got);
}

// User properties (in order, duplicate keys kept), content type, response topic, correlation data
// and the payload format indicator reach the subscriber unaltered ([MQTT-3.3.2-15..20]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_properties_passed_through_v5() {
    let server = TestServer::start().await;
    let (mut sub, _) = Conn5::connect(options5(&server, "props5-sub")).await;
    sub.subscribe("props5/t", QoS5::AtLeastOnce).await;
    let (mut publisher, _) = Conn5::connect(options5(&server, "props5-pub")).await;
    let sent = props(|p| {
        p.payload_format_indicator = Some(1);
        p.user_properties = [("k", "v1"), ("k", "v2"), ("a", "\u{e9}")].map(|(k, v)| (k.into(), v.into())).to_vec();
        p.content_type = Some("application/json".into());
        p.response_topic = Some("props5/reply".into());
        p.correlation_data = Some(Bytes::from_static(b"\x00corr\xff"));
    });
    publisher.publish("props5/t", QoS5::AtLeastOnce, "{}", sent.clone()).await;
    let received = sub.next_publish().await.properties.expect("PUBLISH properties");
    assert_eq!(received, sent);
}

// A subscription identifier comes back on the messages its subscription matched, and messages
// matched by a subscription without one carry none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_identifier_delivered_v5() {
    let server = TestServer::start().await;
    let (mut sub, _) = Conn5::connect(options5(&server, "subid5-sub")).await;
    sub.subscribe_filters(vec![p5::Filter::new("subid5/with/#", QoS5::AtLeastOnce)], Some(42)).await;
    sub.subscribe("subid5/without", QoS5::AtLeastOnce).await;
    let (mut publisher, _) = Conn5::connect(options5(&server, "subid5-pub")).await;
    publisher.publish("subid5/with/x", QoS5::AtLeastOnce, "a", Default::default()).await;
    let p = sub.next_publish().await;
    assert_eq!(p.properties.map(|p| p.subscription_identifiers), Some(vec![42]));
    publisher.publish("subid5/without", QoS5::AtLeastOnce, "b", Default::default()).await;
    let p = sub.next_publish().await;
    assert_eq!(
        (text(&p.payload), p.properties.map(|p| p.subscription_identifiers).unwrap_or_default()),
        ("b".into(), vec![])
    );
}

// A message whose expiry interval passed while its persistent subscriber was offline is dropped;
// one with a long interval is delivered with the time it waited taken off ([MQTT-3.3.2-5],
// [MQTT-3.3.2-6]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_message_not_delivered_to_offline_session_v5() {
    let server = TestServer::start().await;
    let mut options = options5(&server, "expiry5");
    options.set_clean_start(false).set_session_expiry_interval(Some(300));
    let (mut sub, _) = Conn5::connect(options.clone()).await;
    sub.subscribe("expiry5/t", QoS5::AtLeastOnce).await;
    sub.client.disconnect().await.expect("disconnect queued");
    sub.closed_after_disconnect().await;
    drop(sub);

    let (mut publisher, _) = Conn5::connect(options5(&server, "expiry5-pub")).await;
    for (payload, expiry) in [("short", 1), ("long", 60)] {
        let properties = props(|p| p.message_expiry_interval = Some(expiry));
        let reason = publisher.publish("expiry5/t", QoS5::AtLeastOnce, payload, properties).await;
        assert_eq!(reason, Some(p5::PubAckReason::Success), "the offline session's subscription matches");
    }
    // Not synchronisation: the passing of time is what this test is about.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (mut sub, connack) = Conn5::connect(options).await;
    assert!(connack.session_present, "{connack:?}");
    let p = sub.next_publish().await;
    assert_eq!(text(&p.payload), "long", "the expired message was delivered");
    let left = p.properties.and_then(|p| p.message_expiry_interval);
    assert!(matches!(left, Some(1..=58)), "expiry interval after waiting 2 s: {left:?}");
    sub.expect_no_publish().await;
}

// With No Local, a client does not receive its own messages on a matching subscription, but does
// receive others' ([MQTT-3.8.3-3]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_local_suppresses_own_messages_v5() {
    let server = TestServer::start().await;
    let (mut client, _) = Conn5::connect(options5(&server, "nolocal5")).await;
    let filter = p5::Filter { nolocal: true, ..p5::Filter::new("nolocal5/t", QoS5::AtLeastOnce) };
    client.subscribe_filters(vec![filter], None).await;
    client.publish("nolocal5/t", QoS5::AtLeastOnce, "mine", Default::default()).await;
    let (mut other, _) = Conn5::connect(options5(&server, "nolocal5-other")).await;
    other.publish("nolocal5/t", QoS5::AtLeastOnce, "theirs", Default::default()).await;
    assert_eq!(text(&client.next_publish().await.payload), "theirs", "own message delivered despite No Local");
    client.expect_no_publish().await;
}

// A client may publish with topic + alias, then with an empty topic and the alias alone; the
// subscriber (which allows no aliases) gets the full topic both times and no alias.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_alias_from_client_resolved_v5() {
    let server = TestServer::start().await;
    let (mut sub, _) = Conn5::connect(options5(&server, "alias5-sub")).await;
    sub.subscribe("alias5/t", QoS5::AtLeastOnce).await;
    let (mut publisher, _) = Conn5::connect(options5(&server, "alias5-pub")).await;
    let alias = || props(|p| p.topic_alias = Some(1));
    for (topic, payload) in [("alias5/t", "first"), ("", "second")] {
        let reason = publisher.publish(topic, QoS5::AtLeastOnce, payload, alias()).await;
        assert_eq!(reason, Some(p5::PubAckReason::Success), "publish to {topic:?} with alias 1");
    }
    for payload in ["first", "second"] {
        let p = sub.next_publish().await;
        assert_eq!((text(&p.topic), text(&p.payload)), ("alias5/t".into(), payload.into()));
        assert_eq!(p.properties.and_then(|p| p.topic_alias), None, "alias sent to a client that allows none");
    }
}

// Ten messages to `$share/g/...` are split between the group's two members, each delivered
// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_subscription_splits_messages_v5() {
    let server = TestServer::start().await;
    let (mut a, _) = Conn5::connect(options5(&server, "share5-a")).await;
    let (mut b, _) = Conn5::connect(options5(&server, "share5-b")).await;
    a.subscribe("$share/g/share5/t", QoS5::AtLeastOnce).await;
    b.subscribe("$share/g/share5/t", QoS5::AtLeastOnce).await;
    let (mut publisher, _) = Conn5::connect(options5(&server, "share5-pub")).await;
    for i in 0..10 {
        publisher.publish("share5/t", QoS5::AtLeastOnce, i.to_string(), Default::default()).await;
    }
    let (mut to_a, mut to_b) = (Vec::new(), Vec::new());
    while to_a.len() + to_b.len() < 10 {
        // `until` only awaits the channel, so the branch that loses the race loses nothing.
        tokio::select! {
            p = a.next_publish() => to_a.push(text(&p.payload)),
            p = b.next_publish() => to_b.push(text(&p.payload)),
        }
    }
    tokio::join!(a.expect_no_publish(), b.expect_no_publish());
    assert!(!to_a.is_empty() && !to_b.is_empty(), "not split: a got {to_a:?}, b got {to_b:?}");
    let mut all: Vec<u32> = to_a.iter().chain(&to_b).map(|s| s.parse().expect("number")).collect();
    all.sort_unstable();
    assert_eq!(all, (0..10).collect::<Vec<_>>(), "a got {to_a:?}, b got {to_b:?}");
}

// A second client with the same id takes the session over; the first is told so with
// DISCONNECT 0x8E (Session taken over) ([MQTT-3.1.4-3]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_takeover_disconnects_first_with_0x8e_v5() {
    let server = TestServer::start().await;
    let (mut first, _) = Conn5::connect(options5(&server, "takeover5")).await;
    let (_second, _) = Conn5::connect(options5(&server, "takeover5")).await;
    match first.closed().await {
        Err(v5::ConnectionError::MqttState(v5::StateError::ServerDisconnect { reason_code, .. })) => {
            assert_eq!(reason_code, p5::DisconnectReasonCode::SessionTakenOver);
        }
        other => panic!("expected DISCONNECT 0x8E, got {other:?}"),
    }
}

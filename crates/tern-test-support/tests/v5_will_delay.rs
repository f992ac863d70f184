//! 5.0 will messages (section 3.1.3.2, [MQTT-3.1.3-9], [MQTT-3.14.4-3]): the Will Delay
//! Interval, its cancellation by a reconnect, DISCONNECT with reason 0x04, and the will
//! properties passed on to subscribers.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tern_codec::{Connect, Properties, QoS};
use tern_test_support::*;

/// A 5.0 CONNECT (clean start 1) with a QoS 1 will "gone" on `topic`.
fn connect_with_will(client_id: &str, topic: &str, session_expiry: u32, will_delay: Option<u32>) -> Connect {
    let properties = Properties { session_expiry_interval: Some(session_expiry), ..Default::default() };
    let mut connect = connect_v5(client_id, true, properties);
    let mut will = will(topic, b"gone", QoS::AtLeastOnce, false);
    will.properties.will_delay_interval = will_delay;
    connect.will = Some(will);
    connect
}

/// A 5.0 client subscribed to `topic` at QoS 1.
async fn watcher(server: &TestServer, client_id: &str, topic: &str) -> RawClient {
    let (mut watcher, _) = RawClient::connect_v5(server.addr, client_id, true, Properties::default()).await;
    watcher.subscribe(1, &[(topic, QoS::AtLeastOnce)]).await;
    watcher
}

async fn connected(server: &TestServer, connect: Connect) -> RawClient {
    let (client, connack) = RawClient::connect_with(server.addr, connect).await;
    assert_eq!(connack.code.0, 0, "{connack:?}");
    client
}

// Section 3.1.3.2.2: with a Will Delay Interval of 2 s (and a longer session) the will is not
// published when the connection breaks, but 2 s later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_published_after_will_delay_v5() {
    let server = TestServer::start().await;
    let mut watcher = watcher(&server, "delay-watch", "delay/will").await;
    let client = connected(&server, connect_with_will("delay", "delay/will", 60, Some(2))).await;
    drop(client);
    let dropped = Instant::now();
    watcher.expect_nothing(Duration::from_millis(1200)).await;
    let will = watcher.recv_acked().await;
    let elapsed = dropped.elapsed();
    assert_eq!((will.topic.as_str(), will.payload.as_ref()), ("delay/will", &b"gone"[..]));
    assert!(elapsed >= Duration::from_millis(1800), "will published {elapsed:?} after the drop, before its 2 s delay");
    assert!(elapsed < Duration::from_millis(4000), "will published only {elapsed:?} after the drop");
}

// [MQTT-3.1.3-9]: a client that reconnects (clean start 0) within the will delay cancels its
// will.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_within_will_delay_cancels_will_v5() {
    let server = TestServer::start().await;
    let mut watcher = watcher(&server, "cancel-watch", "cancel/will").await;
    let client = connected(&server, connect_with_will("cancel", "cancel/will", 60, Some(2))).await;
    drop(client);
    let resume = Properties { session_expiry_interval: Some(60), ..Default::default() };
    let (_client, connack) = RawClient::connect_v5(server.addr, "cancel", false, resume).await;
    assert!(connack.session_present);
    watcher.expect_nothing(Duration::from_millis(3000)).await;
}

// Section 3.1.3.2.2: the will is published when the session ends, if that comes before the
// will delay: will delay 60 s, session expiry 1 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_published_at_session_end_before_will_delay_v5() {
    let server = TestServer::start().await;
    let mut watcher = watcher(&server, "end-watch", "end/will").await;
    let client = connected(&server, connect_with_will("end", "end/will", 1, Some(60))).await;
    drop(client);
    let dropped = Instant::now();
    let will = watcher.recv_acked().await;
    let elapsed = dropped.elapsed();
    assert_eq!(will.payload.as_ref(), b"gone");
    assert!(
        elapsed >= Duration::from_millis(800),
        "will published {elapsed:?} after the drop, before the session ended"
    );
    assert!(elapsed < Duration::from_millis(3000), "will published only {elapsed:?} after the drop");
}

// Section 3.1.3.2.2: with session expiry 0 the session ends with the connection, so a will
// delay of 60 s does not hold the will back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_delay_does_not_outlast_session_expiry_zero_v5() {
    let server = TestServer::start().await;
    let mut watcher = watcher(&server, "zero-watch", "zero/will").await;
    let client = connected(&server, connect_with_will("zero", "zero/will", 0, Some(60))).await;
    drop(client);
    let dropped = Instant::now();
    assert_eq!(watcher.recv_acked().await.payload.as_ref(), b"gone");
    assert!(dropped.elapsed() < Duration::from_millis(1000), "will held back {:?}", dropped.elapsed());
}

// Section 3.14.2.1 (reason 0x04, Disconnect with Will Message): the client ends the connection
// normally but asks for its will to be published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_with_will_message_publishes_will_v5() {
    let server = TestServer::start().await;
    let mut watcher = watcher(&server, "d04-watch", "d04/will").await;
    let mut client = connected(&server, connect_with_will("d04", "d04/will", 0, None)).await;
    client.send(disconnect_v5(0x04, Properties::default())).await;
    let before = client.expect_closed().await;
    assert!(before.is_empty(), "DISCONNECT was answered: {before:?}");
    assert_eq!(watcher.recv_acked().await.payload.as_ref(), b"gone");
}

// [MQTT-3.14.4-3]: a DISCONNECT with reason 0x00 discards the will, even a delayed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normal_disconnect_discards_will_v5() {
    let server = TestServer::start().await;
    let mut watcher = watcher(&server, "d00-watch", "d00/will").await;
    let client = connected(&server, connect_with_will("d00", "d00/will", 0, None)).await;
    client.disconnect().await;
    let delayed = connected(&server, connect_with_will("d00-delayed", "d00/will", 60, Some(1))).await;
    delayed.disconnect().await;
    watcher.expect_nothing(Duration::from_millis(1500)).await;
}

// [MQTT-3.1.3-10] and section 3.1.3.2: the will properties reach the subscriber: user
// properties in order (duplicate keys included), content type, response topic, correlation
// data, payload format indicator and a message expiry no larger than the one given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_properties_are_passed_on_v5() {
    let server = TestServer::start().await;
    let mut watcher = watcher(&server, "props-watch", "props/will").await;
    let user_properties: Vec<(String, String)> =
        [("k", "1"), ("other", "x"), ("k", "2")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let mut connect = connect_with_will("props", "props/will", 0, None);
    let will = connect.will.as_mut().expect("will");
    will.properties = Properties {
        user_properties: user_properties.clone(),
        content_type: Some("text/plain".to_string()),
        response_topic: Some("props/reply".to_string()),
        correlation_data: Some(Bytes::from_static(b"\x00corr\xFF")),
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(120),
        ..Default::default()
    };
    let client = connected(&server, connect).await;
    drop(client);
    let will = watcher.recv_acked().await;
    let p = &will.properties;
    assert_eq!(p.user_properties, user_properties);
    assert_eq!(p.content_type.as_deref(), Some("text/plain"));
    assert_eq!(p.response_topic.as_deref(), Some("props/reply"));
    assert_eq!(p.correlation_data.as_deref(), Some(&b"\x00corr\xFF"[..]));
    assert_eq!(p.payload_format_indicator, Some(1));
    let expiry = p.message_expiry_interval.expect("message expiry interval dropped");
    assert!((100..=120).contains(&expiry), "message expiry {expiry}, sent 120");
}

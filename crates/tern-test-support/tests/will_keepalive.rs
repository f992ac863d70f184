//! The will message ([MQTT-3.1.2-8] to [MQTT-3.1.2-17]) and keep alive ([MQTT-3.1.2-23],
//! [MQTT-3.1.2-24]): when a will is published and when it is not, and when a silent client
//! is cut off.

use std::time::{Duration, Instant};

use tern_codec::{Connect, Packet, ProtocolVersion, Publish, QoS};
use tern_test_support::*;

const QUIET: Duration = Duration::from_millis(400);

fn connect_with_will(version: ProtocolVersion, client_id: &str, topic: &str, qos: QoS, retain: bool) -> Connect {
    let mut connect = connect(version, client_id, true);
    connect.will = Some(will(topic, b"gone", qos, retain));
    connect
}

/// A client subscribed at QoS 2 to `topic`, so it sees a will at the QoS it was sent with.
async fn subscribe_watcher(server: &TestServer, version: ProtocolVersion, client_id: &str, topic: &str) -> RawClient {
    let (mut watcher, _) = RawClient::connect(server.addr, version, client_id, true).await;
    watcher.subscribe(1, &[(topic, QoS::ExactlyOnce)]).await;
    watcher
}

fn assert_will(publish: &Publish, topic: &str, qos: QoS) {
    assert_eq!((publish.topic.as_str(), publish.payload.as_ref(), publish.qos), (topic, &b"gone"[..], qos));
}

// [MQTT-3.1.2-8]: a connection that ends without DISCONNECT publishes its will, with the will
// QoS.
async fn will_published_when_socket_dropped(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let mut watcher = subscribe_watcher(&server, version, "will-drop-watch", "will-drop/t").await;
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let connect = connect_with_will(version, "will-drop", "will-drop/t", qos, false);
        let (client, connack) = RawClient::connect_with(server.addr, connect).await;
        assert_eq!(connack.code.0, 0);
        drop(client);
        let publish = watcher.recv_acked().await;
        assert_will(&publish, "will-drop/t", qos);
        assert!(!publish.retain, "non-retained will delivered with retain 1");
    }
}

// [MQTT-3.1.2-10]: after DISCONNECT the will is discarded.
async fn will_not_published_after_disconnect(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let mut watcher = subscribe_watcher(&server, version, "will-disc-watch", "will-disc/t").await;
    let connect = connect_with_will(version, "will-disc", "will-disc/t", QoS::AtLeastOnce, true);
    let (client, _) = RawClient::connect_with(server.addr, connect).await;
    client.disconnect().await;
    watcher.expect_nothing(QUIET).await;
    // Nor was it retained.
    let mut later = subscribe_watcher(&server, version, "will-disc-later", "will-disc/t").await;
    later.expect_nothing(Duration::from_millis(100)).await;
}

// [MQTT-3.1.2-17]: a will with will retain 1 is published as a retained message.
async fn retained_will_is_stored_as_retained(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let mut watcher = subscribe_watcher(&server, version, "will-ret-watch", "will-ret/t").await;
    let connect = connect_with_will(version, "will-ret", "will-ret/t", QoS::AtLeastOnce, true);
    let (client, _) = RawClient::connect_with(server.addr, connect).await;
    drop(client);
    // Live delivery first, with retain 0 ([MQTT-3.3.1-9]); by then it is stored.
    let live = watcher.recv_acked().await;
    assert_will(&live, "will-ret/t", QoS::AtLeastOnce);
    let (mut later, _) = RawClient::connect(server.addr, version, "will-ret-later", true).await;
    later.subscribe(1, &[("will-ret/t", QoS::ExactlyOnce)]).await;
    let retained = later.recv_acked().await;
    assert_will(&retained, "will-ret/t", QoS::AtLeastOnce);
    assert!(retained.retain, "retained will sent on SUBSCRIBE without retain 1");
}

// [MQTT-3.1.2-24]: a client silent for 1.5 times its keep alive is disconnected, and its
// will is published.
async fn keep_alive_expiry_closes_and_publishes_will(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let mut watcher = subscribe_watcher(&server, version, "ka-watch", "ka/will").await;
    let mut connect = connect_with_will(version, "ka-silent", "ka/will", QoS::AtLeastOnce, false);
    connect.keep_alive = 1;
    let (mut client, _) = RawClient::connect_with(server.addr, connect).await;
    let connected = Instant::now();
    client.expect_closed_within(Duration::from_secs(3)).await;
    let elapsed = connected.elapsed();
    assert!(elapsed >= Duration::from_millis(1400), "closed after {elapsed:?}, before 1.5 x keep alive");
    assert_will(&watcher.recv_acked().await, "ka/will", QoS::AtLeastOnce);
}

// [MQTT-3.1.2-23]: PINGREQ counts as activity; a client that pings stays connected past the
// keep alive deadline.
async fn pingreq_keeps_connection_alive(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let mut connect = connect(version, "ka-ping", true);
    connect.keep_alive = 1;
    let (mut client, _) = RawClient::connect_with(server.addr, connect).await;
    let connected = Instant::now();
    for _ in 0..3 {
        // The pause is the behaviour under test (time passing), not synchronisation; it also
        // asserts the connection stays open meanwhile.
        client.expect_nothing(Duration::from_millis(500)).await;
        client.send(Packet::PingReq).await;
        assert_eq!(client.recv().await, Packet::PingResp);
    }
    client.expect_nothing(Duration::from_millis(400)).await;
    assert!(connected.elapsed() > Duration::from_millis(1500), "test did not outlast the keep alive deadline");
    client.send(Packet::PingReq).await;
    assert_eq!(client.recv().await, Packet::PingResp);
}

// [MQTT-3.1.4-2], [MQTT-3.1.2-8]: a connection closed by a takeover publishes its will.
async fn will_published_on_takeover(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let mut watcher = subscribe_watcher(&server, version, "will-take-watch", "will-take/t").await;
    let connect = connect_with_will(version, "will-take", "will-take/t", QoS::AtLeastOnce, false);
    let (mut first, _) = RawClient::connect_with(server.addr, connect).await;
    let (_second, _) = RawClient::connect(server.addr, version, "will-take", true).await;
    first.expect_closed().await;
    assert_will(&watcher.recv_acked().await, "will-take/t", QoS::AtLeastOnce);
}

// [MQTT-3.1.2-8]: a connection closed for a protocol error (here a second CONNECT,
// [MQTT-3.1.0-2]) publishes its will.
async fn will_published_on_protocol_error(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let mut watcher = subscribe_watcher(&server, version, "will-err-watch", "will-err/t").await;
    let connect = connect_with_will(version, "will-err", "will-err/t", QoS::AtLeastOnce, false);
    let (mut client, _) = RawClient::connect_with(server.addr, connect.clone()).await;
    client.send(Packet::Connect(Box::new(connect))).await;
    client.expect_closed().await;
    assert_will(&watcher.recv_acked().await, "will-err/t", QoS::AtLeastOnce);
}

// [MQTT-3.1.2-8]: the server closing connections as it shuts down publishes their wills; a
// client still connected receives them before its own connection closes.
async fn will_published_on_server_shutdown(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let mut watcher = subscribe_watcher(&server, version, "will-stop-watch", "will-stop/t").await;
    let connect = connect_with_will(version, "will-stop", "will-stop/t", QoS::AtMostOnce, false);
    let (mut client, _) = RawClient::connect_with(server.addr, connect).await;
    server.stop().await;
    client.expect_closed().await;
    let before_close = watcher.expect_closed().await;
    assert!(
        before_close.iter().any(|p| matches!(p, Packet::Publish(publish) if publish.topic.as_str() == "will-stop/t")),
        "watcher's connection closed without the will; it received {before_close:?}"
    );
}

v3_tests!(
    will_published_when_socket_dropped,
    will_not_published_after_disconnect,
    retained_will_is_stored_as_retained,
    keep_alive_expiry_closes_and_publishes_will,
    pingreq_keeps_connection_alive,
    will_published_on_takeover,
    will_published_on_protocol_error,
    will_published_on_server_shutdown,
);

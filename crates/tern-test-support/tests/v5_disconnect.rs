//! The broker's DISCONNECT ([MQTT-3.14], 5.0 only): before closing a 5.0 connection for a
//! reason of its own it says which, with a reason code; 3.1.1 connections are just closed.
//! Takeover (0x8E), receive maximum (0x93) and topic alias (0x94) errors are proven in
//! v5_connect.rs, v5_flow_control.rs and v5_topic_alias.rs.

use std::time::{Duration, Instant};

use tern_codec::{Packet, Properties, ProtocolVersion, QoS};
use tern_server::Config;
use tern_test_support::*;

async fn connected(server: &TestServer, client_id: &str) -> RawClient {
    RawClient::connect_v5(server.addr, client_id, true, Properties::default()).await.0
}

// [MQTT-3.3.1-4]: a PUBLISH with both QoS bits set is malformed: DISCONNECT 0x81, then close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_qos3_disconnects_with_0x81_v5() {
    let server = TestServer::start().await;
    let mut client = connected(&server, "qos3").await;
    client.send_raw(&raw_publish_v5(0x06, b"qos3/t", Some(1), b"x")).await;
    client.expect_disconnect(0x81).await;
}

// [MQTT-1.5.4-1]: a topic name that is not valid UTF-8 makes the packet malformed: DISCONNECT
// 0x81, and nothing reaches a subscriber.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_topic_disconnects_with_0x81_v5() {
    let server = TestServer::start().await;
    let mut watcher = connected(&server, "utf8-watch").await;
    watcher.subscribe(1, &[("#", QoS::AtMostOnce)]).await;
    let mut client = connected(&server, "utf8-topic").await;
    client.send_raw(&raw_publish_v5(0x00, b"bad/\xFF\xFE", None, b"x")).await;
    client.expect_disconnect(0x81).await;
    watcher.expect_nothing(Duration::from_millis(300)).await;
}

// [MQTT-3.3.4-6]: a PUBLISH from a client must not carry a Subscription Identifier: DISCONNECT
// 0x82 (Protocol Error).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_identifier_from_client_disconnects_with_0x82_v5() {
    let server = TestServer::start().await;
    let mut client = connected(&server, "pub-subid").await;
    let properties = Properties { subscription_identifiers: vec![7], ..Default::default() };
    client.send(publish_v5("pub-subid/t", b"x", QoS::AtLeastOnce, false, Some(1), properties)).await;
    client.expect_disconnect(0x82).await;
}

// [MQTT-3.14.2-2]: a DISCONNECT may not set a non-zero Session Expiry Interval when CONNECT
// had 0 (here: left it out): DISCONNECT 0x82, and the session still ends with the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_raising_zero_session_expiry_is_protocol_error_v5() {
    let server = TestServer::start().await;
    let (mut client, _) = RawClient::connect_v5(server.addr, "raise-expiry", false, Properties::default()).await;
    client.subscribe(1, &[("raise-expiry/t", QoS::AtLeastOnce)]).await;
    let raise = Properties { session_expiry_interval: Some(60), ..Default::default() };
    client.send(disconnect_v5(0x00, raise)).await;
    client.expect_disconnect(0x82).await;
    let (_client, connack) = RawClient::connect_v5(server.addr, "raise-expiry", false, Properties::default()).await;
    assert!(!connack.session_present, "session kept after a refused expiry change");
}

// [MQTT-3.2.2-15], section 4.13 (the Maximum Packet Size in CONNACK): a packet larger than
// limits.max_packet_size gets DISCONNECT 0x95 (Packet too large), whether the whole packet
// is sent or only a fixed header announcing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packet_too_large_disconnects_with_0x95_v5() {
    let mut config = Config::default();
    config.limits.max_packet_size = 1024;
    let server = TestServer::start_with(config).await;
    let mut subscriber = connected(&server, "large-sub").await;
    subscriber.subscribe(1, &[("large/t", QoS::AtMostOnce)]).await;

    let mut client = connected(&server, "large-whole").await;
    client.send_raw(&raw_publish_v5(0x00, b"large/t", None, &[7u8; 2000])).await;
    client.expect_disconnect(0x95).await;
    subscriber.expect_nothing(Duration::from_millis(300)).await;

    let mut client = connected(&server, "large-header").await;
    let mut header = vec![0x30];
    header.extend(remaining_length(10 * 1024 * 1024));
    client.send_raw(&header).await;
    client.expect_disconnect(0x95).await;
}

// [MQTT-3.1.2-22]: a client silent for 1.5 times its keep alive gets DISCONNECT 0x8D (Keep
// Alive timeout) before the close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_timeout_disconnects_with_0x8d_v5() {
    let server = TestServer::start().await;
    let mut connect = connect_v5("ka-timeout", true, Properties::default());
    connect.keep_alive = 1;
    let (mut client, _) = RawClient::connect_with(server.addr, connect).await;
    let connected = Instant::now();
    client.expect_disconnect(0x8D).await;
    let elapsed = connected.elapsed();
    assert!(elapsed >= Duration::from_millis(1400), "disconnected after {elapsed:?}, before 1.5 x keep alive");
}

// Section 3.14.2.1 (0x8B, Server shutting down): a broker that stops tells its 5.0 clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_shutdown_disconnects_with_0x8b_v5() {
    let server = TestServer::start().await;
    let mut client = connected(&server, "shutdown").await;
    server.stop().await;
    client.expect_disconnect(0x8B).await;
}

// [MQTT-3.14.4-1], [MQTT-3.14.4-2]: after a client's DISCONNECT the broker sends nothing and
// closes the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_is_not_answered_v5() {
    let server = TestServer::start().await;
    let mut client = connected(&server, "client-disc").await;
    client.send(disconnect_v5(0x00, Properties::default())).await;
    let before = client.expect_closed().await;
    assert!(before.is_empty(), "client DISCONNECT was answered: {before:?}");
}

// 3.1.1 has no server DISCONNECT: a shutdown, a keep alive timeout and a malformed packet
// close a 3.1.1 connection without sending anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_connections_are_closed_without_disconnect() {
    let version = ProtocolVersion::V3_1_1;
    let server = TestServer::start().await;
    let (mut malformed, _) = RawClient::connect(server.addr, version, "v311-malformed", true).await;
    malformed.send_raw(&raw_publish(0x06, b"v311/t", Some(1), b"x")).await;
    let before = malformed.expect_closed().await;
    assert!(before.is_empty(), "3.1.1 client got {before:?} for a malformed PUBLISH");

    let mut connect = connect(version, "v311-keepalive", true);
    connect.keep_alive = 1;
    let (mut silent, _) = RawClient::connect_with(server.addr, connect).await;
    let (mut stays, _) = RawClient::connect(server.addr, version, "v311-shutdown", true).await;
    let before = silent.expect_closed_within(Duration::from_secs(3)).await;
    assert!(before.is_empty(), "3.1.1 client got {before:?} at its keep alive timeout");

    server.stop().await;
    let before = stays.expect_closed().await;
    assert!(!before.iter().any(|p| matches!(p, Packet::Disconnect(_))), "3.1.1 client got {before:?} at shutdown");
}

//! Per-client publish rate limits: a client that publishes faster than
//! `limits.max_publish_rate` (messages) or `limits.max_publish_bytes_rate` (payload bytes) per
//! second is disconnected, a 5.0 client with DISCONNECT 0x96 (Message rate too high); clients
//! within the rate are unaffected.

use std::time::Duration;

use tern_codec::{Packet, ProtocolVersion, QoS};
use tern_server::Config;
use tern_test_support::{publish, RawClient, TestServer};

async fn server_with(rate: u32, bytes_rate: u32) -> TestServer {
    let mut config = Config::default();
    config.limits.max_publish_rate = rate;
    config.limits.max_publish_bytes_rate = bytes_rate;
    TestServer::start_with(config).await
}

/// Sends `count` QoS 0 publishes of `size` bytes without waiting.
async fn flood(client: &mut RawClient, count: usize, size: usize) {
    for _ in 0..count {
        client.send(publish("rate/t", &vec![0u8; size], QoS::AtMostOnce, false, None)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_rate_exceeded_gets_disconnect_0x96_v5() {
    let server = server_with(5, 0).await;
    let (mut fast, _) = RawClient::connect(server.addr, ProtocolVersion::V5, "rate-fast", true).await;
    flood(&mut fast, 20, 1).await;
    let before_close = fast.expect_closed().await;
    match before_close.last() {
        Some(Packet::Disconnect(disconnect)) => assert_eq!(disconnect.reason_code, 0x96),
        other => panic!("expected DISCONNECT 0x96, got {other:?}"),
    }
    // A client within the rate keeps working.
    let (mut calm, _) = RawClient::connect(server.addr, ProtocolVersion::V5, "rate-calm", true).await;
    calm.subscribe(1, &[("rate/#", QoS::AtMostOnce)]).await;
    calm.send(publish("rate/t", b"ok", QoS::AtMostOnce, false, None)).await;
    assert_eq!(&calm.expect_publish().await.payload[..], b"ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_rate_exceeded_closes_a_311_client() {
    let server = server_with(5, 0).await;
    let (mut fast, _) = RawClient::connect(server.addr, ProtocolVersion::V3_1_1, "rate-fast-311", true).await;
    flood(&mut fast, 20, 1).await;
    // 3.1.1 has no DISCONNECT from the server: the connection is just closed.
    assert!(fast.expect_closed().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byte_rate_exceeded_gets_disconnect_0x96_v5() {
    let server = server_with(0, 1000).await;
    let (mut fast, _) = RawClient::connect(server.addr, ProtocolVersion::V5, "rate-bytes", true).await;
    flood(&mut fast, 5, 400).await;
    match fast.expect_closed().await.last() {
        Some(Packet::Disconnect(disconnect)) => assert_eq!(disconnect.reason_code, 0x96),
        other => panic!("expected DISCONNECT 0x96, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_within_the_rate_is_not_limited() {
    let server = server_with(20, 0).await;
    let (mut steady, _) = RawClient::connect(server.addr, ProtocolVersion::V5, "rate-steady", true).await;
    steady.subscribe(1, &[("rate/#", QoS::AtMostOnce)]).await;
    // 10 messages at once fit the one-second burst; then a paced one after the bucket refills.
    flood(&mut steady, 10, 1).await;
    for _ in 0..10 {
        steady.expect_publish().await;
    }
    steady.expect_nothing(Duration::from_millis(600)).await;
    flood(&mut steady, 10, 1).await;
    for _ in 0..10 {
        steady.expect_publish().await;
    }
}

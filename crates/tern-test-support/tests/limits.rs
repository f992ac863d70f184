//! Configured limits: the maximum packet size, checked from the fixed header, and a slow
//! consumer that must not hold back publishers or other subscribers.

use std::time::{Duration, Instant};

use tern_codec::{Packet, ProtocolVersion, QoS};
use tern_server::Config;
use tern_test_support::*;

const MAX_PACKET_SIZE: usize = 1024;

async fn small_packet_server() -> TestServer {
    let mut config = Config::default();
    config.limits.max_packet_size = MAX_PACKET_SIZE;
    TestServer::start_with(config).await
}

// limits.max_packet_size = 1024: a PUBLISH within it is delivered, a larger one closes the
// connection.
async fn packet_over_max_packet_size_closes(version: ProtocolVersion) {
    let server = small_packet_server().await;
    let (mut subscriber, _) = RawClient::connect(server.addr, version, "size-sub", true).await;
    subscriber.subscribe(1, &[("size/t", QoS::AtMostOnce)]).await;
    let (mut publisher, _) = RawClient::connect(server.addr, version, "size-pub", true).await;
    // 1 + 2 (remaining length) + 2 + 6 (topic) + 1000 = 1011 bytes: within the limit.
    let fits = raw_publish(0, b"size/t", None, &[7u8; 1000]);
    assert!(fits.len() <= MAX_PACKET_SIZE);
    publisher.send_raw(&fits).await;
    assert_eq!(subscriber.expect_publish().await.payload.len(), 1000);

    let too_large = raw_publish(0, b"size/t", None, &[7u8; 2000]);
    publisher.send_raw(&too_large).await;
    let before = publisher.expect_closed().await;
    assert!(before.is_empty(), "oversized PUBLISH was answered: {before:?}");
    subscriber.expect_nothing(Duration::from_millis(300)).await;
}

// The size limit is enforced from the fixed header: announcing 10 MB is enough to be closed,
// without sending the body (before and after CONNECT).
async fn oversized_remaining_length_closes_before_body(version: ProtocolVersion) {
    let server = small_packet_server().await;
    let mut header = vec![0x30];
    header.extend(remaining_length(10 * 1024 * 1024));

    let (mut client, _) = RawClient::connect(server.addr, version, "size-header", true).await;
    let sent = Instant::now();
    client.send_raw(&header).await;
    client.expect_closed_within(Duration::from_secs(1)).await;
    assert!(sent.elapsed() < Duration::from_secs(1));

    let mut connect_header = vec![0x10];
    connect_header.extend(remaining_length(10 * 1024 * 1024));
    let mut client = RawClient::open(server.addr, version).await;
    client.send_raw(&connect_header).await;
    let before = client.expect_closed_within(Duration::from_secs(1)).await;
    assert!(before.is_empty(), "oversized CONNECT was answered: {before:?}");
}

// A QoS 0 subscriber that never reads its socket does not stall a publisher sending 20,000
// messages of 1 KB: the broker keeps reading the publisher (its excess for the slow consumer
// is dropped), and a healthy subscriber is served afterwards.
async fn slow_consumer_does_not_block_publisher(version: ProtocolVersion) {
    const MESSAGES: usize = 20_000;
    let server = TestServer::start().await;
    let (mut stalled, _) = RawClient::connect(server.addr, version, "slow-stalled", true).await;
    stalled.subscribe(1, &[("slow/t", QoS::AtMostOnce)]).await;
    // From here on `stalled` is never read.

    let (mut publisher, _) = RawClient::connect(server.addr, version, "slow-pub", true).await;
    let one = raw_publish(0, b"slow/t", None, &[0x5A; 1024]);
    let mut burst = Vec::with_capacity(one.len() * MESSAGES);
    for _ in 0..MESSAGES {
        burst.extend_from_slice(&one);
    }
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(20), async {
        publisher.send_raw(&burst).await;
        // PINGRESP comes after every PUBLISH before it was read and routed.
        publisher.send(Packet::PingReq).await;
        assert_eq!(publisher.recv().await, Packet::PingResp);
    })
    .await
    .unwrap_or_else(|_| panic!("publisher stalled behind the slow consumer after {:?}", started.elapsed()));

    let (mut healthy, _) = RawClient::connect(server.addr, version, "slow-healthy", true).await;
    healthy.subscribe(1, &[("slow/healthy", QoS::AtLeastOnce)]).await;
    publisher.publish_and_ack("slow/healthy", b"served", QoS::AtLeastOnce, false, 1).await;
    assert_eq!(healthy.recv_acked().await.payload.as_ref(), b"served");
    // The stalled subscription was live all along: its backlog starts with our messages.
    assert_eq!(stalled.expect_publish().await.topic.as_str(), "slow/t");
}

v3_tests!(
    packet_over_max_packet_size_closes,
    oversized_remaining_length_closes_before_body,
    slow_consumer_does_not_block_publisher,
);

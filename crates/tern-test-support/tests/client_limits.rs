//! Per-client limits: client id length, topic length and levels, subscriptions per client.

use tern_codec::{Packet, ProtocolVersion, QoS};
use tern_server::Config;
use tern_test_support::{connect, publish, subscribe, RawClient, TestServer};

async fn server(configure: impl FnOnce(&mut Config)) -> TestServer {
    let mut config = Config::default();
    configure(&mut config);
    TestServer::start_with(config).await
}

async fn suback_codes(client: &mut RawClient, packet_id: u16, filters: &[(&str, QoS)]) -> Vec<u8> {
    client.send(subscribe(packet_id, filters)).await;
    match client.recv().await {
        Packet::SubAck(suback) => suback.return_codes,
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_id_longer_than_the_limit_is_refused() {
    let server = server(|config| config.limits.max_client_id_length = 8).await;
    for (version, code) in [(ProtocolVersion::V3_1_1, 0x02), (ProtocolVersion::V5, 0x85)] {
        let (mut client, connack) = RawClient::connect_with(server.addr, connect(version, "nine-char", true)).await;
        assert_eq!(connack.code.0, code, "{version:?}");
        client.expect_closed().await;
        RawClient::connect(server.addr, version, "eight-ch", true).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_deeper_than_the_limit_closes_the_publisher_and_refuses_the_filter() {
    let server = server(|config| config.limits.max_topic_levels = 3).await;
    for (version, failure) in [(ProtocolVersion::V3_1_1, 0x80), (ProtocolVersion::V5, 0x8F)] {
        let (mut subscriber, _) = RawClient::connect(server.addr, version, "deep-sub", true).await;
        let codes = suback_codes(&mut subscriber, 1, &[("a/b/c/d", QoS::AtMostOnce), ("a/b/c", QoS::AtMostOnce)]).await;
        assert_eq!(codes, vec![failure, 0]);
        let (mut publisher, _) = RawClient::connect(server.addr, version, "deep-pub", true).await;
        publisher.send(publish("a/b/c/d", b"x", QoS::AtMostOnce, false, None)).await;
        let before_close = publisher.expect_closed().await;
        if version == ProtocolVersion::V5 {
            match before_close.last() {
                Some(Packet::Disconnect(disconnect)) => assert_eq!(disconnect.reason_code, 0x90),
                other => panic!("expected DISCONNECT 0x90, got {other:?}"),
            }
        } else {
            assert!(before_close.is_empty());
        }
        subscriber.disconnect().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_longer_than_the_limit_closes_the_publisher() {
    let server = server(|config| config.limits.max_topic_length = 10).await;
    let (mut publisher, _) = RawClient::connect(server.addr, ProtocolVersion::V3_1_1, "long-pub", true).await;
    publisher.send(publish("0123456789a", b"x", QoS::AtMostOnce, false, None)).await;
    assert!(publisher.expect_closed().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_beyond_the_limit_are_refused_but_resubscribing_works() {
    let server = server(|config| config.limits.max_subscriptions_per_client = 2).await;
    for (version, quota) in [(ProtocolVersion::V3_1_1, 0x80), (ProtocolVersion::V5, 0x97)] {
        let (mut client, _) = RawClient::connect(server.addr, version, "many-subs", true).await;
        let codes =
            suback_codes(&mut client, 1, &[("a", QoS::AtMostOnce), ("b", QoS::AtMostOnce), ("c", QoS::AtMostOnce)])
                .await;
        assert_eq!(codes, vec![0, 0, quota]);
        // Replacing an existing subscription is not a new one.
        assert_eq!(suback_codes(&mut client, 2, &[("a", QoS::AtLeastOnce)]).await, vec![1]);
        client.disconnect().await;
    }
}

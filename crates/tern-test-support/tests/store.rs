//! Storage: the conformance suite on the in-memory reference store, and the broker loading
//! its state back from a store after a restart.

use std::sync::Arc;

use tern_codec::{ProtocolVersion, QoS};
use tern_core::{MemoryStore, Store};
use tern_server::Config;
use tern_test_support::{store_conformance, RawClient, TestServer, V3_VERSIONS};

#[test]
fn memory_store_passes_the_conformance_suite() {
    store_conformance(&MemoryStore::default());
}

/// Retained messages and persistent sessions' subscriptions come back from the store when a
/// broker starts on it; clean sessions do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_keeps_retained_messages_and_persistent_subscriptions() {
    for version in V3_VERSIONS {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let server = TestServer::start_with_store(Config::default(), store.clone()).await;
        let (mut persistent, _) = RawClient::connect(server.addr, version, "keeper", false).await;
        persistent.subscribe(1, &[("live/#", QoS::AtLeastOnce)]).await;
        persistent.disconnect().await;
        let (mut clean, _) = RawClient::connect(server.addr, version, "forgetful", true).await;
        clean.subscribe(1, &[("live/#", QoS::AtLeastOnce)]).await;
        clean.publish_and_ack("kept/retained", b"r", QoS::AtLeastOnce, true, 9).await;
        clean.disconnect().await;
        server.stop().await;

        let server = TestServer::start_with_store(Config::default(), store.clone()).await;
        let (mut publisher, _) = RawClient::connect(server.addr, version, "publisher", true).await;
        publisher.publish_and_ack("live/x", b"while offline", QoS::AtLeastOnce, false, 1).await;
        let (mut persistent, connack) = RawClient::connect(server.addr, version, "keeper", false).await;
        // 3.1's CONNACK has no session present flag; the delivery below proves the resume.
        if version == ProtocolVersion::V3_1_1 {
            assert!(connack.session_present, "[MQTT-3.2.2-2] the stored session is resumed");
        }
        let publish = persistent.expect_publish().await;
        assert_eq!(publish.topic.as_str(), "live/x");
        assert_eq!(&publish.payload[..], b"while offline");
        let (mut newcomer, _) = RawClient::connect(server.addr, version, "newcomer", true).await;
        newcomer.subscribe(1, &[("kept/+", QoS::AtLeastOnce)]).await;
        let retained = newcomer.expect_publish().await;
        assert!(retained.retain);
        assert_eq!(&retained.payload[..], b"r");
        let (mut forgetful, connack) = RawClient::connect(server.addr, version, "forgetful", false).await;
        assert!(!connack.session_present, "a clean session is not stored");
        newcomer.publish_and_ack("live/y", b"only for keeper", QoS::AtLeastOnce, false, 2).await;
        assert_eq!(&persistent.expect_publish().await.payload[..], b"only for keeper");
        // The clean session's subscription did not come back: only "keeper" got the message.
        forgetful.expect_nothing(std::time::Duration::from_millis(200)).await;
        server.stop().await;
    }
}

/// A 5.0 session stored because of its expiry interval leaves the store when a DISCONNECT sets
/// the interval to 0 ([MQTT-3.14.2-2] allows lowering it), and when it expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_leaves_the_store_when_disconnect_sets_expiry_zero() {
    use tern_codec::{Disconnect, Packet, Properties};
    let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    let server = TestServer::start_with_store(Config::default(), store.clone()).await;
    let mut connect = tern_test_support::connect(ProtocolVersion::V5, "expiring", false);
    connect.properties.session_expiry_interval = Some(60);
    let (mut client, _) = RawClient::connect_with(server.addr, connect).await;
    client.subscribe(1, &[("e/#", QoS::AtLeastOnce)]).await;
    let stored = store.sessions().expect("sessions");
    assert_eq!(stored.len(), 1);
    let session = tern_core::record::decode_session(&stored[0].client_id, &stored[0].record, tern_core::Clock::now())
        .expect("a session record the broker wrote decodes");
    assert_eq!(session.expiry_interval, 60);
    let properties = Properties { session_expiry_interval: Some(0), ..Properties::default() };
    client.send(Packet::Disconnect(Disconnect { reason_code: 0, properties })).await;
    client.expect_closed().await;
    // The session ended with its connection; a new connection finds none.
    let (_, connack) = RawClient::connect(server.addr, ProtocolVersion::V5, "expiring", false).await;
    assert!(!connack.session_present);
    assert!(store.sessions().expect("sessions").is_empty());
    server.stop().await;
}

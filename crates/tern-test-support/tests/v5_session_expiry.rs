//! Session Expiry Interval (section 3.1.2.11.2, [MQTT-3.1.2-23], [MQTT-3.14.2-2]): how long a
//! 5.0 session, with its subscriptions and queued messages, outlives its connection.

use std::time::Duration;

use tern_codec::{Properties, QoS};
use tern_test_support::*;

const QUIET: Duration = Duration::from_millis(300);

fn expiry(seconds: Option<u32>) -> Properties {
    Properties { session_expiry_interval: seconds, ..Default::default() }
}

/// Connects `client_id` with clean start 0 and `seconds` of session expiry, subscribes it to
/// `topic` at QoS 1, and disconnects normally.
async fn leave_subscribed(server: &TestServer, client_id: &str, seconds: Option<u32>, topic: &str) {
    let (mut client, connack) = RawClient::connect_v5(server.addr, client_id, false, expiry(seconds)).await;
    assert!(!connack.session_present, "{client_id}: a session was already present");
    client.subscribe(1, &[(topic, QoS::AtLeastOnce)]).await;
    client.disconnect().await;
}

/// A publisher that sends one QoS 1 message on `topic`.
async fn publish_one(server: &TestServer, client_id: &str, topic: &str, payload: &[u8]) -> RawClient {
    let (mut publisher, _) = RawClient::connect_v5(server.addr, client_id, true, Properties::default()).await;
    publisher.publish_qos1_v5(topic, payload, 1, Properties::default()).await;
    publisher
}

// [MQTT-3.1.2-23]: with a Session Expiry Interval of 0, or none, the session ends with the
// connection: a reconnect with clean start 0 finds no session, no subscription and no queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_session_expiry_ends_session_at_disconnect_v5() {
    let server = TestServer::start().await;
    for (n, seconds) in [None, Some(0)].into_iter().enumerate() {
        let (id, topic) = (format!("exp0-sub-{n}"), format!("exp0/{n}"));
        leave_subscribed(&server, &id, seconds, &topic).await;
        let _publisher = publish_one(&server, &format!("exp0-pub-{n}"), &topic, b"queued").await;
        let (mut client, connack) = RawClient::connect_v5(server.addr, &id, false, expiry(seconds)).await;
        assert!(!connack.session_present, "expiry {seconds:?}: session outlived its connection");
        client.expect_nothing(QUIET).await;
    }
}

// [MQTT-3.1.2-23]: a session with a non-zero expiry outlives its connection, also when the
// socket is just dropped: a reconnect within the interval finds it (session present 1), with
// the QoS 1 message queued meanwhile and the subscription still in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_kept_within_expiry_interval_v5() {
    let server = TestServer::start().await;
    let (mut client, _) = RawClient::connect_v5(server.addr, "keep-sub", false, expiry(Some(5))).await;
    client.subscribe(1, &[("keep/t", QoS::AtLeastOnce)]).await;
    drop(client);
    let mut publisher = publish_one(&server, "keep-pub", "keep/t", b"queued").await;

    let (mut client, connack) = RawClient::connect_v5(server.addr, "keep-sub", false, expiry(Some(5))).await;
    assert!(connack.session_present, "session lost within its expiry interval");
    assert_eq!(client.recv_acked().await.payload.as_ref(), b"queued");
    publisher.publish_qos1_v5("keep/t", b"live", 2, Properties::default()).await;
    assert_eq!(client.recv_acked().await.payload.as_ref(), b"live");
}

// [MQTT-3.1.2-23], [MQTT-4.1.0-2]: the session lasts its expiry interval and no longer: found
// one second into a two-second interval, gone (with its queued message) three seconds after
// the next disconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expires_after_its_interval_v5() {
    let server = TestServer::start().await;
    leave_subscribed(&server, "expire-sub", Some(2), "expire/t").await;
    let mut publisher = publish_one(&server, "expire-pub", "expire/t", b"early").await;
    // Time passing is the behaviour under test; the publisher's silence is asserted meanwhile.
    publisher.expect_nothing(Duration::from_millis(1000)).await;
    let (mut client, connack) = RawClient::connect_v5(server.addr, "expire-sub", false, expiry(Some(2))).await;
    assert!(connack.session_present, "session gone before its 2 s expiry interval");
    assert_eq!(client.recv_acked().await.payload.as_ref(), b"early");
    client.disconnect().await;

    publisher.publish_qos1_v5("expire/t", b"late", 2, Properties::default()).await;
    publisher.expect_nothing(Duration::from_millis(3000)).await;
    let (mut client, connack) = RawClient::connect_v5(server.addr, "expire-sub", false, expiry(Some(2))).await;
    assert!(!connack.session_present, "session still present 3 s after a 2 s expiry interval");
    client.expect_nothing(QUIET).await;
    // Nor is the subscription in force.
    publisher.publish_qos1_v5("expire/t", b"after", 3, Properties::default()).await;
    client.expect_nothing(QUIET).await;
}

// Section 3.1.2.11.2: 0xFFFFFFFF means the session does not expire (and is not mistaken for
// an overflowing or negative interval).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_session_expiry_keeps_session_v5() {
    let server = TestServer::start().await;
    leave_subscribed(&server, "forever-sub", Some(u32::MAX), "forever/t").await;
    let mut publisher = publish_one(&server, "forever-pub", "forever/t", b"kept").await;
    publisher.expect_nothing(Duration::from_millis(1200)).await;
    let (mut client, connack) = RawClient::connect_v5(server.addr, "forever-sub", false, expiry(Some(u32::MAX))).await;
    assert!(connack.session_present, "session with expiry 0xFFFFFFFF expired");
    assert_eq!(client.recv_acked().await.payload.as_ref(), b"kept");
}

// Section 3.14.2.2.2: DISCONNECT may lower a non-zero Session Expiry Interval to 0, ending
// the session with the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_can_end_session_by_setting_expiry_zero_v5() {
    let server = TestServer::start().await;
    let (mut client, _) = RawClient::connect_v5(server.addr, "lower-sub", false, expiry(Some(60))).await;
    client.subscribe(1, &[("lower/t", QoS::AtLeastOnce)]).await;
    client.send(disconnect_v5(0x00, expiry(Some(0)))).await;
    let before = client.expect_closed().await;
    assert!(before.is_empty(), "DISCONNECT was answered: {before:?}");
    let _publisher = publish_one(&server, "lower-pub", "lower/t", b"queued").await;
    let (mut client, connack) = RawClient::connect_v5(server.addr, "lower-sub", false, expiry(Some(60))).await;
    assert!(!connack.session_present, "session kept after DISCONNECT set its expiry to 0");
    client.expect_nothing(QUIET).await;
}

// Section 3.14.2.2.2 ([MQTT-3.14.2-2] forbids only 0 to non-zero): DISCONNECT may raise a
// non-zero interval; the session then outlives the interval given in CONNECT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_can_extend_nonzero_session_expiry_v5() {
    let server = TestServer::start().await;
    let (mut client, _) = RawClient::connect_v5(server.addr, "raise-sub", false, expiry(Some(1))).await;
    client.subscribe(1, &[("raise/t", QoS::AtLeastOnce)]).await;
    client.send(disconnect_v5(0x00, expiry(Some(60)))).await;
    let before = client.expect_closed().await;
    assert!(before.is_empty(), "DISCONNECT was answered: {before:?}");
    let mut publisher = publish_one(&server, "raise-pub", "raise/t", b"queued").await;
    publisher.expect_nothing(Duration::from_millis(2000)).await;
    let (mut client, connack) = RawClient::connect_v5(server.addr, "raise-sub", false, expiry(Some(60))).await;
    assert!(connack.session_present, "session expired after the 1 s of CONNECT despite DISCONNECT's 60 s");
    assert_eq!(client.recv_acked().await.payload.as_ref(), b"queued");
}

// [MQTT-3.1.2-4]: clean start 1 discards an existing session whatever its expiry: no session
// present, no subscriptions, no queued messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_start_discards_unexpired_session_v5() {
    let server = TestServer::start().await;
    leave_subscribed(&server, "clean-sub", Some(60), "clean/t").await;
    let mut publisher = publish_one(&server, "clean-pub", "clean/t", b"queued").await;
    let (mut client, connack) = RawClient::connect_v5(server.addr, "clean-sub", true, expiry(Some(60))).await;
    assert!(!connack.session_present, "clean start 1 answered with session present 1");
    client.expect_nothing(QUIET).await;
    publisher.publish_qos1_v5("clean/t", b"live", 2, Properties::default()).await;
    client.expect_nothing(QUIET).await;
}

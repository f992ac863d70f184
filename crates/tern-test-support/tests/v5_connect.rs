//! MQTT 5.0 CONNECT and CONNACK ([MQTT-3.1], [MQTT-3.2]): what the broker advertises, the
//! identifier it assigns, Server Keep Alive, Response Information, and refusals with 5.0
//! reason codes.

use std::time::{Duration, Instant};

use tern_codec::{Packet, Properties, ProtocolVersion};
use tern_server::Config;
use tern_test_support::*;

// Section 3.2.2.3: a successful 5.0 CONNACK advertises the broker's limits
// and features, and carries no reason string.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connack_advertises_limits_and_features_v5() {
    let server = TestServer::start().await;
    let (_client, connack) = RawClient::connect_v5(server.addr, "caps", true, Properties::default()).await;
    assert!(!connack.session_present);
    let p = &connack.properties;
    let expected_packet_size = u32::try_from(Config::default().limits.max_packet_size).expect("fits in u32");
    assert_eq!(p.receive_maximum, Some(256), "{p:?}");
    assert_eq!(p.maximum_packet_size, Some(expected_packet_size), "{p:?}");
    assert_eq!(p.topic_alias_maximum, Some(64), "{p:?}");
    assert_eq!(p.retain_available, Some(1), "{p:?}");
    assert_eq!(p.wildcard_subscription_available, Some(1), "{p:?}");
    assert_eq!(p.subscription_identifier_available, Some(1), "{p:?}");
    assert_eq!(p.shared_subscription_available, Some(1), "{p:?}");
    assert_eq!(p.reason_string, None, "successful CONNACK with a reason string: {p:?}");
    assert_eq!(p.assigned_client_identifier, None, "identifier assigned to a client that chose one: {p:?}");
    assert_eq!(p.server_keep_alive, None, "no maximum keep alive is configured: {p:?}");
    assert_eq!(p.response_information, None, "response information nobody asked for: {p:?}");
}

// Section 3.2.2.3: the advertised values follow the configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connack_advertises_configured_limits_v5() {
    let mut config = Config::default();
    config.limits.receive_maximum = 10;
    config.limits.topic_alias_maximum = 5;
    config.limits.max_packet_size = 2048;
    let server = TestServer::start_with(config).await;
    let (_client, connack) = RawClient::connect_v5(server.addr, "caps-config", true, Properties::default()).await;
    let p = &connack.properties;
    assert_eq!((p.receive_maximum, p.topic_alias_maximum, p.maximum_packet_size), (Some(10), Some(5), Some(2048)));
}

// [MQTT-3.1.3-6], [MQTT-3.1.3-7]: an empty client identifier is given a unique identifier,
// returned as Assigned Client Identifier; in 5.0 this holds with clean start 0 as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_client_id_gets_assigned_identifier_v5() {
    let server = TestServer::start().await;
    let mut assigned = Vec::new();
    // Kept open so that both identifiers are in use at once.
    let mut clients = Vec::new();
    for clean_start in [true, false] {
        let (client, connack) = RawClient::connect_v5(server.addr, "", clean_start, Properties::default()).await;
        let id = connack.properties.assigned_client_identifier.clone();
        let id = id.unwrap_or_else(|| panic!("clean start {clean_start}: no assigned identifier: {connack:?}"));
        assert!(!id.is_empty(), "assigned identifier is empty");
        assert!(!connack.session_present);
        assigned.push(id);
        clients.push(client);
    }
    assert_ne!(assigned[0], assigned[1], "two clients were assigned the same identifier");
}

// Section 3.2.2.3.14: with limits.max_keep_alive configured, a client asking for no keep
// alive or a longer one is told Server Keep Alive; a shorter one is kept as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_keep_alive_caps_client_keep_alive_v5() {
    let mut config = Config::default();
    config.limits.max_keep_alive = 30;
    let server = TestServer::start_with(config).await;
    for (asked, told) in [(0, Some(30)), (60, Some(30)), (30, None), (10, None)] {
        let mut connect = connect_v5(&format!("ska-{asked}"), true, Properties::default());
        connect.keep_alive = asked;
        let (_client, connack) = RawClient::connect_with(server.addr, connect).await;
        assert_eq!(connack.code.0, 0);
        if let Some(told) = told {
            assert_eq!(connack.properties.server_keep_alive, Some(told), "keep alive {asked}: {connack:?}");
        } else {
            // Telling the client its own value is allowed too; anything else is not.
            let server_keep_alive = connack.properties.server_keep_alive;
            assert!(server_keep_alive.is_none() || server_keep_alive == Some(asked), "keep alive {asked}: {connack:?}");
        }
    }
}

// [MQTT-3.1.2-21], [MQTT-3.1.2-22]: the connection is held to the Server Keep Alive: a client that asked for no
// keep alive and stays silent is disconnected with 0x8D (Keep Alive timeout) after 1.5 times
// the server's value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_keep_alive_is_enforced_v5() {
    let mut config = Config::default();
    config.limits.max_keep_alive = 1;
    let server = TestServer::start_with(config).await;
    let mut connect = connect_v5("ska-enforced", true, Properties::default());
    connect.keep_alive = 0;
    let (mut client, connack) = RawClient::connect_with(server.addr, connect).await;
    assert_eq!(connack.properties.server_keep_alive, Some(1));
    let connected = Instant::now();
    client.expect_disconnect(0x8D).await;
    let elapsed = connected.elapsed();
    assert!(elapsed >= Duration::from_millis(1400), "disconnected after {elapsed:?}, before 1.5 x keep alive");
    assert!(elapsed < Duration::from_secs(3), "disconnected only after {elapsed:?}");
}

// [MQTT-3.1.2-28]: Response Information is sent only to a client that asks for it with
// Request Response Information 1; `{client_id}` is replaced by the client identifier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_information_only_when_requested_v5() {
    let mut config = Config::default();
    config.mqtt.response_information = Some("responses/{client_id}".to_string());
    let server = TestServer::start_with(config).await;
    let asks = Properties { request_response_information: Some(1), ..Default::default() };
    let (_client, connack) = RawClient::connect_v5(server.addr, "rr-asker", true, asks).await;
    assert_eq!(connack.properties.response_information.as_deref(), Some("responses/rr-asker"), "{connack:?}");

    let (_client, connack) = RawClient::connect_v5(server.addr, "rr-silent", true, Properties::default()).await;
    assert_eq!(connack.properties.response_information, None, "{connack:?}");
    let declines = Properties { request_response_information: Some(0), ..Default::default() };
    let (_client, connack) = RawClient::connect_v5(server.addr, "rr-declines", true, declines).await;
    assert_eq!(connack.properties.response_information, None, "{connack:?}");
}

/// Sends `connect` on a fresh socket and returns the CONNACK, asserting the broker then closes.
async fn refused(server: &TestServer, connect: tern_codec::Connect) -> tern_codec::ConnAck {
    let (mut client, connack) = RawClient::connect_with(server.addr, connect).await;
    let after = client.expect_closed().await;
    assert!(after.is_empty(), "packets after a refusing CONNACK: {after:?}");
    connack
}

// [MQTT-3.2.2-7], [MQTT-3.2.2-8] (reason code 0x97, Quota exceeded): beyond limits.max_connections a 5.0
// client is refused with 0x97, then closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_exceeded_refused_with_0x97_v5() {
    let mut config = Config::default();
    config.limits.max_connections = 1;
    let server = TestServer::start_with(config).await;
    let (mut first, _) = RawClient::connect_v5(server.addr, "quota-1", true, Properties::default()).await;
    let connack = refused(&server, connect_v5("quota-2", true, Properties::default())).await;
    assert_eq!(connack.code.0, 0x97, "{connack:?}");
    // The first connection is unaffected.
    first.send(Packet::PingReq).await;
    assert_eq!(first.recv().await, Packet::PingResp);
}

// Section 4.12: enhanced authentication is not supported, so an Authentication Method is
// refused with 0x8C (Bad authentication method) [MQTT-4.12.0-1].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_method_refused_with_0x8c_v5() {
    let server = TestServer::start().await;
    let properties = Properties { authentication_method: Some("SCRAM-SHA-1".to_string()), ..Default::default() };
    let connack = refused(&server, connect_v5("auth-method", true, properties)).await;
    assert_eq!(connack.code.0, 0x8C, "{connack:?}");
}

// Section 3.1.2.11.7 ([MQTT-3.1.2-29]): with Request Problem Information 0 the broker may
// still explain a refusal on CONNACK; Tern's policy is not to: no reason string, no user
// properties.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusal_without_problem_information_has_no_reason_string_v5() {
    let server = TestServer::start().await;
    let properties = Properties {
        authentication_method: Some("SCRAM-SHA-1".to_string()),
        request_problem_information: Some(0),
        ..Default::default()
    };
    let connack = refused(&server, connect_v5("auth-quiet", true, properties)).await;
    assert_eq!(connack.code.0, 0x8C, "{connack:?}");
    assert_eq!(connack.properties.reason_string, None, "{connack:?}");
    assert!(connack.properties.user_properties.is_empty(), "{connack:?}");
}

// [MQTT-3.1.4-3]: a second connection with the same client identifier takes over; the first is
// sent DISCONNECT 0x8E (Session taken over) and closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeover_sends_disconnect_0x8e_to_old_connection_v5() {
    let server = TestServer::start().await;
    let (mut first, _) = RawClient::connect_v5(server.addr, "takeover", true, Properties::default()).await;
    let (mut second, _) = RawClient::connect_v5(server.addr, "takeover", true, Properties::default()).await;
    first.expect_disconnect(0x8E).await;
    second.send(Packet::PingReq).await;
    assert_eq!(second.recv().await, Packet::PingResp);
}

// [MQTT-3.1.0-2]: a second CONNECT is a protocol error: DISCONNECT 0x82, then close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_connect_disconnects_with_0x82_v5() {
    let server = TestServer::start().await;
    let (mut client, _) = RawClient::connect_v5(server.addr, "second-connect", true, Properties::default()).await;
    client.send(Packet::Connect(Box::new(connect_v5("second-connect", true, Properties::default())))).await;
    client.expect_disconnect(0x82).await;
}

// A 3.1.1 client taken over is closed without a DISCONNECT, which 3.1.1 servers never send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeover_closes_v311_connection_without_disconnect() {
    let server = TestServer::start().await;
    let (mut first, _) = RawClient::connect(server.addr, ProtocolVersion::V3_1_1, "takeover-311", true).await;
    let (_second, _) = RawClient::connect(server.addr, ProtocolVersion::V3_1_1, "takeover-311", true).await;
    let before = first.expect_closed().await;
    assert!(before.is_empty(), "3.1.1 connection got {before:?} before the close");
}

//! CONNECT and CONNACK ([MQTT-3.1], [MQTT-3.2]): what a client must send first, which CONNECTs
//! are refused and how, session present, takeover and the connection limit.

use std::time::{Duration, Instant};

use tern_codec::{Packet, ProtocolVersion, QoS};
use tern_server::Config;
use tern_test_support::*;

/// Client id length that MQTT 3.1 still allows (1 to 23 characters).
const ID_23: &str = "abcdefghijklmnopqrstuvw";
const ID_24: &str = "abcdefghijklmnopqrstuvwx";

/// Sends `bytes` on a fresh socket and returns what the broker sent before closing it.
async fn send_and_expect_close(server: &TestServer, version: ProtocolVersion, bytes: &[u8]) -> Vec<Packet> {
    let mut client = RawClient::open(server.addr, version).await;
    client.send_raw(bytes).await;
    client.expect_closed().await
}

/// CONNECT flags with only clean session set.
const CLEAN: u8 = 0b0000_0010;

// [MQTT-3.1.0-1]: a first packet other than CONNECT closes the connection, unanswered.
async fn first_packet_not_connect_closes_without_response(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let not_connect = [
        Packet::PingReq,
        publish("first/not-connect", b"x", QoS::AtMostOnce, false, None),
        subscribe(1, &[("first/not-connect", QoS::AtMostOnce)]),
    ];
    for packet in not_connect {
        let name = packet.name();
        let mut client = RawClient::open(server.addr, version).await;
        client.send(packet).await;
        let before = client.expect_closed().await;
        assert!(before.is_empty(), "{name} as first packet was answered: {before:?}");
    }
}

// [MQTT-3.1.0-2]: a second CONNECT is a protocol violation.
async fn second_connect_closes_connection(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut client, _) = RawClient::connect(server.addr, version, "second-connect", true).await;
    client.send(Packet::Connect(Box::new(connect(version, "second-connect", true)))).await;
    let before = client.expect_closed().await;
    assert!(before.is_empty(), "second CONNECT was answered: {before:?}");
}

// A socket that never sends CONNECT is closed after limits.connect_timeout_secs.
async fn silent_socket_closed_after_connect_timeout(version: ProtocolVersion) {
    let mut config = Config::default();
    config.limits.connect_timeout_secs = 1;
    let server = TestServer::start_with(config).await;
    let mut client = RawClient::open(server.addr, version).await;
    let opened = Instant::now();
    let before = client.expect_closed_within(Duration::from_secs(3)).await;
    assert!(before.is_empty(), "silent socket got {before:?}");
    assert!(
        opened.elapsed() >= Duration::from_millis(900),
        "closed after {:?}, before the 1 s connect timeout",
        opened.elapsed()
    );
}

// [MQTT-3.1.2-2]: an unsupported protocol level gets CONNACK 0x01, then the connection closes.
async fn unsupported_protocol_level_gets_connack_0x01_then_close(version: ProtocolVersion) {
    let server = TestServer::start().await;
    for level in [2, 6] {
        let bytes = raw_connect(version.protocol_name(), level, CLEAN, &[b"bad-level"]);
        let before = send_and_expect_close(&server, version, &bytes).await;
        match before.as_slice() {
            [Packet::ConnAck(connack)] => {
                assert_eq!(connack.code.0, 0x01, "level {level}: {connack:?}")
            }
            other => {
                panic!("level {level}: expected one CONNACK 0x01 before the close, got {other:?}")
            }
        }
    }
}

// [MQTT-3.1.2-1]: a protocol name other than "MQTT"/"MQIsdp" is not accepted.
async fn unknown_protocol_name_closes(version: ProtocolVersion) {
    let server = TestServer::start().await;
    for name in ["MQTX", "HTTP", ""] {
        let bytes = raw_connect(name, version.level(), CLEAN, &[b"bad-name"]);
        let before = send_and_expect_close(&server, version, &bytes).await;
        assert!(
            !before.iter().any(|p| matches!(p, Packet::ConnAck(c) if c.code.0 == 0)),
            "protocol name {name:?} was accepted: {before:?}"
        );
    }
}

// [MQTT-3.1.2-3]: the reserved CONNECT flag must be 0.
async fn connect_reserved_flag_closes(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let bytes = raw_connect(version.protocol_name(), version.level(), CLEAN | 0b1, &[b"reserved-flag"]);
    let before = send_and_expect_close(&server, version, &bytes).await;
    assert!(before.is_empty(), "CONNECT with the reserved flag was answered: {before:?}");
}

// [MQTT-3.1.2-11], [MQTT-3.1.2-13], [MQTT-3.1.2-15]: without the will flag, will QoS and will
// retain must be 0 (and [MQTT-3.1.2-14]: will QoS 3 is never valid).
async fn will_qos_or_retain_without_will_flag_closes(version: ProtocolVersion) {
    let server = TestServer::start().await;
    for (what, flags) in [
        ("will QoS 1", 0b0000_1000),
        ("will QoS 2", 0b0001_0000),
        ("will QoS 3", 0b0001_1000),
        ("will retain", 0b0010_0000),
    ] {
        let bytes = raw_connect(version.protocol_name(), version.level(), CLEAN | flags, &[b"will-flags"]);
        let before = send_and_expect_close(&server, version, &bytes).await;
        assert!(before.is_empty(), "{what} without the will flag was answered: {before:?}");
    }
}

// [MQTT-3.1.2-22]: the password flag requires the user name flag.
async fn password_without_username_closes(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let bytes = raw_connect(version.protocol_name(), version.level(), CLEAN | 0b0100_0000, &[b"pw-no-user", b"secret"]);
    let before = send_and_expect_close(&server, version, &bytes).await;
    assert!(before.is_empty(), "password without user name was answered: {before:?}");
}

// [MQTT-3.1.3-6]: 3.1.1 assigns an id to an empty one with clean session 1; 3.1 requires
// 1 to 23 characters, so it refuses with 0x02.
async fn empty_client_id_with_clean_session(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut client, connack) = RawClient::connect_with(server.addr, connect(version, "", true)).await;
    if version == ProtocolVersion::V3_1 {
        assert_eq!(connack.code.0, 0x02, "{connack:?}");
        client.expect_closed().await;
    } else {
        assert_eq!(connack.code.0, 0x00, "{connack:?}");
        assert!(!connack.session_present);
        // The connection works: a round trip through the broker.
        client.subscribe(1, &[("empty-id/echo", QoS::AtMostOnce)]).await;
        client.publish_and_ack("empty-id/echo", b"hi", QoS::AtMostOnce, false, 1).await;
        assert_eq!(client.expect_publish().await.payload.as_ref(), b"hi");
    }
}

// [MQTT-3.1.3-8]: an empty client id with clean session 0 gets 0x02, then the close.
async fn empty_client_id_without_clean_session_rejected(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut client, connack) = RawClient::connect_with(server.addr, connect(version, "", false)).await;
    assert_eq!(connack.code.0, 0x02, "{connack:?}");
    assert!(!connack.session_present);
    client.expect_closed().await;
}

// MQTT 3.1 allows client ids of 1 to 23 characters (0x02 beyond); 3.1.1 allows longer ones.
async fn client_id_length_limit_of_31(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (_client, connack) = RawClient::connect_with(server.addr, connect(version, ID_23, true)).await;
    assert_eq!(connack.code.0, 0x00, "23 characters: {connack:?}");
    let (mut client, connack) = RawClient::connect_with(server.addr, connect(version, ID_24, true)).await;
    if version == ProtocolVersion::V3_1 {
        assert_eq!(connack.code.0, 0x02, "24 characters on 3.1: {connack:?}");
        client.expect_closed().await;
    } else {
        assert_eq!(connack.code.0, 0x00, "24 characters on 3.1.1: {connack:?}");
    }
}

// [MQTT-3.2.2-1]: session present is 0 with clean session 1, even when a persistent session
// existed (it is discarded).
async fn session_present_0_for_clean_session(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (_, connack) = RawClient::connect(server.addr, version, "sp-clean", true).await;
    assert!(!connack.session_present);
    let (client, _) = RawClient::connect(server.addr, version, "sp-clean-2", false).await;
    client.disconnect().await;
    let (_, connack) = RawClient::connect(server.addr, version, "sp-clean-2", true).await;
    assert!(!connack.session_present, "clean session resumed a session");
}

// [MQTT-3.2.2-2]: session present is 1 when a persistent session is resumed. MQTT 3.1 has no
// session present flag (its CONNACK byte is reserved and must stay 0).
async fn session_present_1_when_resuming(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (client, _) = RawClient::connect(server.addr, version, "sp-resume", false).await;
    client.disconnect().await;
    let (_, connack) = RawClient::connect(server.addr, version, "sp-resume", false).await;
    assert_eq!(connack.session_present, version == ProtocolVersion::V3_1_1, "{connack:?}");
}

// [MQTT-3.2.2-3]: session present is 0 for a new persistent session.
async fn session_present_0_for_new_persistent_session(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (_, connack) = RawClient::connect(server.addr, version, "sp-new", false).await;
    assert!(!connack.session_present, "{connack:?}");
}

// [MQTT-3.1.4-2]: a second connection with the same client id closes the first; the new one
// works.
async fn takeover_closes_first_connection(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut first, _) = RawClient::connect(server.addr, version, "takeover", true).await;
    let (mut second, _) = RawClient::connect(server.addr, version, "takeover", true).await;
    first.expect_closed().await;
    second.subscribe(1, &[("takeover/echo", QoS::AtLeastOnce)]).await;
    second.publish_and_ack("takeover/echo", b"still here", QoS::AtMostOnce, false, 1).await;
    assert_eq!(second.expect_publish().await.payload.as_ref(), b"still here");
}

// [MQTT-3.1.4-2], [MQTT-3.2.2-2]: with clean session 0 the subscriptions survive a takeover.
async fn takeover_keeps_persistent_subscriptions(version: ProtocolVersion) {
    let server = TestServer::start().await;
    let (mut first, _) = RawClient::connect(server.addr, version, "takeover-keep", false).await;
    first.subscribe(1, &[("takeover-keep/t", QoS::AtLeastOnce)]).await;
    let (mut second, connack) = RawClient::connect(server.addr, version, "takeover-keep", false).await;
    assert_eq!(connack.session_present, version == ProtocolVersion::V3_1_1);
    first.expect_closed().await;
    let (mut publisher, _) = RawClient::connect(server.addr, version, "takeover-keep-pub", true).await;
    publisher.publish_and_ack("takeover-keep/t", b"kept", QoS::AtLeastOnce, false, 1).await;
    let publish = second.recv_acked().await;
    assert_eq!(
        (publish.topic.as_str(), publish.payload.as_ref(), publish.qos),
        ("takeover-keep/t", &b"kept"[..], QoS::AtLeastOnce)
    );
}

// limits.max_connections = 2: a third client gets CONNACK 0x03 (server unavailable), then
// the close; the first two keep working.
async fn max_connections_refuses_with_server_unavailable(version: ProtocolVersion) {
    let mut config = Config::default();
    config.limits.max_connections = 2;
    let server = TestServer::start_with(config).await;
    let (mut first, _) = RawClient::connect(server.addr, version, "max-conn-1", true).await;
    let (mut second, _) = RawClient::connect(server.addr, version, "max-conn-2", true).await;
    let (mut third, connack) = RawClient::connect_with(server.addr, connect(version, "max-conn-3", true)).await;
    assert_eq!(connack.code.0, 0x03, "{connack:?}");
    third.expect_closed().await;
    first.subscribe(1, &[("max-conn/t", QoS::AtMostOnce)]).await;
    second.publish_and_ack("max-conn/t", b"ok", QoS::AtLeastOnce, false, 1).await;
    assert_eq!(first.expect_publish().await.payload.as_ref(), b"ok");
}

v3_tests!(
    first_packet_not_connect_closes_without_response,
    second_connect_closes_connection,
    silent_socket_closed_after_connect_timeout,
    unsupported_protocol_level_gets_connack_0x01_then_close,
    unknown_protocol_name_closes,
    connect_reserved_flag_closes,
    will_qos_or_retain_without_will_flag_closes,
    password_without_username_closes,
    empty_client_id_with_clean_session,
    empty_client_id_without_clean_session_rejected,
    client_id_length_limit_of_31,
    session_present_0_for_clean_session,
    session_present_1_when_resuming,
    session_present_0_for_new_persistent_session,
    takeover_closes_first_connection,
    takeover_keeps_persistent_subscriptions,
    max_connections_refuses_with_server_unavailable,
);

//! The broker's transports end to end: MQTT over TLS (and mutual TLS, with the certificate's
//! Common Name as the user name), over WebSocket and secure WebSocket, behind a PROXY protocol
//! header, and the per-listener connection cap and rate. Certificates are made per test in a
//! temporary directory.

use std::net::SocketAddr;
use std::time::Duration;

use tempfile::TempDir;
use tern_codec::{ConnAck, Packet, Properties, ProtocolVersion, QoS};
use tern_server::{AuthConfig, CertificateUsername, Config, HttpHookConfig, ListenerConfig, ListenerProtocol};
use tern_test_support::secure::{tls_connect, websocket, Pki, TLS12, TLS13};
use tern_test_support::*;
use tokio::net::TcpStream;

fn listener(protocol: ListenerProtocol) -> ListenerConfig {
    ListenerConfig::new(protocol, SocketAddr::from(([127, 0, 0, 1], 0)))
}

fn config(listeners: Vec<ListenerConfig>, auth: AuthConfig) -> Config {
    Config { listeners, auth, ..Config::default() }
}

fn connect(version: ProtocolVersion, client_id: &str) -> tern_codec::Connect {
    match version {
        ProtocolVersion::V5 => connect_v5(client_id, true, Properties::default()),
        _ => tern_test_support::connect(version, client_id, true),
    }
}

/// "Not authorized" in SUBACK: 0x80 (3.1.1, failure) or 0x87 (5.0).
fn suback_refused(version: ProtocolVersion) -> u8 {
    if version == ProtocolVersion::V5 {
        0x87
    } else {
        0x80
    }
}

fn assert_accepted(connack: &ConnAck, who: &str) {
    assert_eq!(connack.code.0, 0, "CONNACK refused for {who}: {connack:?}");
}

/// Subscribes `subscriber` to `topic`, publishes `payload` there at QoS 1 from `publisher`, and
/// checks the subscriber receives it.
async fn round_trip(subscriber: &mut RawClient, publisher: &mut RawClient, topic: &str, payload: &[u8]) {
    subscriber.subscribe(1, &[(topic, QoS::AtLeastOnce)]).await;
    publisher.publish_and_ack(topic, payload, QoS::AtLeastOnce, false, 7).await;
    let publish = subscriber.recv_acked().await;
    assert_eq!((publish.topic.as_str(), &publish.payload[..]), (topic, payload));
}

async fn tls_client(
    addr: SocketAddr,
    pki: &Pki,
    tls: &'static rustls::SupportedProtocolVersion,
    id: &str,
    version: ProtocolVersion,
) -> RawClient {
    let stream = tls_connect(addr, pki.client_config(tls, None)).await.expect("TLS handshake");
    let (client, connack) = RawClient::connect_over(stream, connect(version, id)).await;
    assert_accepted(&connack, id);
    client
}

// An mqtts listener carries MQTT over TLS 1.2 and 1.3 for 3.1.1 and 5.0 clients.
async fn mqtts_round_trip(version: ProtocolVersion) {
    let dir = TempDir::new().expect("temporary directory");
    let pki = Pki::new("Tern test CA");
    let mut mqtts = listener(ListenerProtocol::Mqtts);
    mqtts.tls = Some(pki.tls_config(dir.path(), false));
    let server = TestServer::start_with(config(vec![mqtts], AuthConfig::default())).await;
    let mut subscriber = tls_client(server.addr, &pki, &TLS13, "tls-sub", version).await;
    let mut publisher = tls_client(server.addr, &pki, &TLS12, "tls-pub", version).await;
    round_trip(&mut subscriber, &mut publisher, "tls/t", b"over tls").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtts_round_trip_v311() {
    mqtts_round_trip(ProtocolVersion::V3_1_1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtts_round_trip_v5() {
    mqtts_round_trip(ProtocolVersion::V5).await;
}

// require_client_certificate: a client without a certificate never gets to MQTT (TLS 1.2: its
// handshake fails; TLS 1.3: the client's side completes first, then the server's alert closes
// it before any CONNACK); one with a certificate from the CA connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_requires_a_client_certificate() {
    let dir = TempDir::new().expect("temporary directory");
    let pki = Pki::new("Tern test CA");
    let mut mqtts = listener(ListenerProtocol::Mqtts);
    mqtts.tls = Some(tern_server::TlsConfig { require_client_certificate: true, ..pki.tls_config(dir.path(), true) });
    let server = TestServer::start_with(config(vec![mqtts], AuthConfig::default())).await;

    let refused = tls_connect(server.addr, pki.client_config(&TLS12, None)).await;
    assert!(refused.is_err(), "TLS 1.2 handshake without a client certificate succeeded");
    if let Ok(stream) = tls_connect(server.addr, pki.client_config(&TLS13, None)).await {
        let mut client = RawClient::over(stream, ProtocolVersion::V3_1_1);
        client.send(Packet::Connect(Box::new(connect(ProtocolVersion::V3_1_1, "no-cert")))).await;
        let before = client.expect_closed().await;
        assert!(before.is_empty(), "a client without a certificate was answered: {before:?}");
    }

    let identity = pki.client("device-7");
    for tls in [&TLS12, &TLS13] {
        let stream = tls_connect(server.addr, pki.client_config(tls, Some(&identity))).await.expect("handshake");
        let (client, connack) = RawClient::connect_over(stream, connect(ProtocolVersion::V5, "with-cert")).await;
        assert_accepted(&connack, "with-cert");
        client.disconnect().await;
    }
}

// username_from_certificate = "cn": the client is the certificate's CN (whatever its CONNECT
// says), so an ACL granting user cn-user `cn-user/#` lets it publish and subscribe there and
// nowhere else. An anonymous TCP client allowed to read everything watches what gets through.
async fn certificate_cn_is_the_acl_user(version: ProtocolVersion) {
    let dir = TempDir::new().expect("temporary directory");
    let pki = Pki::new("Tern test CA");
    let acl = dir.path().join("acl");
    std::fs::write(&acl, "topic read #\n\nuser cn-user\ntopic readwrite cn-user/#\n").expect("write ACL");
    let mut mqtts = listener(ListenerProtocol::Mqtts);
    mqtts.tls = Some(tern_server::TlsConfig {
        require_client_certificate: true,
        username_from_certificate: Some(CertificateUsername::Cn),
        ..pki.tls_config(dir.path(), true)
    });
    let auth = AuthConfig { acl_file: Some(acl), ..AuthConfig::default() };
    let server = TestServer::start_with(config(vec![mqtts, listener(ListenerProtocol::Mqtt)], auth)).await;

    let (mut watcher, _) = RawClient::connect(server.addrs[1], ProtocolVersion::V3_1_1, "watcher", true).await;
    watcher.subscribe(1, &[("#", QoS::AtMostOnce)]).await;
    let identity = pki.client("cn-user");
    let stream = tls_connect(server.addr, pki.client_config(&TLS13, Some(&identity))).await.expect("handshake");
    let connect = tern_codec::Connect { username: Some("someone-else".into()), ..connect(version, "cn-client") };
    let (mut client, connack) = RawClient::connect_over(stream, connect).await;
    assert_accepted(&connack, "cn-client");

    client.subscribe(1, &[("cn-user/#", QoS::AtLeastOnce)]).await;
    client.send(tern_test_support::subscribe(2, &[("other/#", QoS::AtLeastOnce)])).await;
    assert_eq!(client.expect_suback().await.return_codes, [suback_refused(version)]);

    client.send(publish("other/x", b"outside", QoS::AtMostOnce, false, None)).await;
    client.send(publish("cn-user/a", b"inside", QoS::AtMostOnce, false, None)).await;
    let publish = client.expect_publish().await;
    assert_eq!((publish.topic.as_str(), &publish.payload[..]), ("cn-user/a", &b"inside"[..]));
    let seen = watcher.expect_publish().await;
    assert_eq!((seen.topic.as_str(), &seen.payload[..]), ("cn-user/a", &b"inside"[..]), "outside publish delivered");
    watcher.expect_nothing(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_cn_is_the_acl_user_v311() {
    certificate_cn_is_the_acl_user(ProtocolVersion::V3_1_1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_cn_is_the_acl_user_v5() {
    certificate_cn_is_the_acl_user(ProtocolVersion::V5).await;
}

async fn ws_client(addr: SocketAddr, path: &str, subprotocol: &str, version: ProtocolVersion, id: &str) -> RawClient {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let uri = format!("ws://127.0.0.1{path}");
    let (stream, chosen) = websocket(tcp, &uri, Some(subprotocol)).await.expect("WebSocket handshake");
    assert_eq!(chosen.as_deref(), Some(subprotocol), "subprotocol not echoed");
    let (client, connack) = RawClient::connect_over(stream, connect(version, id)).await;
    assert_accepted(&connack, id);
    client
}

// A ws listener carries MQTT in binary WebSocket messages with the subprotocols `mqtt` (3.1.1
// and 5.0) and `mqttv3.1` (3.1), and a WebSocket client and a TCP client reach each other.
async fn websocket_and_tcp_clients_exchange(version: ProtocolVersion, subprotocol: &str) {
    let listeners = vec![listener(ListenerProtocol::Ws), listener(ListenerProtocol::Mqtt)];
    let server = TestServer::start_with(config(listeners, AuthConfig::default())).await;
    let mut ws = ws_client(server.addrs[0], "/mqtt", subprotocol, version, "ws-client").await;
    let (mut tcp, _) = RawClient::connect_with(server.addrs[1], connect(version, "tcp-client")).await;
    round_trip(&mut ws, &mut tcp, "mixed/to-ws", b"from tcp").await;
    round_trip(&mut tcp, &mut ws, "mixed/to-tcp", b"from ws").await;
    ws.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_and_tcp_clients_exchange_v31() {
    websocket_and_tcp_clients_exchange(ProtocolVersion::V3_1, "mqttv3.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_and_tcp_clients_exchange_v311() {
    websocket_and_tcp_clients_exchange(ProtocolVersion::V3_1_1, "mqtt").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_and_tcp_clients_exchange_v5() {
    websocket_and_tcp_clients_exchange(ProtocolVersion::V5, "mqtt").await;
}

// A WebSocket request for another path than the listener's is refused in the handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_wrong_path_is_refused() {
    let mut ws = listener(ListenerProtocol::Ws);
    ws.path = "/mqtt".into();
    let server = TestServer::start_with(config(vec![ws], AuthConfig::default())).await;
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let refused = websocket(tcp, "ws://127.0.0.1/chat", Some("mqtt")).await;
    assert!(refused.is_err(), "WebSocket on /chat was accepted");
    ws_client(server.addr, "/mqtt", "mqtt", ProtocolVersion::V3_1_1, "right-path").await.disconnect().await;
}

// A wss listener: WebSocket over TLS, round trip for 3.1.1 and 5.0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_websocket_round_trip() {
    let dir = TempDir::new().expect("temporary directory");
    let pki = Pki::new("Tern test CA");
    let mut wss = listener(ListenerProtocol::Wss);
    wss.tls = Some(pki.tls_config(dir.path(), false));
    let server = TestServer::start_with(config(vec![wss], AuthConfig::default())).await;
    let mut clients = Vec::new();
    for (id, version) in [("wss-sub", ProtocolVersion::V5), ("wss-pub", ProtocolVersion::V3_1_1)] {
        let tls = tls_connect(server.addr, pki.client_config(&TLS13, None)).await.expect("TLS handshake");
        let (stream, chosen) = websocket(tls, "wss://localhost/mqtt", Some("mqtt")).await.expect("WebSocket");
        assert_eq!(chosen.as_deref(), Some("mqtt"));
        let (client, connack) = RawClient::connect_over(stream, connect(version, id)).await;
        assert_accepted(&connack, id);
        clients.push(client);
    }
    let (mut subscriber, mut publisher) = (clients.remove(0), clients.remove(0));
    round_trip(&mut subscriber, &mut publisher, "wss/t", b"over wss").await;
}

/// A proxy listener and a hook that allows everyone and records what it was told.
async fn proxy_server() -> (TestServer, HookServer) {
    let hook = HookServer::start(|_| true).await;
    let http = HttpHookConfig { url: hook.url.clone(), timeout_ms: 2000, cache_secs: 0 };
    let mut proxied = listener(ListenerProtocol::Mqtt);
    proxied.proxy_protocol = true;
    let auth = AuthConfig { http: Some(http), ..AuthConfig::default() };
    (TestServer::start_with(config(vec![proxied, listener(ListenerProtocol::Mqtt)], auth)).await, hook)
}

/// Sends `header` then CONNECT (no user name, no password) on one connection; returns the
/// CONNACK and the peer the HTTP hook was told about for `client_id`.
async fn connect_behind_proxy(server: &TestServer, hook: &HookServer, header: &[u8], client_id: &str) -> String {
    let mut client = RawClient::open(server.addr, ProtocolVersion::V3_1_1).await;
    client.send_raw(header).await;
    client.send(Packet::Connect(Box::new(connect(ProtocolVersion::V3_1_1, client_id)))).await;
    assert_accepted(&client.expect_connack().await, client_id);
    client.subscribe(1, &[("proxy/t", QoS::AtMostOnce)]).await;
    let requests = hook.requests();
    let request = requests.iter().find(|r| r["clientid"] == client_id).expect("the hook was asked");
    assert_eq!(request["username"], serde_json::Value::Null);
    request["peer"].as_str().expect("peer is a string").to_owned()
}

// proxy_protocol = true: the address in a v1 or v2 header is the client's, as the auth hook
// sees it, although the traffic itself is on loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_header_gives_the_real_address() {
    let (server, hook) = proxy_server().await;
    let v1 = b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 1883\r\n";
    assert_eq!(connect_behind_proxy(&server, &hook, v1, "proxied-v1").await, "203.0.113.7:5555");

    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    v2.extend_from_slice(&[203, 0, 113, 8, 127, 0, 0, 1]);
    v2.extend_from_slice(&6666u16.to_be_bytes());
    v2.extend_from_slice(&1883u16.to_be_bytes());
    assert_eq!(connect_behind_proxy(&server, &hook, &v2, "proxied-v2").await, "203.0.113.8:6666");
}

// A PROXY header where none is expected is not MQTT: its first byte, 'P' (0x50), is no CONNECT,
// so the connection closes at once without a CONNACK (mosquitto closes on the first byte; a
// broker waiting for the 82 bytes that 'R' announces would hold it until the connect timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_header_on_a_plain_listener_closes() {
    let (server, _hook) = proxy_server().await;
    let mut client = RawClient::open(server.addrs[1], ProtocolVersion::V3_1_1).await;
    client.send_raw(b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 1883\r\n").await;
    client.send(Packet::Connect(Box::new(connect(ProtocolVersion::V3_1_1, "unexpected-header")))).await;
    let before = client.expect_closed_within(Duration::from_secs(2)).await;
    assert!(before.is_empty(), "a PROXY header on a plain listener was answered: {before:?}");
}

// MQTT where a PROXY header is expected is not a header: the connection closes without a
// CONNACK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_listener_without_a_header_closes() {
    let (server, hook) = proxy_server().await;
    let mut client = RawClient::open(server.addr, ProtocolVersion::V3_1_1).await;
    client.send(Packet::Connect(Box::new(connect(ProtocolVersion::V3_1_1, "no-header")))).await;
    let before = client.expect_closed_within(Duration::from_secs(2)).await;
    assert!(before.is_empty(), "a proxy listener answered a client without a header: {before:?}");
    assert!(hook.requests().is_empty(), "a client without a header reached authentication");
}

// max_connections = 2: a third connection is closed without a CONNACK while the first two keep
// working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_max_connections() {
    let mut capped = listener(ListenerProtocol::Mqtt);
    capped.max_connections = 2;
    let server = TestServer::start_with(config(vec![capped], AuthConfig::default())).await;
    let (mut first, _) = RawClient::connect(server.addr, ProtocolVersion::V3_1_1, "cap-1", true).await;
    let (mut second, _) = RawClient::connect(server.addr, ProtocolVersion::V5, "cap-2", true).await;
    let mut third = RawClient::open(server.addr, ProtocolVersion::V3_1_1).await;
    third.send(Packet::Connect(Box::new(connect(ProtocolVersion::V3_1_1, "cap-3")))).await;
    let before = third.expect_closed_within(Duration::from_secs(2)).await;
    assert!(before.is_empty(), "the third connection was answered: {before:?}");
    round_trip(&mut first, &mut second, "cap/t", b"still working").await;
}

// max_connection_rate = 2: of 10 connections opened at once, at most a burst of about two
// get a CONNACK; once the rate has refilled, a new one does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_max_connection_rate() {
    let mut limited = listener(ListenerProtocol::Mqtt);
    limited.max_connection_rate = 2;
    let server = TestServer::start_with(config(vec![limited], AuthConfig::default())).await;
    let mut clients = Vec::new();
    for i in 0..10 {
        let mut client = RawClient::open(server.addr, ProtocolVersion::V3_1_1).await;
        client.send(Packet::Connect(Box::new(connect(ProtocolVersion::V3_1_1, &format!("rate-{i}"))))).await;
        clients.push(client);
    }
    let mut accepted = 0;
    for client in &mut clients {
        if let Some(Packet::ConnAck(connack)) = client.recv_or_closed(Duration::from_secs(2)).await {
            assert_accepted(&connack, "a rate-limited client");
            accepted += 1;
        }
    }
    assert!((1..=3).contains(&accepted), "{accepted} of 10 immediate connections accepted at 2/s");
    // The behaviour under test is the passing of time: the bucket refills at 2 per second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (late, connack) = RawClient::connect_with(server.addr, connect(ProtocolVersion::V3_1_1, "rate-late")).await;
    assert_accepted(&connack, "rate-late");
    late.disconnect().await;
}

// A reload (SIGHUP) re-reads the listener's certificate files: new connections get the new
// certificate, a client trusting only the old CA can no longer connect, and a client
// connected before the reload keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_reload_serves_new_certificates_without_dropping_clients() {
    let dir = TempDir::new().expect("temporary directory");
    let old = Pki::new("Old CA");
    let mut mqtts = listener(ListenerProtocol::Mqtts);
    mqtts.tls = Some(old.tls_config(dir.path(), false));
    let server = TestServer::start_with(config(vec![mqtts], AuthConfig::default())).await;
    let mut before = tls_client(server.addr, &old, &TLS13, "cert-before", ProtocolVersion::V3_1_1).await;

    // Same paths, new contents; then reload.
    let new = Pki::new("New CA");
    new.tls_config(dir.path(), false);
    server.reload();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let stream = loop {
        match tls_connect(server.addr, new.client_config(&TLS13, None)).await {
            Ok(stream) => break stream,
            Err(_) if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(error) => panic!("the reloaded certificate was not served within 2 s: {error}"),
        }
    };
    let (mut after, connack) = RawClient::connect_over(stream, connect(ProtocolVersion::V3_1_1, "cert-after")).await;
    assert_accepted(&connack, "cert-after");
    assert!(
        tls_connect(server.addr, old.client_config(&TLS13, None)).await.is_err(),
        "a client trusting only the old CA must not connect after the reload"
    );
    round_trip(&mut before, &mut after, "reload/t", b"still connected").await;
}

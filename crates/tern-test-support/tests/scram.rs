//! MQTT 5.0 enhanced authentication with SCRAM-SHA-256 and SCRAM-SHA-512 ([MQTT-4.12]): the
//! AUTH exchange between CONNECT and CONNACK, through the broker, with a SCRAM client written
//! here from RFC 5802 (independent of the broker's implementation in tern-auth).

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use ring::{digest, hmac, pbkdf2};
use tern_auth::ScramFile;
use tern_codec::{Auth, ConnAck, Packet, Properties, ProtocolVersion, QoS};
use tern_server::Config;
use tern_test_support::*;

/// Low so the client's PBKDF2 is quick in a debug build; the count travels in server-first.
const ITERATIONS: u32 = 512;

/// A broker whose `[auth] scram_file` has alice / "wonderland", and a connect timeout of one
/// second (it also bounds the wait for the client's AUTH).
async fn start_broker() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path: PathBuf = dir.path().join("scram");
    let mut file = ScramFile::new();
    file.set("alice", b"wonderland", NonZeroU32::new(ITERATIONS)).expect("set");
    file.save(&path).expect("save");
    let mut config = Config::default();
    config.auth.scram_file = Some(path);
    config.limits.connect_timeout_secs = 1;
    (TestServer::start_with(config).await, dir)
}

#[derive(Clone, Copy)]
enum Hash {
    Sha256,
    Sha512,
}

impl Hash {
    fn method(self) -> &'static str {
        match self {
            Hash::Sha256 => "SCRAM-SHA-256",
            Hash::Sha512 => "SCRAM-SHA-512",
        }
    }

    fn hmac(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        let algorithm = match self {
            Hash::Sha256 => hmac::HMAC_SHA256,
            Hash::Sha512 => hmac::HMAC_SHA512,
        };
        hmac::sign(&hmac::Key::new(algorithm, key), message).as_ref().to_vec()
    }

    fn digest(self, message: &[u8]) -> Vec<u8> {
        let algorithm = match self {
            Hash::Sha256 => &digest::SHA256,
            Hash::Sha512 => &digest::SHA512,
        };
        digest::digest(algorithm, message).as_ref().to_vec()
    }

    fn salted_password(self, password: &str, salt: &[u8], iterations: NonZeroU32) -> Vec<u8> {
        let (algorithm, len) = match self {
            Hash::Sha256 => (pbkdf2::PBKDF2_HMAC_SHA256, 32),
            Hash::Sha512 => (pbkdf2::PBKDF2_HMAC_SHA512, 64),
        };
        let mut out = vec![0; len];
        pbkdf2::derive(algorithm, iterations, salt, password.as_bytes(), &mut out);
        out
    }
}

/// The client side of one exchange (RFC 5802 section 3).
struct ScramClient {
    hash: Hash,
    password: String,
    client_first_bare: String,
    expected_server_final: String,
}

impl ScramClient {
    fn new(hash: Hash, username: &str, password: &str) -> ScramClient {
        let client_first_bare = format!("n={username},r=fyko+d2lbbFgONRv9qkxdawL");
        ScramClient { hash, password: password.into(), client_first_bare, expected_server_final: String::new() }
    }

    fn client_first(&self) -> Bytes {
        Bytes::from(format!("n,,{}", self.client_first_bare))
    }

    fn client_final(&mut self, server_first: &[u8]) -> Bytes {
        let server_first = std::str::from_utf8(server_first).expect("server-first is UTF-8");
        let field = |name: &str| {
            let found = server_first.split(',').find_map(|field| field.strip_prefix(name));
            found.unwrap_or_else(|| panic!("{name} missing in {server_first}")).to_owned()
        };
        let nonce = field("r=");
        assert!(nonce.starts_with("fyko+d2lbbFgONRv9qkxdawL") && nonce.len() >= 24 + 24, "{nonce}");
        let salt = BASE64.decode(field("s=")).expect("salt is base64");
        let iterations: NonZeroU32 = field("i=").parse().expect("iteration count");
        let salted = self.hash.salted_password(&self.password, &salt, iterations);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_key = self.hash.hmac(&salted, b"Client Key");
        let signature = self.hash.hmac(&self.hash.digest(&client_key), auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(k, s)| k ^ s).collect();
        let server_key = self.hash.hmac(&salted, b"Server Key");
        let server_signature = self.hash.hmac(&server_key, auth_message.as_bytes());
        self.expected_server_final = format!("v={}", BASE64.encode(server_signature));
        Bytes::from(format!("{without_proof},p={}", BASE64.encode(proof)))
    }
}

fn auth_properties(method: &str, data: Bytes) -> Properties {
    Properties { authentication_method: Some(method.into()), authentication_data: Some(data), ..Properties::default() }
}

/// Sends CONNECT with client-first and returns the server's AUTH 0x18 challenge.
async fn start_exchange(server: &TestServer, client_id: &str, scram: &ScramClient) -> (RawClient, Auth) {
    let mut client = RawClient::open(server.addr, ProtocolVersion::V5).await;
    let properties = auth_properties(scram.hash.method(), scram.client_first());
    client.send(Packet::Connect(Box::new(connect_v5(client_id, true, properties)))).await;
    match client.recv().await {
        Packet::Auth(auth) => {
            assert_eq!(auth.reason_code, 0x18, "{auth:?}");
            assert_eq!(auth.properties.authentication_method.as_deref(), Some(scram.hash.method()));
            (client, auth)
        }
        other => panic!("expected AUTH, got {other:?}"),
    }
}

/// Runs a whole exchange and returns the client with the CONNACK.
async fn exchange(server: &TestServer, client_id: &str, mut scram: ScramClient) -> (RawClient, ConnAck, ScramClient) {
    let (mut client, challenge) = start_exchange(server, client_id, &scram).await;
    let client_final = scram.client_final(&challenge.properties.authentication_data.expect("server-first"));
    let reply = Auth { reason_code: 0x18, properties: auth_properties(scram.hash.method(), client_final) };
    client.send(Packet::Auth(reply)).await;
    let connack = client.expect_connack().await;
    (client, connack, scram)
}

async fn connects_and_publishes(hash: Hash) {
    let (server, _dir) = start_broker().await;
    let (mut client, connack, scram) =
        exchange(&server, "scram-ok", ScramClient::new(hash, "alice", "wonderland")).await;
    assert_eq!(connack.code.0, 0x00, "{connack:?}");
    // [MQTT-4.12.0-5]: the method again, and server-final, which proves the server knows alice.
    assert_eq!(connack.properties.authentication_method.as_deref(), Some(hash.method()));
    let server_final = connack.properties.authentication_data.expect("server-final in CONNACK");
    assert_eq!(std::str::from_utf8(&server_final).unwrap(), scram.expected_server_final);

    client.subscribe_v5(1, &[("scram/t", options(QoS::AtMostOnce))], None).await;
    client.send(publish_v5("scram/t", b"hello", QoS::AtMostOnce, false, None, Properties::default())).await;
    assert_eq!(&client.expect_publish().await.payload[..], b"hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_sha256_exchange_connects_and_serves_v5() {
    connects_and_publishes(Hash::Sha256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_sha512_exchange_connects_and_serves_v5() {
    connects_and_publishes(Hash::Sha512).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_wrong_password_is_refused_with_0x86_and_closed_v5() {
    let (server, _dir) = start_broker().await;
    for (username, password) in [("alice", "looking-glass"), ("nobody", "wonderland")] {
        let (mut client, connack, _) =
            exchange(&server, "scram-bad", ScramClient::new(Hash::Sha256, username, password)).await;
        assert_eq!(connack.code.0, 0x86, "{username}: {connack:?}");
        assert!(connack.properties.authentication_data.is_none());
        client.expect_closed_within(Duration::from_secs(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_authentication_method_is_refused_with_0x8c_v5() {
    let (server, _dir) = start_broker().await;
    let properties = auth_properties("SCRAM-SHA-1", Bytes::from_static(b"n,,n=alice,r=abc"));
    let (mut client, connack) = RawClient::connect_with(server.addr, connect_v5("scram-sha1", true, properties)).await;
    assert_eq!(connack.code.0, 0x8C, "{connack:?}");
    client.expect_closed_within(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_with_another_method_mid_exchange_closes_v5() {
    let (server, _dir) = start_broker().await;
    let mut scram = ScramClient::new(Hash::Sha256, "alice", "wonderland");
    let (mut client, challenge) = start_exchange(&server, "scram-switch", &scram).await;
    let client_final = scram.client_final(&challenge.properties.authentication_data.expect("server-first"));
    let reply = Auth { reason_code: 0x18, properties: auth_properties("SCRAM-SHA-512", client_final) };
    client.send(Packet::Auth(reply)).await;
    let before_close = client.expect_closed_within(Duration::from_secs(2)).await;
    assert!(before_close.is_empty(), "no CONNACK after a broken exchange: {before_close:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_silent_after_challenge_is_closed_after_the_timeout_v5() {
    let (server, _dir) = start_broker().await;
    let scram = ScramClient::new(Hash::Sha512, "alice", "wonderland");
    let started = Instant::now();
    let (mut client, _challenge) = start_exchange(&server, "scram-silent", &scram).await;
    let before_close = client.expect_closed_within(Duration::from_secs(3)).await;
    assert!(before_close.is_empty(), "{before_close:?}");
    assert!(started.elapsed() >= Duration::from_millis(900), "closed before the timeout: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_method_is_not_anonymous_once_scram_is_configured_v5() {
    let (server, _dir) = start_broker().await;
    let connect = connect_v5("scram-anon", true, Properties::default());
    let (_client, connack) = RawClient::connect_with(server.addr, connect).await;
    assert_eq!(connack.code.0, 0x87, "{connack:?}");
}

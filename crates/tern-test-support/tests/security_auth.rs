//! Authentication and authorization end to end: password files (and their reload), ACL files
//! (subscribe, publish, retained messages, wills, `%u` and `%c`, reload), JWT and the HTTP
//! auth hook, for 3.1.1 and 5.0 clients. Files are written per test in a temporary directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tempfile::TempDir;
use tern_auth::PasswordFile;
use tern_codec::{Connect, ProtocolVersion, QoS};
use tern_server::{AuthConfig, Config, HttpHookConfig, JwtConfig, ListenerConfig};
use tern_test_support::*;

const V311: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

/// How long a reload may take to apply; it runs in the broker's own task.
const RELOAD_WAIT: Duration = Duration::from_secs(2);

/// For each named `async fn behaviour(version: ProtocolVersion)`, a module `behaviour` with the
/// tests `v311` (MQTT 3.1.1) and `v5` (MQTT 5.0).
macro_rules! v311_and_v5_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn v311() {
                    super::$name(super::V311).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn v5() {
                    super::$name(super::V5).await;
                }
            }
        )*
    };
}

fn listener() -> ListenerConfig {
    ListenerConfig::mqtt(SocketAddr::from(([127, 0, 0, 1], 0)))
}

async fn start(auth: AuthConfig) -> TestServer {
    TestServer::start_with(Config { auth, ..Config::default() }).await
}

fn login(version: ProtocolVersion, client_id: &str, username: Option<&str>, password: Option<&[u8]>) -> Connect {
    let mut connect = match version {
        V5 => connect_v5(client_id, true, Default::default()),
        _ => connect(version, client_id, true),
    };
    connect.username = username.map(str::to_owned);
    connect.password = password.map(Bytes::copy_from_slice);
    connect
}

/// The CONNACK code a CONNECT gets; the connection is dropped.
async fn connack_code(addr: SocketAddr, connect: Connect) -> u8 {
    RawClient::connect_with(addr, connect).await.1.code.0
}

/// Connects and asserts the CONNACK accepts.
async fn connected(addr: SocketAddr, connect: Connect) -> RawClient {
    let id = connect.client_id.clone();
    let (client, connack) = RawClient::connect_with(addr, connect).await;
    assert_eq!(connack.code.0, 0, "CONNACK refused for {id}: {connack:?}");
    client
}

/// CONNACK "bad user name or password": 0x04 (3.1.1) / 0x86 (5.0).
fn bad_credentials(version: ProtocolVersion) -> u8 {
    if version == V5 {
        0x86
    } else {
        0x04
    }
}

/// CONNACK "not authorized": 0x05 (3.1.1) / 0x87 (5.0).
fn not_authorized(version: ProtocolVersion) -> u8 {
    if version == V5 {
        0x87
    } else {
        0x05
    }
}

/// SUBACK refusal: 0x80 (3.1.1) / 0x87 "not authorized" (5.0).
fn sub_refused(version: ProtocolVersion) -> u8 {
    if version == V5 {
        0x87
    } else {
        0x80
    }
}

async fn suback_codes(client: &mut RawClient, packet_id: u16, filters: &[(&str, QoS)]) -> Vec<u8> {
    client.send(subscribe(packet_id, filters)).await;
    let suback = client.expect_suback().await;
    assert_eq!(suback.packet_id.get(), packet_id);
    suback.return_codes
}

fn write_passwords(path: &Path, users: &[(&str, &str)]) {
    let mut file = PasswordFile::new();
    for (username, password) in users {
        file.set(username, password.as_bytes()).expect("valid user");
    }
    file.save(path).expect("save the password file");
}

/// Retries `attempt` every 50 ms until it returns true or [`RELOAD_WAIT`] has passed.
async fn eventually<F: std::future::Future<Output = bool>>(mut attempt: impl FnMut() -> F) -> bool {
    let deadline = tokio::time::Instant::now() + RELOAD_WAIT;
    loop {
        if attempt().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// A password file: the right password connects; a wrong one or an unknown user gets "bad user
// name or password"; no credentials at all get "not authorized" (anonymous access is off once
// a backend is configured).
async fn password_file_decides(version: ProtocolVersion) {
    let dir = TempDir::new().expect("temporary directory");
    let passwords = dir.path().join("passwd");
    write_passwords(&passwords, &[("alice", "wonderland")]);
    let server = start(AuthConfig { password_file: Some(passwords), ..AuthConfig::default() }).await;
    let addr = server.addr;
    connected(addr, login(version, "right", Some("alice"), Some(b"wonderland"))).await.disconnect().await;
    assert_eq!(
        connack_code(addr, login(version, "wrong", Some("alice"), Some(b"looking-glass"))).await,
        bad_credentials(version)
    );
    assert_eq!(
        connack_code(addr, login(version, "unknown", Some("mallory"), Some(b"wonderland"))).await,
        bad_credentials(version)
    );
    assert_eq!(connack_code(addr, login(version, "anonymous", None, None)).await, not_authorized(version));
}

v311_and_v5_tests!(password_file_decides);

// allow_anonymous = true on one listener admits clients without credentials there only; the
// password file still judges those that present credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_anonymous_on_one_listener_only() {
    let dir = TempDir::new().expect("temporary directory");
    let passwords = dir.path().join("passwd");
    write_passwords(&passwords, &[("alice", "wonderland")]);
    let mut open = listener();
    open.allow_anonymous = Some(true);
    let auth = AuthConfig { password_file: Some(passwords), ..AuthConfig::default() };
    let server = TestServer::start_with(Config { listeners: vec![listener(), open], auth, ..Config::default() }).await;
    let (closed, open) = (server.addrs[0], server.addrs[1]);
    for version in [V311, V5] {
        assert_eq!(connack_code(closed, login(version, "anon", None, None)).await, not_authorized(version));
        connected(open, login(version, "anon", None, None)).await.disconnect().await;
        let wrong = login(version, "wrong", Some("alice"), Some(b"nope"));
        assert_eq!(connack_code(open, wrong).await, bad_credentials(version));
    }
}

// Reloading the password file: a user added is admitted and a user removed is refused on its
// next CONNECT, while the removed user's open connection keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_file_reload_adds_and_removes_users() {
    let dir = TempDir::new().expect("temporary directory");
    let passwords = dir.path().join("passwd");
    write_passwords(&passwords, &[("alice", "wonderland"), ("bob", "builder")]);
    let server = start(AuthConfig { password_file: Some(passwords.clone()), ..AuthConfig::default() }).await;
    let addr = server.addr;
    let mut bob = connected(addr, login(V5, "bob-1", Some("bob"), Some(b"builder"))).await;
    bob.subscribe(1, &[("reload/t", QoS::AtLeastOnce)]).await;
    assert_eq!(connack_code(addr, login(V5, "carol-0", Some("carol"), Some(b"singer"))).await, 0x86);

    write_passwords(&passwords, &[("alice", "wonderland"), ("carol", "singer")]);
    server.reload();
    let carol_admitted =
        eventually(|| async { connack_code(addr, login(V5, "carol-1", Some("carol"), Some(b"singer"))).await == 0 })
            .await;
    assert!(carol_admitted, "an added user is still refused {RELOAD_WAIT:?} after the reload");
    assert_eq!(connack_code(addr, login(V311, "bob-2", Some("bob"), Some(b"builder"))).await, 0x04);
    assert_eq!(connack_code(addr, login(V5, "bob-3", Some("bob"), Some(b"builder"))).await, 0x86);

    let mut alice = connected(addr, login(V311, "alice-1", Some("alice"), Some(b"wonderland"))).await;
    alice.publish_and_ack("reload/t", b"still there", QoS::AtLeastOnce, false, 1).await;
    assert_eq!(&bob.recv_acked().await.payload[..], b"still there");
    assert_eq!(bob.publish_qos1_v5("reload/t", b"from bob", 2, Default::default()).await.reason_code, 0);
}

/// An ACL for the tests below. No password file: without a backend, the CONNECT user name is
/// taken as given, so each test picks the user it needs.
const ACL: &str = "\
# anonymous clients
topic read public/#

user alice
topic readwrite alice/#
topic read shared/#
topic deny shared/secret

user admin
topic readwrite #

pattern readwrite devices/%u/#
pattern readwrite clients/%c/#
";

async fn acl_server(dir: &TempDir, acl: &str) -> (TestServer, PathBuf) {
    let path = dir.path().join("acl");
    std::fs::write(&path, acl).expect("write the ACL");
    (start(AuthConfig { acl_file: Some(path.clone()), ..AuthConfig::default() }).await, path)
}

fn user(version: ProtocolVersion, client_id: &str, username: &str) -> Connect {
    login(version, client_id, Some(username), None)
}

// SUBSCRIBE outside the client's rights is refused filter by filter: 0x80 (3.1.1), 0x87 (5.0).
async fn acl_refuses_subscribe(version: ProtocolVersion) {
    let dir = TempDir::new().expect("temporary directory");
    let (server, _) = acl_server(&dir, ACL).await;
    let mut alice = connected(server.addr, user(version, "alice-sub", "alice")).await;
    let filters = [("alice/#", QoS::AtLeastOnce), ("secret/#", QoS::AtLeastOnce), ("public/#", QoS::AtMostOnce)];
    assert_eq!(suback_codes(&mut alice, 1, &filters).await, [1, sub_refused(version), sub_refused(version)]);
    let mut anonymous = connected(server.addr, login(version, "anon-sub", None, None)).await;
    assert_eq!(suback_codes(&mut anonymous, 1, &filters).await, [sub_refused(version), sub_refused(version), 0]);
}

v311_and_v5_tests!(acl_refuses_subscribe);

// PUBLISH outside the client's rights is not delivered; QoS 1 is acknowledged with 0x87 in 5.0
// and, having no way to say no, with a plain PUBACK in 3.1.1.
async fn acl_refuses_publish(version: ProtocolVersion) {
    let dir = TempDir::new().expect("temporary directory");
    let (server, _) = acl_server(&dir, ACL).await;
    let mut admin = connected(server.addr, user(V311, "admin-watch", "admin")).await;
    admin.subscribe(1, &[("#", QoS::AtLeastOnce)]).await;
    let mut alice = connected(server.addr, user(version, "alice-pub", "alice")).await;
    alice.send(publish("secret/x", b"forbidden", QoS::AtLeastOnce, false, Some(1))).await;
    let expected = if version == V5 { 0x87 } else { 0x00 };
    assert_eq!(alice.expect_puback().await.reason_code, expected);
    alice.publish_and_ack("alice/x", b"allowed", QoS::AtLeastOnce, false, 2).await;
    let delivered = admin.recv_acked().await;
    assert_eq!((delivered.topic.as_str(), &delivered.payload[..]), ("alice/x", &b"allowed"[..]));
    admin.expect_nothing(Duration::from_millis(200)).await;
}

v311_and_v5_tests!(acl_refuses_publish);

// Authorization is decided once per subscription, never per delivery ([MQTT-3.8.4], the
// issue's rule), so a filter that a `deny` rule intersects is refused whole: alice may read
// shared/# except shared/secret, so SUBSCRIBE shared/# and shared/+ are refused (mosquitto
// would grant them and filter each message), while shared/news is granted with its retained
// message. No filter alice may use brings her the retained shared/secret.
async fn acl_hides_forbidden_retained_messages(version: ProtocolVersion) {
    let dir = TempDir::new().expect("temporary directory");
    let (server, _) = acl_server(&dir, ACL).await;
    let mut admin = connected(server.addr, user(V311, "admin-retain", "admin")).await;
    admin.publish_and_ack("shared/secret", b"hidden", QoS::AtLeastOnce, true, 1).await;
    admin.publish_and_ack("shared/news", b"visible", QoS::AtLeastOnce, true, 2).await;
    let mut alice = connected(server.addr, user(version, "alice-retain", "alice")).await;
    let wide = [("shared/#", QoS::AtLeastOnce), ("shared/+", QoS::AtLeastOnce)];
    assert_eq!(suback_codes(&mut alice, 1, &wide).await, [sub_refused(version), sub_refused(version)]);
    alice.expect_nothing(Duration::from_millis(200)).await;
    assert_eq!(suback_codes(&mut alice, 2, &[("shared/news", QoS::AtLeastOnce)]).await, [1]);
    let retained = alice.recv_acked().await;
    assert_eq!((retained.topic.as_str(), &retained.payload[..]), ("shared/news", &b"visible"[..]));
    alice.expect_nothing(Duration::from_millis(300)).await;
}

v311_and_v5_tests!(acl_hides_forbidden_retained_messages);

// A will on a topic the client may not publish to refuses the CONNECT: 0x05 / 0x87.
async fn acl_refuses_forbidden_will(version: ProtocolVersion) {
    let dir = TempDir::new().expect("temporary directory");
    let (server, _) = acl_server(&dir, ACL).await;
    let mut forbidden = user(version, "alice-will", "alice");
    forbidden.will = Some(will("secret/will", b"gone", QoS::AtMostOnce, false));
    assert_eq!(connack_code(server.addr, forbidden).await, not_authorized(version));
    let mut allowed = user(version, "alice-will", "alice");
    allowed.will = Some(will("alice/will", b"gone", QoS::AtMostOnce, false));
    connected(server.addr, allowed).await.disconnect().await;
}

v311_and_v5_tests!(acl_refuses_forbidden_will);

// `pattern` lines: %u is the user name, %c the client id; each grants that client's own
// subtree only.
async fn acl_patterns_substitute_user_and_client_id(version: ProtocolVersion) {
    let dir = TempDir::new().expect("temporary directory");
    let (server, _) = acl_server(&dir, ACL).await;
    let mut device = connected(server.addr, user(version, "cid-9", "dev-1")).await;
    let filters = [
        ("devices/dev-1/#", QoS::AtLeastOnce),
        ("devices/dev-2/#", QoS::AtLeastOnce),
        ("clients/cid-9/#", QoS::AtLeastOnce),
        ("clients/cid-8/#", QoS::AtLeastOnce),
    ];
    let refused = sub_refused(version);
    assert_eq!(suback_codes(&mut device, 1, &filters).await, [1, refused, 1, refused]);
    device.publish_and_ack("devices/dev-1/temp", b"21", QoS::AtLeastOnce, false, 2).await;
    assert_eq!(device.recv_acked().await.topic.as_str(), "devices/dev-1/temp");
    device.publish_and_ack("clients/cid-9/state", b"up", QoS::AtLeastOnce, false, 3).await;
    assert_eq!(device.recv_acked().await.topic.as_str(), "clients/cid-9/state");
}

v311_and_v5_tests!(acl_patterns_substitute_user_and_client_id);

// A reloaded ACL judges the next SUBSCRIBE of an already connected client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_reload_applies_to_new_subscribes() {
    let dir = TempDir::new().expect("temporary directory");
    let (server, path) = acl_server(&dir, ACL).await;
    let mut alice = connected(server.addr, user(V5, "alice-reload", "alice")).await;
    assert_eq!(suback_codes(&mut alice, 1, &[("news/#", QoS::AtMostOnce)]).await, [0x87]);
    std::fs::write(&path, ACL.replace("user alice\n", "user alice\ntopic read news/#\n")).expect("rewrite the ACL");
    server.reload();
    let deadline = tokio::time::Instant::now() + RELOAD_WAIT;
    let mut packet_id = 1;
    let granted = loop {
        packet_id += 1;
        if suback_codes(&mut alice, packet_id, &[("news/#", QoS::AtMostOnce)]).await == [0] {
            break true;
        }
        if tokio::time::Instant::now() >= deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(granted, "SUBSCRIBE still refused {RELOAD_WAIT:?} after the ACL reload");
}

const JWT_SECRET: &[u8] = b"a shared secret of at least 32 bytes, for HS256";

fn token(sub: &str, expires_in: i64, secret: &[u8]) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs() as i64;
    let claims = serde_json::json!({ "sub": sub, "exp": now + expires_in });
    let key = jsonwebtoken::EncodingKey::from_secret(secret);
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256), &claims, &key).expect("sign")
}

// [auth.jwt] HS256: a token as the password makes the client its `sub` (3.1.1 needs some user
// name with a password; 5.0 sends none), which the ACL's %u pattern proves. An expired token, one
// signed with another secret, or garbage instead of a token get "bad user name or password":
// the client did present credentials, and they are wrong.
async fn jwt_password_authenticates(version: ProtocolVersion) {
    let dir = TempDir::new().expect("temporary directory");
    let key_file = dir.path().join("jwt.key");
    std::fs::write(&key_file, JWT_SECRET).expect("write the secret");
    let acl = dir.path().join("acl");
    std::fs::write(&acl, "pattern readwrite devices/%u/#\n").expect("write the ACL");
    let jwt =
        JwtConfig { algorithm: "HS256".into(), key_file, token_in: "password".into(), username_claim: "sub".into() };
    let server = start(AuthConfig { jwt: Some(jwt), acl_file: Some(acl), ..AuthConfig::default() }).await;
    let name = (version != V5).then_some("not-the-sub");
    let jwt_login = |id: &str, token: &str| login(version, id, name, Some(token.as_bytes()));

    let mut device = connected(server.addr, jwt_login("jwt-ok", &token("device-1", 3600, JWT_SECRET))).await;
    let filters = [("devices/device-1/#", QoS::AtLeastOnce), ("devices/not-the-sub/#", QoS::AtLeastOnce)];
    assert_eq!(suback_codes(&mut device, 1, &filters).await, [1, sub_refused(version)]);
    device.publish_and_ack("devices/device-1/x", b"hello", QoS::AtLeastOnce, false, 2).await;
    assert_eq!(device.recv_acked().await.topic.as_str(), "devices/device-1/x");

    let expired = token("device-1", -3600, JWT_SECRET);
    assert_eq!(connack_code(server.addr, jwt_login("jwt-expired", &expired)).await, bad_credentials(version));
    let forged = token("device-1", 3600, b"another secret that is also long enough!");
    assert_eq!(connack_code(server.addr, jwt_login("jwt-forged", &forged)).await, bad_credentials(version));
    assert_eq!(connack_code(server.addr, jwt_login("jwt-garbage", "garbage")).await, bad_credentials(version));
}

v311_and_v5_tests!(jwt_password_authenticates);

// [auth.http]: the hook decides by user name; it is told the client id, user name, password
// and address.
async fn http_hook_decides(version: ProtocolVersion) {
    let hook = HookServer::start(|request| request["username"] == "good").await;
    let http = HttpHookConfig { url: hook.url.clone(), timeout_ms: 2000, cache_secs: 60 };
    let server = start(AuthConfig { http: Some(http), ..AuthConfig::default() }).await;
    let good = connected(server.addr, login(version, "hook-good", Some("good"), Some(b"pw-good"))).await;
    let bad = login(version, "hook-bad", Some("bad"), Some(b"pw-bad"));
    assert_eq!(connack_code(server.addr, bad).await, not_authorized(version));
    let requests = hook.requests();
    let asked = requests.iter().find(|r| r["clientid"] == "hook-good").expect("the hook was asked");
    assert_eq!((&asked["username"], &asked["password"]), (&"good".into(), &"pw-good".into()));
    let peer: SocketAddr = asked["peer"].as_str().expect("peer").parse().expect("peer is an address");
    assert!(peer.ip().is_loopback(), "{peer}");
    assert!(requests.iter().any(|r| r["clientid"] == "hook-bad" && r["password"] == "pw-bad"), "{requests:?}");
    good.disconnect().await;
}

v311_and_v5_tests!(http_hook_decides);

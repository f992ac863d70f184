//! The HTTP auth hook, black-box, against a small HTTP server on 127.0.0.1 in the test.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tern_auth::{AuthError, AuthOutcome, AuthRequest, Authenticator, HttpHook, HttpHookSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the test server answers every request.
#[derive(Clone)]
enum Reply {
    /// 200 with this JSON body and a Content-Length, then the connection is closed.
    Json(String),
    /// This status, an empty JSON body.
    Status(u16),
    /// 200, the body in chunks, then the connection is closed.
    Chunked(String),
    /// 200 with a Content-Length, and the connection is then kept open.
    KeepOpen(String),
    /// Reads the request and never answers.
    Hang,
    /// 200 with a body over the client's 64 KiB limit.
    Huge,
}

struct Server {
    url: String,
    hits: Arc<AtomicUsize>,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Server {
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn last_body(&self) -> Value {
        self.bodies.lock().expect("bodies lock").last().cloned().unwrap_or(Value::Null)
    }
}

async fn serve(reply: Reply) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/mqtt/auth", listener.local_addr().expect("local addr"));
    let hits = Arc::new(AtomicUsize::new(0));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let server = Server { url, hits: hits.clone(), bodies: bodies.clone() };
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (reply, hits, bodies) = (reply.clone(), hits.clone(), bodies.clone());
            tokio::spawn(async move { answer(stream, reply, hits, bodies).await });
        }
    });
    server
}

async fn answer(mut stream: TcpStream, reply: Reply, hits: Arc<AtomicUsize>, bodies: Arc<Mutex<Vec<Value>>>) {
    let Some((head, body)) = read_request(&mut stream).await else { return };
    assert!(head.starts_with("POST /mqtt/auth HTTP/1.1\r\n"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
    bodies.lock().expect("bodies lock").push(serde_json::from_slice(&body).unwrap_or(Value::Null));
    hits.fetch_add(1, Ordering::SeqCst);
    let response = match &reply {
        Reply::Json(json) | Reply::KeepOpen(json) => {
            format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}", json.len())
        }
        Reply::Status(status) => format!("HTTP/1.1 {status} Whatever\r\nContent-Length: 2\r\n\r\n{{}}"),
        Reply::Chunked(json) => {
            let (a, b) = json.split_at(json.len() / 2);
            format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
                a.len(),
                b.len()
            )
        }
        Reply::Huge => format!("HTTP/1.1 200 OK\r\n\r\n{{\"result\":\"allow\",\"pad\":\"{}\"}}", "x".repeat(70_000)),
        Reply::Hang => String::new(),
    };
    // Write errors are expected where the client gave up (the huge reply).
    let _ = stream.write_all(response.as_bytes()).await;
    if matches!(reply, Reply::Hang | Reply::KeepOpen(_)) {
        // Hold the connection until the client closes it.
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
    }
}

/// Reads one request: the head, then a body of its Content-Length.
async fn read_request(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(buf[..end].to_vec()).ok()?;
            let length: usize = head.lines().find_map(|l| {
                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().ok())
            })??;
            if buf.len() >= end + 4 + length {
                return Some((head + "\r\n", buf[end + 4..end + 4 + length].to_vec()));
            }
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn peer() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50_000))
}

fn request<'a>(client_id: &'a str, username: Option<&'a str>, password: Option<&'a [u8]>) -> AuthRequest<'a> {
    AuthRequest { client_id, username, password, peer: peer(), certificate_username: None }
}

fn hook(url: &str) -> HttpHook {
    HttpHook::new(HttpHookSettings::new(url)).expect("hook")
}

fn uncached(url: &str) -> HttpHook {
    HttpHook::new(HttpHookSettings { cache_ttl: Duration::ZERO, ..HttpHookSettings::new(url) }).expect("hook")
}

#[tokio::test]
async fn allow_with_username_override_and_attributes() {
    let reply = json!({ "result": "allow", "username": "alice@acme", "attributes": { "tenant": "acme", "level": 3, "ops": true, "list": [1] } });
    let server = serve(Reply::Json(reply.to_string())).await;
    let outcome = hook(&server.url).authenticate(&request("c1", Some("alice"), Some(b"pw"))).await;
    let attributes =
        [("level", "3"), ("ops", "true"), ("tenant", "acme")].map(|(k, v)| (k.to_owned(), v.to_owned())).to_vec();
    assert_eq!(outcome, AuthOutcome::Allow { username: Some("alice@acme".into()), attributes });
}

#[tokio::test]
async fn allow_flag_keeps_connect_username() {
    let server = serve(Reply::Json(r#"{"allow": true}"#.into())).await;
    let outcome = hook(&server.url).authenticate(&request("c1", Some("bob"), None)).await;
    assert_eq!(outcome, AuthOutcome::Allow { username: Some("bob".into()), attributes: Vec::new() });
}

#[tokio::test]
async fn deny_and_ignore() {
    for (reply, expected) in [
        (r#"{"result":"deny"}"#, AuthOutcome::NotAuthorized),
        (r#"{"allow":false}"#, AuthOutcome::NotAuthorized),
        (r#"{"result":"ignore"}"#, AuthOutcome::Abstain),
    ] {
        let server = serve(Reply::Json(reply.into())).await;
        assert_eq!(
            uncached(&server.url).authenticate(&request("c1", Some("u"), Some(b"p"))).await,
            expected,
            "{reply}"
        );
    }
}

#[tokio::test]
async fn request_body_carries_the_connect_fields() {
    let server = serve(Reply::Json(r#"{"result":"allow"}"#.into())).await;
    let hook = uncached(&server.url);
    hook.authenticate(&request("dev-42", Some("carol"), Some("pässword".as_bytes()))).await;
    let expected = json!({ "clientid": "dev-42", "username": "carol", "password": "pässword", "password_base64": false, "peer": "127.0.0.1:50000" });
    assert_eq!(server.last_body(), expected);

    hook.authenticate(&request("dev-42", None, Some(&[0xff, 0x00, 0x80]))).await;
    let expected = json!({ "clientid": "dev-42", "username": null, "password": "/wCA", "password_base64": true, "peer": "127.0.0.1:50000" });
    assert_eq!(server.last_body(), expected);

    hook.authenticate(&request("dev-42", None, None)).await;
    assert_eq!(server.last_body()["password"], Value::Null);
}

#[tokio::test]
async fn failing_hook_lets_nobody_in() {
    let body = r#"{"result":"maybe"}"#;
    for reply in
        [Reply::Status(500), Reply::Status(403), Reply::Json("not json".into()), Reply::Json(body.into()), Reply::Huge]
    {
        let server = serve(reply).await;
        let outcome = hook(&server.url).authenticate(&request("c1", Some("u"), Some(b"p"))).await;
        assert_eq!(outcome, AuthOutcome::NotAuthorized);
        assert_eq!(server.hits(), 1);
    }
}

#[tokio::test]
async fn unreachable_hook_denies() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("local addr"));
    drop(listener);
    assert_eq!(hook(&url).authenticate(&request("c1", None, None)).await, AuthOutcome::NotAuthorized);
}

#[tokio::test]
async fn slow_hook_times_out_and_denies() {
    let server = serve(Reply::Hang).await;
    let settings = HttpHookSettings { timeout: Duration::from_millis(200), ..HttpHookSettings::new(&server.url) };
    let hook = HttpHook::new(settings).expect("hook");
    let started = Instant::now();
    assert_eq!(hook.authenticate(&request("c1", None, None)).await, AuthOutcome::NotAuthorized);
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    // Failures are not cached: the next attempt asks again.
    assert_eq!(hook.authenticate(&request("c1", None, None)).await, AuthOutcome::NotAuthorized);
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn response_framing_does_not_wait_for_close() {
    let server = serve(Reply::KeepOpen(r#"{"result":"allow"}"#.into())).await;
    let outcome = hook(&server.url).authenticate(&request("c1", Some("u"), None)).await;
    assert!(matches!(outcome, AuthOutcome::Allow { .. }), "{outcome:?}");
    let server = serve(Reply::Chunked(r#"{"result":"allow","username":"chunky"}"#.into())).await;
    let outcome = hook(&server.url).authenticate(&request("c1", Some("u"), None)).await;
    assert!(matches!(&outcome, AuthOutcome::Allow { username: Some(u), .. } if u == "chunky"), "{outcome:?}");
}

#[tokio::test]
async fn answers_are_cached_per_credentials() {
    let server = serve(Reply::Json(r#"{"result":"deny"}"#.into())).await;
    let hook = hook(&server.url);
    for _ in 0..5 {
        assert_eq!(hook.authenticate(&request("c1", Some("u"), Some(b"wrong"))).await, AuthOutcome::NotAuthorized);
    }
    assert_eq!(server.hits(), 1, "a negative answer is cached");
    // A reconnect from another port of the same address is the same key.
    let mut from_other_port = request("c1", Some("u"), Some(b"wrong"));
    from_other_port.peer = SocketAddr::from(([127, 0, 0, 1], 50_001));
    hook.authenticate(&from_other_port).await;
    assert_eq!(server.hits(), 1);
    // Any other password, user name, client id or address is asked about.
    hook.authenticate(&request("c1", Some("u"), Some(b"right"))).await;
    hook.authenticate(&request("c1", Some("v"), Some(b"wrong"))).await;
    hook.authenticate(&request("c2", Some("u"), Some(b"wrong"))).await;
    let mut from_elsewhere = request("c1", Some("u"), Some(b"wrong"));
    from_elsewhere.peer = SocketAddr::from(([127, 0, 0, 2], 50_000));
    hook.authenticate(&from_elsewhere).await;
    assert_eq!(server.hits(), 5);
}

#[tokio::test]
async fn zero_ttl_disables_the_cache() {
    let server = serve(Reply::Json(r#"{"result":"allow"}"#.into())).await;
    let hook = uncached(&server.url);
    hook.authenticate(&request("c1", Some("u"), Some(b"p"))).await;
    hook.authenticate(&request("c1", Some("u"), Some(b"p"))).await;
    assert_eq!(server.hits(), 2);
}

#[test]
fn settings_are_checked() {
    assert!(matches!(HttpHook::new(HttpHookSettings::new("https://hook/")), Err(AuthError::HttpHookUrl { .. })));
    assert!(matches!(HttpHook::new(HttpHookSettings::new("hook:80")), Err(AuthError::HttpHookUrl { .. })));
    let never = HttpHookSettings { timeout: Duration::ZERO, ..HttpHookSettings::new("http://127.0.0.1/") };
    assert!(matches!(HttpHook::new(never), Err(AuthError::HttpHookTimeout(_))));
    let forever = HttpHookSettings { timeout: Duration::from_secs(600), ..HttpHookSettings::new("http://127.0.0.1/") };
    assert!(matches!(HttpHook::new(forever), Err(AuthError::HttpHookTimeout(_))));
}

//! The HTTP auth hook: Tern asks an HTTP service whether a client may connect.
//!
//! For each CONNECT, Tern POSTs a JSON object to the configured `http://` URL:
//!
//! ```json
//! {"clientid": "c1", "username": "alice", "password": "s3cret", "password_base64": false, "peer": "192.0.2.7:50112"}
//! ```
//!
//! `username` and `password` are `null` when the client sent none. A password that is not valid
//! UTF-8 is sent base64-encoded (standard alphabet, padded) with `"password_base64": true`.
//!
//! The hook answers 2xx with a JSON object: `{"result": "allow" | "deny" | "ignore"}`, or
//! `{"allow": true | false}`. An allowing answer may carry `"username"` (the session's user
//! name instead of the CONNECT one) and `"attributes": {"name": value, ..}` (strings, numbers
//! and booleans; other values are skipped) for ACL rules. `deny` refuses the client with
//! CONNACK "not authorized"; `ignore` passes the decision to the next authenticator.
//!
//! **A failing hook lets nobody in.** A connection error, a timeout, a status other than 2xx, a
//! response over 64 KiB or a body that is not such an object all refuse the client as
//! "not authorized" and log a warning; they are not cached, so the hook is asked again on the
//! next attempt. Answers (allow, deny and ignore alike) are cached for `cache_ttl`, keyed by
//! client id, user name, the SHA-256 of the password and the peer's IP address (not its port,
//! which changes on every reconnect), so a flood of reconnects does not become a flood of
//! requests. The cache holds no passwords, only their digests.
//!
//! The client is a small HTTP/1.1 one: one request per connection (`Connection: close`), and a
//! response framed by `Content-Length`, chunked encoding or the end of the connection.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::digest;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::warn;

use crate::authenticator::{AuthOutcome, AuthRequest, Authenticator, BoxFuture};
use crate::error::AuthError;
use crate::jwt::scalar_claims;

/// The largest response (status line, headers and body) read from the hook.
const MAX_RESPONSE: usize = 64 * 1024;
/// The longest a connecting client may be kept waiting for the hook.
const MAX_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the hook is and how Tern uses it. [`HttpHookSettings::new`] fills in the defaults.
#[derive(Debug, Clone)]
pub struct HttpHookSettings {
    /// `http://host[:port][/path]`; https is not supported yet.
    pub url: String,
    /// The whole exchange (connect, request, response) must finish within this; default 2 s,
    /// at most 30 s.
    pub timeout: Duration,
    /// How long an answer is reused; default 60 s. Zero turns the cache off.
    pub cache_ttl: Duration,
    /// The most answers kept; the oldest go first. Default 10 000; zero turns the cache off.
    pub cache_capacity: usize,
}

impl HttpHookSettings {
    pub fn new(url: impl Into<String>) -> HttpHookSettings {
        HttpHookSettings {
            url: url.into(),
            timeout: Duration::from_secs(2),
            cache_ttl: Duration::from_secs(60),
            cache_capacity: 10_000,
        }
    }
}

/// Asks an HTTP service; see the module documentation.
#[derive(Debug)]
pub struct HttpHook {
    endpoint: Endpoint,
    timeout: Duration,
    /// Owned by this hook and shared by every connection task that authenticates through it.
    /// A std mutex: it guards a lookup or an insert, never an `.await`.
    cache: Option<Mutex<AnswerCache>>,
}

impl HttpHook {
    pub fn new(settings: HttpHookSettings) -> Result<HttpHook, AuthError> {
        let endpoint = Endpoint::parse(&settings.url)
            .map_err(|reason| AuthError::HttpHookUrl { url: settings.url.clone(), reason })?;
        if settings.timeout.is_zero() || settings.timeout > MAX_TIMEOUT {
            return Err(AuthError::HttpHookTimeout(settings.timeout));
        }
        let cache = (!settings.cache_ttl.is_zero() && settings.cache_capacity > 0)
            .then(|| Mutex::new(AnswerCache::new(settings.cache_ttl, settings.cache_capacity)));
        Ok(HttpHook { endpoint, timeout: settings.timeout, cache })
    }

    async fn decide(&self, request: &AuthRequest<'_>) -> AuthOutcome {
        let key = CacheKey::of(request);
        if let Some(cached) = self.cache().and_then(|mut cache| cache.get(&key, Instant::now())) {
            return cached;
        }
        let answer = match tokio::time::timeout(self.timeout, self.ask(request)).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(error)) => return self.refuse(request, &error),
            Err(_) => return self.refuse(request, &HookError::Timeout(self.timeout)),
        };
        if let Some(mut cache) = self.cache() {
            cache.insert(key, answer.clone(), Instant::now());
        }
        answer
    }

    fn cache(&self) -> Option<MutexGuard<'_, AnswerCache>> {
        // A panic elsewhere while holding the lock cannot leave the cache inconsistent (each
        // method leaves it valid at every step), so a poisoned lock is used as is.
        self.cache.as_ref().map(|cache| cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    fn refuse(&self, request: &AuthRequest<'_>, error: &HookError) -> AuthOutcome {
        // The URL is not logged whole: its query may carry a credential for the hook.
        warn!(hook = %self.endpoint.authority, client_id = request.client_id, %error, "HTTP auth hook failed; refusing the client");
        AuthOutcome::NotAuthorized
    }

    async fn ask(&self, request: &AuthRequest<'_>) -> Result<AuthOutcome, HookError> {
        let (password, password_base64) = match request.password.map(std::str::from_utf8) {
            None => (None, false),
            Some(Ok(text)) => (Some(Cow::Borrowed(text)), false),
            Some(Err(_)) => (request.password.map(|p| Cow::Owned(STANDARD.encode(p))), true),
        };
        let body = serde_json::to_vec(&HookRequest {
            clientid: request.client_id,
            username: request.username,
            password,
            password_base64,
            peer: request.peer.to_string(),
        })
        .map_err(HookError::Json)?;
        let response = self.endpoint.post_json(&body).await?;
        if !(200..300).contains(&response.status) {
            return Err(HookError::Status(response.status));
        }
        let answer: HookResponse = serde_json::from_slice(&response.body).map_err(HookError::Json)?;
        let allow = match (answer.result.as_deref(), answer.allow) {
            (Some("allow"), _) | (None, Some(true)) => true,
            (Some("deny"), _) | (None, Some(false)) => false,
            (Some("ignore"), _) => return Ok(AuthOutcome::Abstain),
            (Some(other), _) => return Err(HookError::UnknownResult(other.to_owned())),
            (None, None) => return Err(HookError::NoResult),
        };
        if !allow {
            return Ok(AuthOutcome::NotAuthorized);
        }
        let username = answer.username.or_else(|| request.username.map(str::to_owned));
        Ok(AuthOutcome::Allow { username, attributes: scalar_claims(&answer.attributes) })
    }
}

impl Authenticator for HttpHook {
    fn authenticate<'a>(&'a self, request: &'a AuthRequest<'a>) -> BoxFuture<'a, AuthOutcome> {
        Box::pin(self.decide(request))
    }
}

#[derive(Serialize)]
struct HookRequest<'a> {
    clientid: &'a str,
    username: Option<&'a str>,
    password: Option<Cow<'a, str>>,
    password_base64: bool,
    peer: String,
}

#[derive(Deserialize)]
struct HookResponse {
    result: Option<String>,
    allow: Option<bool>,
    username: Option<String>,
    #[serde(default)]
    attributes: Map<String, Value>,
}

/// Why the hook gave no usable answer. Logged, never shown to the client.
#[derive(Debug, thiserror::Error)]
enum HookError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("status {0}")]
    Status(u16),
    #[error("response larger than {MAX_RESPONSE} bytes")]
    TooLarge,
    #[error("malformed HTTP response: {0}")]
    Http(&'static str),
    #[error("body is not the expected JSON: {0}")]
    Json(serde_json::Error),
    #[error("unknown result {0:?}: expected allow, deny or ignore")]
    UnknownResult(String),
    #[error("answer has neither \"result\" nor \"allow\"")]
    NoResult,
}

/// What an answer is cached under. The port is left out: a reconnecting client gets a new one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    client_id: String,
    username: Option<String>,
    password_sha256: Option<[u8; 32]>,
    peer_ip: IpAddr,
}

impl CacheKey {
    fn of(request: &AuthRequest<'_>) -> CacheKey {
        CacheKey {
            client_id: request.client_id.to_owned(),
            username: request.username.map(str::to_owned),
            password_sha256: request.password.map(|p| {
                let mut out = [0; 32];
                out.copy_from_slice(digest::digest(&digest::SHA256, p).as_ref());
                out
            }),
            peer_ip: request.peer.ip(),
        }
    }
}

/// Answers with an expiry, bounded in number; the oldest entry is evicted first. Every entry
/// lives the same `ttl`, so insertion order is also expiry order.
#[derive(Debug)]
struct AnswerCache {
    ttl: Duration,
    capacity: usize,
    entries: HashMap<CacheKey, CachedAnswer>,
    /// Keys in insertion order, each with the `seq` it was inserted with; an entry replaced
    /// since then has a newer `seq`, and its old place in the queue is skipped.
    order: VecDeque<(CacheKey, u64)>,
    next_seq: u64,
}

#[derive(Debug)]
struct CachedAnswer {
    outcome: AuthOutcome,
    expires: Instant,
    seq: u64,
}

impl AnswerCache {
    fn new(ttl: Duration, capacity: usize) -> AnswerCache {
        AnswerCache { ttl, capacity, entries: HashMap::new(), order: VecDeque::new(), next_seq: 0 }
    }

    fn get(&mut self, key: &CacheKey, now: Instant) -> Option<AuthOutcome> {
        let entry = self.entries.get(key)?;
        if now < entry.expires {
            return Some(entry.outcome.clone());
        }
        self.entries.remove(key);
        None
    }

    fn insert(&mut self, key: CacheKey, outcome: AuthOutcome, now: Instant) {
        // Drop what has expired, then make room. The queue may hold stale places of replaced
        // or expired entries; bounding it at twice the capacity bounds its memory too.
        while let Some((oldest, seq)) = self.order.front() {
            let live = self.entries.get(oldest).filter(|e| e.seq == *seq);
            let expired = live.is_none_or(|e| now >= e.expires);
            if !expired && self.entries.len() < self.capacity && self.order.len() < 2 * self.capacity {
                break;
            }
            if live.is_some() {
                self.entries.remove(oldest);
            }
            self.order.pop_front();
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.push_back((key.clone(), seq));
        self.entries.insert(key, CachedAnswer { outcome, expires: now + self.ttl, seq });
    }
}

/// A parsed `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    /// The host to connect to, without IPv6 brackets.
    host: String,
    port: u16,
    /// The `Host` header: the authority as the URL wrote it.
    authority: String,
    /// Path and query, starting with `/`.
    target: String,
}

impl Endpoint {
    fn parse(url: &str) -> Result<Endpoint, &'static str> {
        // Everything goes into the request head, so no spaces or control characters.
        if !url.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("must be printable ASCII without spaces");
        }
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
                return Err("https is not supported yet: use http:// to a hook on loopback or a trusted network")
            }
            _ => return Err("must start with http://"),
        };
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
            Some(i) => (&rest[..i], rest[i..].to_owned()),
            None => (rest, "/".to_owned()),
        };
        if authority.contains('@') {
            return Err("user information in the URL is not supported");
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or("unclosed [ in the host")?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':').ok_or("unexpected text after ]")?)),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err("no host");
        }
        if host.contains(':') && !authority.starts_with('[') {
            return Err("an IPv6 address must be in brackets: http://[::1]:8080/");
        }
        let port = match port {
            None => 80,
            Some(port) => port.parse::<u16>().ok().filter(|p| *p != 0).ok_or("invalid port")?,
        };
        Ok(Endpoint { host: host.to_owned(), port, authority: authority.to_owned(), target })
    }

    async fn post_json(&self, body: &[u8]) -> Result<Response, HookError> {
        let mut stream = TcpStream::connect((self.host.as_str(), self.port)).await?;
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: tern\r\nAccept: application/json\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.target,
            self.authority,
            body.len()
        );
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        stream.write_all(&request).await?;
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0; 4096];
        loop {
            let n = stream.read(&mut chunk).await?;
            buf.extend_from_slice(&chunk[..n]);
            if buf.len() > MAX_RESPONSE {
                return Err(HookError::TooLarge);
            }
            // Parsed as it arrives, so a server that keeps the connection open is answered
            // as soon as the response is complete.
            if let Some(response) = parse_response(&buf, n == 0)? {
                return Ok(response);
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Response {
    status: u16,
    body: Vec<u8>,
}

/// Parses an HTTP/1.1 response from `buf`: `Ok(None)` if more bytes are needed, which `eof`
/// says will not come.
fn parse_response(buf: &[u8], eof: bool) -> Result<Option<Response>, HookError> {
    let incomplete = |what| if eof { Err(HookError::Http(what)) } else { Ok(None) };
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return incomplete("connection closed inside the head");
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| HookError::Http("head is not UTF-8"))?;
    let rest = &buf[head_end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut fields = status_line.splitn(3, ' ');
    let (Some(version), Some(code)) = (fields.next(), fields.next()) else {
        return Err(HookError::Http("bad status line"));
    };
    let status = match (version.starts_with("HTTP/1."), code.len() == 3, code.parse::<u16>()) {
        (true, true, Ok(status)) if status >= 200 => status,
        (true, true, Ok(_)) => return Err(HookError::Http("informational responses are not expected")),
        _ => return Err(HookError::Http("bad status line")),
    };
    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(HookError::Http("bad header line"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let length = value.parse::<usize>().map_err(|_| HookError::Http("bad Content-Length"))?;
            if content_length.is_some_and(|earlier| earlier != length) {
                return Err(HookError::Http("conflicting Content-Length"));
            }
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.rsplit(',').next().is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        }
    }
    // RFC 9112 §6.3: no body for 204 and 304; chunked framing wins over Content-Length.
    let body = if status == 204 || status == 304 {
        Some(Vec::new())
    } else if chunked {
        dechunk(rest)?
    } else if let Some(length) = content_length {
        rest.get(..length).map(<[u8]>::to_vec)
    } else {
        eof.then(|| rest.to_vec())
    };
    match body {
        Some(body) => Ok(Some(Response { status, body })),
        None => incomplete("connection closed inside the body"),
    }
}

/// Decodes a chunked body (RFC 9112 §7.1): `Ok(None)` until the last chunk has arrived.
/// Trailer fields after the last chunk are not needed, so they are not waited for.
fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>, HookError> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&rest[..line_end]).map_err(|_| HookError::Http("bad chunk size"))?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| HookError::Http("bad chunk size"))?;
        if size == 0 {
            return Ok(Some(body));
        }
        let data = &rest[line_end + 2..];
        // The size is bounded by what has arrived, which MAX_RESPONSE bounds, before adding.
        if data.len() < size.saturating_add(2) {
            return Ok(None);
        }
        if &data[size..size + 2] != b"\r\n" {
            return Err(HookError::Http("chunk not followed by CRLF"));
        }
        body.extend_from_slice(&data[..size]);
        rest = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn key(client_id: &str) -> CacheKey {
        CacheKey {
            client_id: client_id.to_owned(),
            username: None,
            password_sha256: None,
            peer_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }

    #[test]
    fn cache_answers_until_ttl() {
        let start = Instant::now();
        let mut cache = AnswerCache::new(Duration::from_secs(60), 10);
        cache.insert(key("a"), AuthOutcome::NotAuthorized, start);
        assert_eq!(cache.get(&key("a"), start + Duration::from_secs(59)), Some(AuthOutcome::NotAuthorized));
        assert_eq!(cache.get(&key("a"), start + Duration::from_secs(60)), None);
        assert_eq!(cache.get(&key("b"), start), None);
    }

    #[test]
    fn cache_evicts_oldest_at_capacity() {
        let now = Instant::now();
        let mut cache = AnswerCache::new(Duration::from_secs(60), 2);
        for id in ["a", "b", "c"] {
            cache.insert(key(id), AuthOutcome::Abstain, now);
        }
        assert_eq!(cache.get(&key("a"), now), None);
        assert_eq!(cache.get(&key("b"), now), Some(AuthOutcome::Abstain));
        assert_eq!(cache.get(&key("c"), now), Some(AuthOutcome::Abstain));
        assert_eq!(cache.entries.len(), 2);
    }

    #[test]
    fn cache_queue_stays_bounded_when_one_key_is_replaced() {
        let now = Instant::now();
        let mut cache = AnswerCache::new(Duration::from_secs(60), 3);
        for _ in 0..100 {
            cache.insert(key("a"), AuthOutcome::Abstain, now);
        }
        assert!(cache.order.len() <= 6);
        assert_eq!(cache.get(&key("a"), now), Some(AuthOutcome::Abstain));
    }

    #[test]
    fn urls_parse() {
        let e = Endpoint::parse("http://127.0.0.1:8080/auth?x=1").ok();
        assert_eq!(
            e.as_ref().map(|e| (e.host.as_str(), e.port, e.target.as_str())),
            Some(("127.0.0.1", 8080, "/auth?x=1"))
        );
        let e = Endpoint::parse("http://[::1]:9000").ok();
        assert_eq!(
            e.as_ref().map(|e| (e.host.as_str(), e.port, e.authority.as_str())),
            Some(("::1", 9000, "[::1]:9000"))
        );
        let e = Endpoint::parse("HTTP://hook.internal?q").ok();
        assert_eq!(e.as_ref().map(|e| (e.port, e.target.as_str())), Some((80, "/?q")));
        for bad in [
            "https://x/",
            "ftp://x",
            "http://",
            "http://x:0/",
            "http://x:99999",
            "http://a b/",
            "http://u@x/",
            "http://::1/",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn responses_are_framed() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}extra", false);
        assert_eq!(r.ok().flatten(), Some(Response { status: 200, body: b"{}".to_vec() }));
        assert!(matches!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}", false), Ok(None)));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}", true).is_err());
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n1;x=y\r\n}\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked, false).ok().flatten().map(|r| r.body), Some(b"{}".to_vec()));
        assert!(matches!(parse_response(&chunked[..chunked.len() - 6], false), Ok(None)));
        let until_close = b"HTTP/1.0 500 Oops\r\n\r\nbody";
        assert!(matches!(parse_response(until_close, false), Ok(None)));
        assert_eq!(parse_response(until_close, true).ok().flatten().map(|r| r.status), Some(500));
        for bad in [&b"garbage\r\n\r\n"[..], b"HTTP/1.1 2000 OK\r\n\r\n", b"HTTP/1.1 100 Continue\r\n\r\n"] {
            assert!(parse_response(bad, true).is_err());
        }
        let huge_chunk = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n";
        assert!(matches!(parse_response(huge_chunk, false), Ok(None)));
    }
}

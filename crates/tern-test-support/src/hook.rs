//! A tiny HTTP auth hook on 127.0.0.1:0 for `[auth.http]`: it answers each POST with
//! `{"result":"allow"}` or `{"result":"deny"}` as the test decides, and keeps every request
//! body it received.

use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The largest request the hook reads; the broker's are a few hundred bytes.
const MAX_REQUEST: usize = 64 * 1024;

type Decide = dyn Fn(&Value) -> bool + Send + Sync;

pub struct HookServer {
    /// `http://127.0.0.1:PORT/auth`, for `HttpHookConfig::url`.
    pub url: String,
    requests: Arc<Mutex<Vec<Value>>>,
    task: JoinHandle<()>,
}

impl HookServer {
    /// Starts a hook that allows the clients for which `allow` says true (given the request
    /// body: `clientid`, `username`, `password`, `peer`) and denies the others.
    pub async fn start(allow: impl Fn(&Value) -> bool + Send + Sync + 'static) -> HookServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the hook");
        let url = format!("http://{}/auth", listener.local_addr().expect("hook address"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let allow: Arc<Decide> = Arc::new(allow);
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, allow.clone(), seen.clone()));
            }
        });
        HookServer { url, requests, task }
    }

    /// The JSON bodies of the requests received so far, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for HookServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(mut stream: TcpStream, allow: Arc<Decide>, requests: Arc<Mutex<Vec<Value>>>) {
    let mut request = Vec::new();
    let body = loop {
        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if request.len() >= end + 4 + length {
                break request[end + 4..end + 4 + length].to_vec();
            }
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) if request.len() + n <= MAX_REQUEST => request.extend_from_slice(&chunk[..n]),
            Ok(_) => return,
        }
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let result = if allow(&body) { "allow" } else { "deny" };
    requests.lock().unwrap_or_else(|p| p.into_inner()).push(body);
    let json = format!("{{\"result\":\"{result}\"}}");
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

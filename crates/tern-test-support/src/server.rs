//! A broker running in-process for one test.

use std::net::SocketAddr;
use std::sync::Arc;

use tern_core::{MemoryStore, Store};
use tern_server::Config;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

/// A broker serving on an ephemeral loopback port until [`TestServer::stop`] or drop.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The address of every listener, in configuration order.
    pub addrs: Vec<SocketAddr>,
    reload: Arc<Notify>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts a broker with the default configuration (in memory).
    pub async fn start() -> TestServer {
        TestServer::start_with(Config::default()).await
    }

    /// Starts a broker with `config`; each configured listener is moved to an ephemeral port
    /// on 127.0.0.1 (`addrs`, in order; `addr` is the first).
    pub async fn start_with(config: Config) -> TestServer {
        TestServer::start_with_store(config, Arc::new(MemoryStore::default())).await
    }

    /// Starts a broker whose durable state is in `store`, so a test can stop a broker and
    /// start another on the same state.
    pub async fn start_with_store(mut config: Config, store: Arc<dyn Store>) -> TestServer {
        config.storage.in_memory = true;
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for listener_config in &mut config.listeners {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
            let addr = listener.local_addr().expect("local address");
            listener_config.address = addr;
            listeners.push(listener);
            addrs.push(addr);
        }
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let reload = Arc::new(Notify::new());
        let reload_handle = reload.clone();
        let task = tokio::spawn(async move {
            let stop = async move {
                let _ = shutdown_rx.await;
            };
            tern_server::serve_with_store(config, Some(store), listeners, stop, reload_handle)
                .await
                .expect("broker serves");
        });
        TestServer { addr: addrs[0], addrs, reload, shutdown: Some(shutdown), task: Some(task) }
    }

    /// Asks the broker to re-read passwords, the ACL and certificates, as SIGHUP does.
    pub fn reload(&self) {
        self.reload.notify_one();
    }

    /// Shuts the broker down and waits until it has stopped.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("broker task ends cleanly");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

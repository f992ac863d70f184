//! The composition root of Tern: reads the configuration, accepts connections on the
//! listeners it is given, runs one task per connection, and shuts down cleanly.
//!
//! [`serve`] takes already-bound listeners and a shutdown future, so tests bind
//! `127.0.0.1:0` and run a broker in-process.

mod authenticate;
mod config;
mod connection;
mod enhanced_auth;
mod listener;
mod security;
mod shutdown;
mod storage;

pub use storage::open_store;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use tern_core::{Broker, MemoryStore, Metrics, Store, StoreError};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tracing::{info, warn};

pub use config::{
    AuthConfig, CertificateUsername, Config, ConfigError, HttpHookConfig, JwtConfig, ListenerConfig, ListenerProtocol,
    MqttConfig, StorageBackend, StorageConfig, TlsConfig,
};
use connection::ConnectionContext;
use listener::{accept_loop, ListenerContext};
use security::Security;
use shutdown::{Phase, PhaseReceiver, WillBarrier};

/// How long shutdown waits for connections to publish wills and close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Binds every listener the configuration names, in order. Errors name the address.
pub async fn bind_listeners(config: &Config) -> Result<Vec<TcpListener>, ServeError> {
    let mut listeners = Vec::new();
    for listener in &config.listeners {
        let addr = listener.address;
        let bound = TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr, source })?;
        listeners.push(bound);
    }
    Ok(listeners)
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("no listener configured")]
    NoListener,
    #[error("{given} bound listeners for {configured} configured ones")]
    ListenerMismatch { given: usize, configured: usize },
    #[error("cannot load the broker's state")]
    Store(#[from] StoreError),
    #[error("listener {address}")]
    Transport { address: SocketAddr, source: tern_transport::TransportError },
    #[error("authentication or ACL configuration")]
    Auth(#[from] tern_auth::AuthError),
}

/// Serves MQTT on `listeners` until `shutdown` completes; then stops accepting, closes every
/// connection (publishing wills as the spec says) and returns.
pub async fn serve(
    config: Config,
    listeners: Vec<TcpListener>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    serve_with_store(config, Some(store), listeners, shutdown, Arc::new(Notify::new())).await
}

/// [`serve`] with the broker's durable state in `store`, loaded at start. `listeners` are
/// bound for `config.listeners`, in the same order. Each notification of `reload` re-reads
/// the password file, the ACL and the certificates without dropping connected clients.
pub async fn serve_with_store(
    config: Config,
    store: Option<Arc<dyn Store>>,
    listeners: Vec<TcpListener>,
    shutdown: impl Future<Output = ()>,
    reload: Arc<Notify>,
) -> Result<(), ServeError> {
    if listeners.is_empty() {
        return Err(ServeError::NoListener);
    }
    if listeners.len() != config.listeners.len() {
        return Err(ServeError::ListenerMismatch { given: listeners.len(), configured: config.listeners.len() });
    }
    let broker = match &store {
        Some(store) => {
            let started = std::time::Instant::now();
            let broker = Broker::with_store(config.limits.clone(), config.features(), store.clone())?;
            info!(
                store = %store.describe(),
                sessions = broker.session_count(),
                retained = broker.retained_count(),
                queued = Metrics::get(&broker.metrics.stored_messages),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "Storage loaded"
            );
            broker
        }
        None => {
            info!("Storage: in memory; nothing survives a restart");
            let mut broker = Broker::new(config.limits.clone());
            broker.features = config.features();
            broker
        }
    };
    let broker = Arc::new(broker);
    broker.set_shared_strategy(config.shared_strategy());
    let security = Security::default();
    security.load(&config.auth, &broker)?;
    let context = Arc::new(ConnectionContext {
        broker,
        connections: Arc::new(AtomicUsize::new(0)),
        security,
        wills: WillBarrier::default(),
    });
    let anonymous_default = config.auth.anonymous_allowed();
    let mut listener_contexts = Vec::new();
    for listener_config in &config.listeners {
        listener_contexts.push(Arc::new(ListenerContext::new(listener_config.clone(), anonymous_default)?));
    }
    let (shutdown_tx, shutdown_rx) = watch::channel(Phase::Running);
    let mut accept_loops = JoinSet::new();
    for (listener, this) in listeners.into_iter().zip(&listener_contexts) {
        let addr = listener.local_addr().map_err(|source| ServeError::Bind { addr: this.config.address, source })?;
        if this.allow_anonymous && !addr.ip().is_loopback() {
            warn!(%addr, "Anonymous clients are accepted on a non-loopback listener; configure authentication or set auth.allow_anonymous = false");
        }
        info!(kind = this.config.protocol.name(), %addr, "listener ready");
        accept_loops.spawn(accept_loop(listener, this.clone(), context.clone(), shutdown_rx.clone()));
    }
    let timers = tokio::spawn(run_timers(context.broker.clone(), shutdown_rx.clone()));
    let reloader = tokio::spawn(run_reloads(reload, config.auth.clone(), context.clone(), listener_contexts));
    shutdown.await;
    info!("Shutting down: closing listeners and connections");
    let _ = shutdown_tx.send(Phase::PublishWills);
    let live = || context.connections.load(std::sync::atomic::Ordering::Relaxed);
    if !context.wills.wait(live, SHUTDOWN_GRACE).await {
        warn!("Not every connection published its will within the shutdown grace period");
    }
    let _ = shutdown_tx.send(Phase::Close);
    let drained =
        tokio::time::timeout(SHUTDOWN_GRACE, async { while accept_loops.join_next().await.is_some() {} }).await;
    timers.abort();
    reloader.abort();
    if drained.is_err() {
        warn!("Some connections did not close within the shutdown grace period");
    }
    if let Some(store) = &store {
        if let Err(error) = store.flush() {
            warn!(%error, "Storage could not be flushed at shutdown");
        }
    }
    Ok(())
}

/// Wakes the broker's timers: delayed wills and session expiry ([`Broker::tick`]). Sleeps
/// until the next deadline, woken early when an earlier one is scheduled.
async fn run_timers(broker: Arc<Broker>, mut shutdown: PhaseReceiver) {
    let waker = Arc::new(TimerWaker::default());
    broker.set_timer_waker(waker.clone());
    loop {
        let next = broker.tick(std::time::Instant::now());
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = sleep => {}
            _ = waker.0.notified() => {}
        }
    }
}

#[derive(Default)]
struct TimerWaker(tokio::sync::Notify);

impl tern_core::SessionWaker for TimerWaker {
    fn wake(&self) {
        self.0.notify_one();
    }
}

/// Re-reads passwords, the ACL and certificates on each reload request. A file that fails to
/// load keeps the previous version in force, and the error is logged.
async fn run_reloads(
    reload: Arc<Notify>,
    auth: AuthConfig,
    context: Arc<ConnectionContext>,
    listeners: Vec<Arc<ListenerContext>>,
) {
    loop {
        reload.notified().await;
        info!("Reloading passwords, ACL and certificates");
        if let Err(error) = context.security.load(&auth, &context.broker) {
            warn!(error = %error_chain(&error), "Reload of authentication or ACL failed; keeping the previous ones");
        }
        for listener in &listeners {
            if let Err(error) = listener.reload() {
                warn!(error = %error_chain(&error), "Reload of certificates failed; keeping the previous ones");
            }
        }
    }
}

/// An error with its sources, for logs.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
